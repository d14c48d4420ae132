"""Inference without autograd runs the stem in batch chunks (`TokensToToken.inference_chunk_size`): the official golden
outputs hold on that path, fused and plain, and the chunked stem gives the whole-batch values."""
import pytest
import torch
from safetensors.torch import load_file

import timm
import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, fixture_cases

TOL = 1e-4
CASES = [c for c in fixture_cases() if not c.get('checkpoint_files')]


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'plain'])
@pytest.mark.parametrize('case', CASES[:3], ids=[c['id'] for c in CASES[:3]])
def test_chunked_stem_matches_official_golden(case, fused):
    model = timm.create_model(
        case['arch'], pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint_files(case)[0])),
        **case['model_kwargs']).eval()
    model.set_fused_attn(fused)
    expected = load_file(expected_file(case))
    x = torch.cat([expected['input'], expected['input']])  # twice the golden batch, one image per chunk
    calls = []
    model.patch_embed.attn1.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    model.patch_embed.inference_chunk_size = 1
    with torch.inference_mode():
        logits = model(x)
    assert calls == [1] * x.shape[0]
    golden = torch.cat([expected['logits'], expected['logits']])
    assert (logits - golden).abs().max().item() <= TOL
    model.patch_embed.inference_chunk_size = 0
    with torch.inference_mode():
        torch.testing.assert_close(model(x), logits, rtol=0, atol=1e-5)


def test_fx_trace_without_autograd_keeps_the_batch_symbolic():
    """FX traces without autograd too (timm's suite traces under inference_mode): the trace must not branch on the
    batch size, and the traced graph must give the model's values at a batch that the eager model chunks."""
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).eval()
    with torch.inference_mode():
        traced = timm.models.create_feature_extractor(model, return_nodes={'head': 'logits'})
        x = torch.randn(10, 3, 64, 64)
        torch.testing.assert_close(traced(x)['logits'], model(x), rtol=0, atol=1e-5)
