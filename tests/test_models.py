"""Registration, construction, pretrained configs and numerics of every T2T-ViT variant."""
import math
import subprocess
import sys

import pytest
import timm
import torch
import torch.nn.functional as F

import timm_t2t  # noqa: F401  registers the models
from conftest import OpLog
from timm_t2t.models.t2t_vit import (
    HF_HUB_NAMESPACE, TokenPerformer, TokenTransformer, kernel_major, performer_attention,
    sinusoid_pos_embed, soft_split)

ARCHS = [
    't2t_vit_7', 't2t_vit_10', 't2t_vit_12', 't2t_vit_14', 't2t_vit_19', 't2t_vit_24',
    't2t_vit_t_14', 't2t_vit_t_19', 't2t_vit_t_24', 't2t_vit_14_resnext', 't2t_vit_14_wide',
]
PRETRAINED = [
    't2t_vit_7.in1k', 't2t_vit_10.in1k', 't2t_vit_12.in1k', 't2t_vit_14.in1k', 't2t_vit_14.in1k_384',
    't2t_vit_19.in1k', 't2t_vit_24.in1k', 't2t_vit_24.tl_in1k',
    't2t_vit_t_14.in1k', 't2t_vit_t_19.in1k', 't2t_vit_t_24.in1k',
]
# spec: parameter counts of the official models, all nn.Parameters (incl. the frozen pos_embed and w) and trainable only
PARAMS = {
    't2t_vit_7': (4_310_222, 4_255_694),
    't2t_vit_10': (5_889_230, 5_834_702),
    't2t_vit_12': (6_941_902, 6_887_374),
    't2t_vit_14': (21_545_550, 21_465_806),
    't2t_vit_19': (39_177_422, 39_085_070),
    't2t_vit_24': (64_105_934, 64_000_974),
    't2t_vit_t_14': (21_541_070, 21_465_422),
    't2t_vit_t_19': (39_172_942, 39_084_686),
    't2t_vit_t_24': (64_101_454, 64_000_590),
    't2t_vit_14_resnext': (21_545_550, 21_465_806),
    't2t_vit_14_wide': (25_156_302, 25_000_910),
}


def test_registry_lists_exactly_the_plugin_models():
    assert sorted(timm.list_models('t2t_vit*')) == sorted(ARCHS)
    assert sorted(timm.list_pretrained('t2t_vit*')) == sorted(PRETRAINED)


def test_import_overwrites_nothing_in_timm():
    code = (
        'import warnings, timm\n'
        'before = set(timm.list_models()) | set(timm.list_pretrained())\n'
        'with warnings.catch_warnings(record=True) as caught:\n'
        '    warnings.simplefilter("always")\n'
        '    import timm_t2t\n'
        'after = set(timm.list_models()) | set(timm.list_pretrained())\n'
        'assert not [w for w in caught if "overwrit" in str(w.message).lower()], caught\n'
        'assert not any(n.startswith("t2t") for n in before), before\n'
        'assert before <= after\n'
        'print(sorted(after - before))\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True,
        env={**__import__('os').environ, 'TIMM_T2T_AUTOLOAD': '0'})
    assert sorted(eval(out.stdout)) == sorted(ARCHS + PRETRAINED)


@pytest.mark.parametrize('arch', ARCHS)
def test_meta_construction_and_parameter_counts(arch):
    model = timm.create_model(arch, device='meta', dtype=torch.float32)
    assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())
    trainable = sum(p.numel() for p in model.parameters())
    frozen = sum(b.numel() for b in model.buffers())  # pos_embed and each Performer's w
    assert (trainable + frozen, trainable) == PARAMS[arch]
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize('arch', ['t2t_vit_14', 't2t_vit_t_14'])
def test_state_dict_keys_are_persistent_buffers(arch):
    model = timm.create_model(arch, device='meta')
    keys = set(model.state_dict())
    params = {n for n, _ in model.named_parameters()}
    assert 'pos_embed' in keys and 'pos_embed' not in params
    assert len(keys) == (188 if arch == 't2t_vit_14' else 184)  # the official key counts
    if arch == 't2t_vit_14':
        assert {'patch_embed.attn1.w', 'patch_embed.attn2.w'} <= keys - params


def test_unknown_kwarg_raises_type_error():
    with pytest.raises(TypeError, match='qk_scale'):
        timm.create_model('t2t_vit_7', qk_scale=0.1, device='meta')


def test_bad_t2t_layer_raises():
    with pytest.raises(ValueError, match="'performer' or 'transformer'"):
        timm.create_model('t2t_vit_7', t2t_layer='convolution', device='meta')


def test_architecture_kwargs_override():
    model = timm.create_model(
        't2t_vit_14', depth=3, num_classes=7, img_size=(64, 96), in_chans=1, drop_path_rate=0.2, device='meta')
    assert len(model.blocks) == 3 and model.head.out_features == 7
    assert model.pos_embed.shape[1] == 1 + 4 * 6  # 64x96 -> 16x24 -> 8x12 -> 4x6 tokens
    assert model.patch_embed.attn1.kqv.in_features == 1 * 49
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)


