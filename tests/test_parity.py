"""Every official golden case matches: logits and pre-logits within 1e-4, fused and plain attention paths.

The in-repo cases always run; the larger ones of ../shared/fixtures/official join when that folder exists.
"""
import pytest
import timm
import torch
from safetensors.torch import load_file

import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, fixture_cases, golden_case

TOL = 1e-4
CASES = [(case, path) for case in fixture_cases() for path in checkpoint_files(case)]


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'plain'])
@pytest.mark.parametrize('case,path', CASES, ids=[f"{c['id']}:{p.name}" for c, p in CASES])
def test_official_parity(case, path, fused):
    model = timm.create_model(
        case['arch'], pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **case['model_kwargs'])
    model.eval().set_fused_attn(fused)
    expected = load_file(expected_file(case))
    with torch.inference_mode():
        feats = model.forward_features(expected['input'])
        logits = model.forward_head(feats)
        pre_logits = model.forward_head(feats, pre_logits=True)
    assert (logits - expected['logits']).abs().max().item() <= TOL
    assert (pre_logits - expected['pre_logits']).abs().max().item() <= TOL
    # forward() is the same computation as forward_head(forward_features())
    with torch.inference_mode():
        torch.testing.assert_close(model(expected['input']), logits, rtol=0, atol=1e-6)


def test_plain_path_really_differs_from_fused():
    """The switch reaches every softmax attention: the two paths agree to rounding but are not the same kernels."""
    case = golden_case('tiny_transformer_64')
    model = timm.create_model(
        case['arch'], pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint_files(case)[0])),
        **case['model_kwargs']).eval()
    x = load_file(expected_file(case))['input']
    with torch.inference_mode():
        fused = model(x)
        model.set_fused_attn(False)
        assert not any(getattr(m, 'fused_attn', False) for m in model.modules())
        plain = model(x)
    assert not torch.equal(fused, plain)
    torch.testing.assert_close(fused, plain, rtol=0, atol=TOL)


def test_release_checkpoint_prefers_ema(tmp_path):
    """The release file holds a different `state_dict` too; loading it instead would break parity."""
    from timm_t2t.models.t2t_vit import checkpoint_filter_fn

    case = golden_case('tiny_release_64')
    ckpt = torch.load(checkpoint_files(case)[0], map_location='cpu', weights_only=False)
    assert not torch.equal(ckpt['state_dict']['head.weight'], ckpt['state_dict_ema']['head.weight'])
    model = timm.create_model(case['arch'], **case['model_kwargs'])
    filtered = checkpoint_filter_fn(ckpt, model)
    torch.testing.assert_close(filtered['head.weight'], ckpt['state_dict_ema']['head.weight'], rtol=0, atol=0)
