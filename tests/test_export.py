"""Export paths on both stem types: TorchScript, FX feature extraction, torch.compile (no graph breaks), torch.export,
ONNX (timm's exporter, both backends) run by onnxruntime. Small models (depth 1-2, 64 px) keep this fast; the full
models at 224 go through TorchScript and FX in timm's own suite (tests/timm_suite)."""
import pytest
import torch
import torch.nn as nn

import timm
import timm_t2t  # noqa: F401  registers the models

ARCHS = ['t2t_vit_7', 't2t_vit_t_14']  # Performer stem, Transformer stem
SIZE = 64


def _model(arch: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(arch, depth=2, img_size=SIZE, **kwargs).eval()


def _input(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('arch', ARCHS)
def test_torchscript(arch):
    model = _model(arch)
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x), rtol=0, atol=1e-5)
    feat = _model(arch, features_only=True, out_indices=(0, 1, 3))
    with torch.no_grad():
        for a, b in zip(torch.jit.script(feat)(x), feat(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize('arch', ARCHS)
def test_fx_feature_extraction(arch):
    """timm's FX feature extractor (`feature_cls='fx'`) returns each tapped module's output: stem tokens and full
    block sequences (class token first), matching `forward_intermediates` in NLC form."""
    model = _model(arch)
    fx = _model(arch, features_only=True, feature_cls='fx', out_indices=(0, 1, 3))
    x = _input()
    with torch.no_grad():
        s4, s8, b1 = fx(x)
        taps = model.forward_intermediates(x, indices=[0, 1, 3], output_fmt='NLC', intermediates_only=True)
    torch.testing.assert_close(s4, taps[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(s8, taps[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(b1[:, 1:], taps[2], rtol=0, atol=1e-5)
    # the helper timm exposes for arbitrary nodes works on the whole model too
    extractor = timm.models.create_feature_extractor(model, return_nodes={'head': 'logits'})
    with torch.no_grad():
        torch.testing.assert_close(extractor(x)['logits'], model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize('arch', ARCHS)
def test_torch_compile_default_path_has_no_graph_breaks(arch):
    model = _model(arch)
    x = _input()
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize('arch', ARCHS)
def test_torch_compile_training_step_has_no_graph_breaks(arch):
    """The training path (the stem's and the attention's own autograd functions, the bool-mask dropouts) traces as
    one graph too."""
    model = _model(arch).train()
    explanation = torch._dynamo.explain(model)(_input())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_torch_compile_inductor_matches_eager():
    """One real inductor compile (Performer stem, depth 1, 64 px: ~5-20 s on 2 cores)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=SIZE).eval()
    x = _input()
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model, fullgraph=True)
        torch.testing.assert_close(compiled(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('arch', ARCHS)
def test_torch_export_dynamic_batch(arch):
    model = _model(arch)
    x = _input(2)
    batch = torch.export.Dim('batch', min=1, max=64)
    program = torch.export.export(model, (x,), dynamic_shapes={'x': {0: batch}})
    module = program.module()
    with torch.no_grad():
        for b in (2, 3):
            xb = _input(b)
            torch.testing.assert_close(module(xb), model(xb), rtol=0, atol=1e-5)


@pytest.mark.parametrize('use_dynamo', [False, True], ids=['torchscript_exporter', 'dynamo_exporter'])
@pytest.mark.parametrize('arch', ARCHS)
def test_onnx_export_onnxruntime_parity(arch, use_dynamo, tmp_path):
    """timm's `onnx_export` (what its onnx_export.py script calls), checked by onnx, run by onnxruntime at another
    batch size than the traced one: outputs within 1e-4 of eager."""
    import onnxruntime as ort  # in the `test` extra
    from timm.utils.onnx import onnx_export
    model = _model(arch)
    path = tmp_path / 'model.onnx'
    onnx_export(model, str(path), example_input=_input(2), use_dynamo=use_dynamo, check=True)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    x = _input(3)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert out.shape == (3, 1000)
    assert (torch.from_numpy(out) - expected).abs().max().item() <= 1e-4