@pytest.mark.parametrize('arch', ARCHS)
def test_every_parameter_gets_a_gradient(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2, img_size=48, num_classes=5).train()
    model(torch.randn(2, 3, 48, 48)).logsumexp(dim=1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_architecture_details():
    m14 = timm.create_model('t2t_vit_14', device='meta')
    mt14 = timm.create_model('t2t_vit_t_14', device='meta')
    resnext = timm.create_model('t2t_vit_14_resnext', device='meta')
    assert m14.blocks[0].attn.scale == 64 ** -0.5 and resnext.blocks[0].attn.scale == 12 ** -0.5
    assert m14.blocks[0].attn.qkv.bias is None
    assert m14.norm.eps == 1e-5 and m14.blocks[0].norm1.eps == 1e-5
    assert m14.patch_embed.attn1.kqv.bias is not None and m14.patch_embed.attn1.w.shape == (32, 64)
    # transformer T2T layers scale by the input width, not the head width
    assert mt14.patch_embed.attn1.attn.scale == pytest.approx(147 ** -0.5)
    assert mt14.patch_embed.attn2.attn.scale == pytest.approx(576 ** -0.5)
    assert mt14.patch_embed.attn1.attn.qkv.bias is None


def test_sinusoid_table_matches_formula():
    n, d = 5, 6
    table = sinusoid_pos_embed(n, d)[0]
    for p in range(n):
        for j in range(d):
            angle = p / 10000 ** (2 * (j // 2) / d)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[p, j].item() == pytest.approx(want, abs=1e-7)
    model = timm.create_model('t2t_vit_7', depth=1)
    torch.testing.assert_close(model.pos_embed, sinusoid_pos_embed(197, 256))


def test_random_features_are_scaled_orthogonal():
    layer = TokenPerformer(147, 64, patch_size=7)
    w = layer.w
    torch.testing.assert_close(w @ w.t(), 32 * torch.eye(32), atol=1e-4, rtol=0)


@pytest.mark.parametrize('amp_dtype', [torch.bfloat16, torch.float16])
def test_performer_finite_under_autocast(amp_dtype):
    """The official Performer gives NaN under AMP (fp16 denominator + 1e-8); this one computes it in float32."""
    torch.manual_seed(0)
    layer = TokenPerformer(147, 64, patch_size=7).eval()
    with torch.no_grad():
        layer.kqv.weight.mul_(20)  # large activations, exp() of the feature map far beyond fp16 range
    x = torch.randn(2, 3136, 147)
    with torch.no_grad():
        ref = layer(x)
        with torch.autocast('cpu', dtype=amp_dtype):
            out = layer(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()
    # Negative control: the same arithmetic in half precision (what AMP made of the official layer) gives NaN,
    # because the kernel features underflow and the 1e-8 epsilon is 0 in float16.
    with torch.no_grad():
        k, q, v = layer.kqv(layer.norm1(x)).split(64, dim=-1)
        half = [t.to(torch.float16) for t in (q, k, v, layer.w)]
        qp, kp = [torch.exp(t @ half[3].t() - 0.5 * (t * t).sum(-1, keepdim=True)) for t in half[:2]]
        y = (qp @ (kp.transpose(1, 2) @ half[2])) / (qp @ kp.sum(1).unsqueeze(-1) + 1e-8)
    assert not torch.isfinite(y).all()


def test_performer_attention_against_explicit_sum():
    """Linear attention equals the explicit kernel-weighted average over all tokens, then the projection (folded into
    phi(k)^T v inside)."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 6, 4).unbind(0)
    w = torch.randn(3, 4)
    phi = lambda t: torch.exp(t @ w.t() - 0.5 * (t * t).sum(-1, keepdim=True)) / math.sqrt(3)  # noqa: E731
    weights = phi(q) @ phi(k).transpose(1, 2)  # (1, T, T) kernel, fine at this size
    want = (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-8)
    torch.testing.assert_close(performer_attention(q, k, v, w, 1e-8, torch.eye(4), torch.zeros(4)), want,
                               rtol=1e-5, atol=1e-6)
    proj_weight, proj_bias = torch.randn(5, 4), torch.randn(5)
    torch.testing.assert_close(
        performer_attention(q, k, v, w, 1e-8, proj_weight, proj_bias),
        F.linear(want, proj_weight, proj_bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_default_path_builds_no_n_by_n_attention(arch):
    model = timm.create_model(arch, depth=1).eval()
    n = 56 * 56
    with torch.inference_mode(), OpLog() as probe:
        model(torch.randn(1, 3, 224, 224))
    assert max(numel for _, numel in probe.ops) < n * n
    model.set_fused_attn(False)
    with torch.inference_mode(), OpLog() as probe:
        model(torch.randn(1, 3, 224, 224))
    if arch == 't2t_vit_t_14':  # the official arithmetic does build it: the probe can see one
        assert max(numel for _, numel in probe.ops) >= n * n


def _unfold_patches(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """The official soft split of a channels-last map: nn.Unfold's (B, L, c * k * k + i * k + j) patches."""
    return torch.nn.Unfold(k, padding=p, stride=s)(x.permute(0, 3, 1, 2)).transpose(1, 2)


@pytest.mark.parametrize('channels_last,shape,ksp', [
    (False, (2, 3, 19, 23), (7, 4, 2)), (True, (2, 9, 11, 5), (3, 2, 1)), (True, (1, 10, 9, 2), (4, 2, 0)),
    (True, (1, 4, 5, 2), (5, 2, 3))], ids=['image', 'token_map', 'no_padding', 'padding_beyond_map'])
def test_soft_split_is_a_column_permutation_of_unfold(channels_last, shape, ksp):
    """`soft_split` holds nn.Unfold's values, each patch in (i, j, c) order (an image read through a channels-last
    view), and `kernel_major` reorders stored weights to match: exactly, on odd and non-square sizes, traced too."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if not channels_last:
        x = x.permute(0, 2, 3, 1)  # the model's view of an image: not contiguous
    k, s, p = ksp
    unfold = _unfold_patches(x, k, s, p)
    got = soft_split(x, k, s, p)
    C = x.shape[-1]
    for c, i, j in [(0, 0, 0), (C - 1, 0, 0), (1, 1, 1), (C - 1, k - 1, k - 1)]:
        assert torch.equal(got[..., (i * k + j) * C + c], unfold[..., c * k * k + i * k + j])
    assert torch.equal(kernel_major(unfold, k), got)
    traced = torch.jit.trace(lambda t: soft_split(t, k, s, p), (x,))
    assert torch.equal(traced(x), got)
    weight = torch.randn(7, C * k * k)
    assert torch.equal(weight[:, 1 * k * k + 1 * k + 0], kernel_major(weight, k)[:, (1 * k + 0) * C + 1])


def test_soft_split_gradient_is_unfolds():
    """The gather's backward gives autograd's gradient through nn.Unfold (overlapping patches add up)."""
    k, s, p = 3, 2, 1
    x = torch.randn(2, 9, 11, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    grad = torch.randn(2, 5 * 6, 9 * 4, dtype=torch.float64)  # kernel-major
    (got,) = torch.autograd.grad(soft_split(x, k, s, p), x, grad)
    grad_unfold_order = grad.unflatten(-1, (k * k, 4)).transpose(-1, -2).flatten(-2)
    (want,) = torch.autograd.grad(_unfold_patches(x, k, s, p), x, grad_unfold_order)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize('layer_cls', [TokenPerformer, TokenTransformer])
def test_t2t_layer_reads_soft_split_patches_with_official_weights(layer_cls):
    """A T2T layer's first LayerNorm and projection read `soft_split` patches with the weights stored in nn.Unfold's
    order (the official checkpoints'): the values and parameter gradients of the official composition on nn.Unfold
    patches."""
    torch.manual_seed(0)
    layer = layer_cls(5 * 9, 8, patch_size=3).eval()
    with torch.no_grad():
        layer.norm1.weight.normal_()
        layer.norm1.bias.normal_()
    linear = layer.kqv if layer_cls is TokenPerformer else layer.attn.qkv
    x = torch.randn(2, 6, 7, 5)
    norm = layer.norm1
    want = F.linear(F.layer_norm(_unfold_patches(x, 3, 2, 1), [45], norm.weight, norm.bias), linear.weight, linear.bias)
    got = linear(norm(soft_split(x, 3, 2, 1)))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    params = list(layer.norm1.parameters()) + list(linear.parameters())
    g = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('tag', PRETRAINED)
def test_pretrained_cfgs_complete(tag):
    cfg = timm.models.get_pretrained_cfg(tag)
    arch = tag.split('.')[0]
    assert cfg.hf_hub_id == f'{HF_HUB_NAMESPACE}/{tag}'
    assert cfg.url.startswith('https://github.com/yitu-opensource/T2T-ViT/releases/download/main/')
    assert cfg.license == 'bsd-3-clause-clear' and cfg.paper_ids == 'arXiv:2101.11986'
    assert cfg.origin_url == 'https://github.com/yitu-opensource/T2T-ViT'
    assert cfg.crop_pct == 0.9 and cfg.interpolation == 'bicubic' and cfg.classifier in ('head', ('head', 'aux_head'))
    assert cfg.input_size == ((3, 384, 384) if tag.endswith('384') else (3, 224, 224))
    model = timm.create_model(tag, device='meta')
    assert model.patch_embed.img_size == cfg.input_size[1:]
    first = model.get_submodule(cfg.first_conv)
    assert first.in_features == 3 * 49
