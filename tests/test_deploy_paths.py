"""Exported ONNX graphs against the official golden outputs, and their shape. In-repo golden cases (64 px, the real
stem), both ONNX export routes, fused and plain attention, run by onnxruntime."""
import collections
from pathlib import Path

import pytest
import torch

import timm
import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, golden_case

TOL = 1e-4


def _export(model: torch.nn.Module, path: Path, x: torch.Tensor, dynamo: bool) -> None:
    if dynamo:  # opset 18: the torch.export-based exporter writes opset-18 Split
        kwargs = dict(dynamo=True, opset_version=18, dynamic_shapes=({0: torch.export.Dim('batch', min=1, max=64)},))
    else:
        kwargs = dict(dynamo=False, opset_version=17, dynamic_axes={'input': {0: 'batch'}})
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(path), input_names=['input'], **kwargs)


@pytest.mark.parametrize('dynamo', [False, True], ids=['torchscript_exporter', 'dynamo_exporter'])
def test_onnx_graph_splits_in_a_few_operators(dynamo, tmp_path):
    """Each soft split exports as a Pad and one Gather, not one Slice per kernel position (49 + 9), and the last split
    with the projection as one Conv."""
    import onnx
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).eval()
    path = tmp_path / 'model.onnx'
    _export(model, path, torch.randn(2, 3, 64, 64), dynamo)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    float_values = {v.name for v in [*graph.value_info, *graph.input]
                    if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    ops = collections.Counter(n.op_type for n in graph.node)

    def data_ops(op_type: str) -> list:
        """Ops on activations, not on the shape arithmetic the TorchScript route records for the batch size."""
        return [n.name for n in graph.node if n.op_type == op_type and n.input[0] in float_values]

    assert ops['Conv'] == 1, ops  # the last split with the projection
    assert ops['Pad'] == 2, ops
    assert len(data_ops('Gather')) == 2 + 1, data_ops('Gather')  # the two splits, and the class token's pooling
    # Only the block's q, k, v and the Performers' k, q, v (a Split or three Slices each).
    assert len(data_ops('Slice')) <= 3 * 3, data_ops('Slice')


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
