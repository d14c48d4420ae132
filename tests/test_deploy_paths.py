"""The export path of the soft splits (one convolution each) against the official golden outputs, and the shape of
the exported ONNX graph. In-repo golden cases (64 px, the real stem), both ONNX export routes, fused and plain
attention, run by onnxruntime."""
import collections
from pathlib import Path

import pytest
import torch

import timm
import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, golden_case
from timm_t2t.t2t_vit import soft_split

TOL = 1e-4


def _export(model: torch.nn.Module, path: Path, x: torch.Tensor, dynamo: bool) -> None:
    if dynamo:  # opset 18: the torch.export-based exporter writes opset-18 Split
        kwargs = dict(dynamo=True, opset_version=18, dynamic_shapes=({0: torch.export.Dim('batch', min=1, max=64)},))
    else:
        kwargs = dict(dynamo=False, opset_version=17, dynamic_axes={'input': {0: 'batch'}})
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(path), input_names=['input'], **kwargs)


@pytest.mark.parametrize('channels_last,shape,ksp', [
    (False, (2, 3, 19, 23), (7, 4, 2)), (True, (2, 9, 11, 5), (3, 2, 1))], ids=['image', 'token_map'])
def test_export_soft_split_equals_unfold(channels_last, shape, ksp):
    """While exporting, soft splits are one convolution with a one-hot kernel: the values and column order of
    nn.Unfold, exactly, on odd and non-square sizes."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    k, s, p = ksp
    nchw = x.permute(0, 3, 1, 2) if channels_last else x
    expected = torch.nn.Unfold(k, padding=p, stride=s)(nchw).transpose(1, 2)  # B, L, C * k * k
    traced = torch.jit.trace(lambda t: soft_split(t, k, s, p, channels_last), (x,))
    assert any(n.kind() == 'aten::_convolution' for n in traced.graph.nodes())
    out = traced(x)
    assert torch.equal(out.flatten(1, 2), expected)
    assert torch.equal(soft_split(x, k, s, p, channels_last).flatten(1, 2), expected)  # untraced


@pytest.mark.parametrize('dynamo', [False, True], ids=['torchscript_exporter', 'dynamo_exporter'])
def test_onnx_graph_has_one_conv_per_soft_split(dynamo, tmp_path):
    """Each soft split exports as a few operators (one Conv), not one Slice per kernel position (49 + 9 + 9)."""
    import onnx
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).eval()
    path = tmp_path / 'model.onnx'
    _export(model, path, torch.randn(2, 3, 64, 64), dynamo)
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops['Conv'] == 3
    # What remains is the Performer's k, q, v split and the block's q, k, v split (a few each), far below 9.
    assert ops['Slice'] < 9, ops


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'plain'])
@pytest.mark.parametrize('dynamo', [False, True], ids=['torchscript_exporter', 'dynamo_exporter'])
@pytest.mark.parametrize('name', ['tiny_performer_64', 'tiny_transformer_64'])
def test_exported_onnx_matches_official_golden(name, dynamo, fused, tmp_path):
    import onnxruntime as ort
    from safetensors.torch import load_file
    case = golden_case(name)
    model = timm.create_model(
        case['arch'], pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint_files(case)[0])),
        **case['model_kwargs']).eval()
    model.set_fused_attn(fused)
    expected = load_file(expected_file(case))
    x = expected['input']
    path = tmp_path / 'model.onnx'
    _export(model, path, torch.cat([x, x[:1]]), dynamo)  # traced at batch 3, run at the golden batch (2)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert logits.shape == tuple(expected['logits'].shape)
    assert (torch.from_numpy(logits) - expected['logits']).abs().max().item() <= TOL
