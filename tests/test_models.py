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
    HF_HUB_NAMESPACE, BoolMaskDropout, TokenPerformer, TokenTransformer, bernoulli_keep_mask, kernel_major_columns,
    layer_norm_linear, performer_attention, sinusoid_pos_embed, soft_split_kernel_major)

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
    layer = TokenPerformer(147, 64)
    w = layer.w
    torch.testing.assert_close(w @ w.t(), 32 * torch.eye(32), atol=1e-4, rtol=0)


@pytest.mark.parametrize('amp_dtype', [torch.bfloat16, torch.float16])
def test_performer_finite_under_autocast(amp_dtype):
    """The official Performer gives NaN under AMP (fp16 denominator + 1e-8); this one computes it in float32."""
    torch.manual_seed(0)
    layer = TokenPerformer(147, 64).eval()
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
    """Linear attention equals the explicit kernel-weighted average over all tokens."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 6, 4).unbind(0)
    w = torch.randn(3, 4)
    phi = lambda t: torch.exp(t @ w.t() - 0.5 * (t * t).sum(-1, keepdim=True)) / math.sqrt(3)  # noqa: E731
    weights = phi(q) @ phi(k).transpose(1, 2)  # (1, T, T) kernel, fine at this size
    want = (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-8)
    torch.testing.assert_close(performer_attention(q, k, v, w), want, rtol=1e-5, atol=1e-6)
    # with a projection (folded into phi(k)^T v inside): the Linear applied to that output
    proj_weight, proj_bias = torch.randn(5, 4), torch.randn(5)
    torch.testing.assert_close(
        performer_attention(q, k, v, w, proj_weight=proj_weight, proj_bias=proj_bias),
        F.linear(want, proj_weight, proj_bias), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        performer_attention(q, k, v, w, proj_weight=proj_weight), want @ proj_weight.t(), rtol=1e-5, atol=1e-5)


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


def _saved_for_backward(fn):
    """Run fn() and return the tensors autograd saved for backward during it."""
    saved = []

    def pack(t):
        saved.append(t)
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved


@pytest.mark.parametrize('with_bias', [True, False])
def test_layer_norm_linear_equals_norm_then_linear(with_bias):
    torch.manual_seed(0)
    norm, linear = torch.nn.LayerNorm(12), torch.nn.Linear(12, 7, bias=with_bias)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 5, 12, requires_grad=True)
    params = [x, norm.weight, norm.bias, linear.weight] + ([linear.bias] if with_bias else [])
    want = linear(norm(x))
    got = layer_norm_linear(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # nothing to keep for backward: exactly the plain composition
        torch.testing.assert_close(
            layer_norm_linear(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias), want,
            rtol=0, atol=0)


@pytest.mark.parametrize('channels_last,shape,ksp', [
    (False, (2, 3, 19, 23), (7, 4, 2)), (True, (2, 9, 11, 5), (3, 2, 1))], ids=['image', 'token_map'])
def test_kernel_major_split_is_a_column_permutation_of_unfold(channels_last, shape, ksp):
    """The eager soft splits hold nn.Unfold's values, each patch in (i, j, c) order (an image read through a
    channels-last view), and `kernel_major_columns` reorders stored weights to match: exactly, on odd and non-square
    sizes."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if not channels_last:
        x = x.permute(0, 2, 3, 1)  # the model's view of an image: not contiguous
    k, s, p = ksp
    unfold = torch.nn.Unfold(k, padding=p, stride=s)(x.permute(0, 3, 1, 2)).transpose(1, 2)  # B, L, c*k*k + i*k + j
    got = soft_split_kernel_major(x, k, s, p).flatten(1, 2)  # B, L, (i * k + j) * C + c
    C = x.shape[-1]
    for c, i, j in [(0, 0, 0), (C - 1, 0, 0), (1, 2, 1), (2, 1, 2), (C - 1, k - 1, k - 1)]:
        assert torch.equal(got[..., (i * k + j) * C + c], unfold[..., c * k * k + i * k + j])
    assert torch.equal(kernel_major_columns(unfold, k), got)
    weight = torch.randn(7, C * k * k)
    assert torch.equal(weight[:, 1 * k * k + 2 * k + 0], kernel_major_columns(weight, k)[:, (2 * k + 0) * C + 1])


@pytest.mark.parametrize('shape,ksp', [
    ((2, 19, 23, 3), (7, 4, 2)), ((2, 13, 9, 5), (3, 2, 1)), ((1, 6, 7, 2), (3, 1, 0)), ((1, 4, 5, 2), (5, 2, 3))],
    ids=['image', 'token_map', 'no_padding', 'padding_beyond_map'])
def test_kernel_major_split_backward_is_unfolds(shape, ksp):
    """The split's own backward (a strided add per kernel position) gives autograd's gradient through nn.Unfold, and
    is differentiable again."""
    k, s, p = ksp
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    patches = soft_split_kernel_major(x, k, s, p)
    assert type(patches.grad_fn).__name__ == '_KernelMajorSplitBackward'
    grad = torch.randn(patches.shape, dtype=torch.float64)
    (got,) = torch.autograd.grad(patches, x, grad)
    C = shape[-1]
    grad_unfold_order = grad.flatten(1, 2).unflatten(-1, (k * k, C)).transpose(-1, -2).flatten(-2).transpose(1, 2)
    (want,) = torch.autograd.grad(F.unfold(x.permute(0, 3, 1, 2), k, padding=p, stride=s), x, grad_unfold_order)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    small = x[:1, :5, :6, :2].detach().clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda t: soft_split_kernel_major(t, k, s, p), (small,))


@pytest.mark.parametrize('grad', [True, False], ids=['autograd', 'no_grad'])
@pytest.mark.parametrize('layer_cls', [TokenPerformer, TokenTransformer])
def test_t2t_layer_reads_kernel_major_patches(layer_cls, grad):
    """`patch_kernel` makes a T2T layer read kernel-major patches with its stored (nn.Unfold order) weights: the same
    output to float32 rounding, and the same parameter gradients."""
    torch.manual_seed(0)
    layer = layer_cls(5 * 9, 8).eval()
    with torch.no_grad():
        layer.norm1.weight.normal_()
        layer.norm1.bias.normal_()
    patches = torch.randn(2, 6, 5 * 9)  # nn.Unfold order, 5 channels, 3 x 3 kernel
    with torch.set_grad_enabled(grad):
        want = layer(patches)
        got = layer(kernel_major_columns(patches, 3), patch_kernel=3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.equal(kernel_major_columns(patches, 3), patches)
    if grad:
        params = list(layer.parameters())
        g = torch.randn_like(want)
        for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(want, params, g)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('layer_cls', [TokenPerformer, TokenTransformer])
def test_first_t2t_layer_keeps_one_copy_of_the_patches_for_backward(layer_cls):
    """The image patches (147 wide, no gradient) are the stem's widest activation: the layer keeps one copy of them
    for backward (the normalised patches), not the LayerNorm's input and output both."""
    layer = layer_cls(147, 64).train()
    x = torch.randn(2, 30, 147)
    _, saved = _saved_for_backward(lambda: layer(x))
    assert sum(t.shape[-1:] == (147,) and t.numel() == x.numel() for t in saved) == 1
    # negative control: the unfused norm -> linear keeps two
    linear = layer.kqv if layer_cls is TokenPerformer else layer.attn.qkv
    _, saved = _saved_for_backward(lambda: linear(layer.norm1(x)))
    assert sum(t.shape[-1:] == (147,) and t.numel() == x.numel() for t in saved) == 2


def test_bool_mask_dropout():
    torch.manual_seed(0)
    p = 0.1
    x = torch.rand(200_000) + 1.
    drop = BoolMaskDropout(p)
    assert drop.eval()(x) is x
    x.requires_grad_(True)
    out, saved = _saved_for_backward(lambda: drop.train()(x))
    dropped = out == 0
    assert abs(dropped.float().mean().item() - p) < 0.005  # 7 standard deviations
    torch.testing.assert_close(out[~dropped], x[~dropped] / (1 - p))
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, (~dropped).float() / (1 - p))
    # what backward keeps of the input's size is the bool mask, viewed as uint8 (nn.Dropout keeps a float one on CPU)
    assert [t.dtype for t in saved if t.numel() == x.numel()] == [torch.uint8]
    _, saved = _saved_for_backward(lambda: torch.nn.Dropout(p).train()(x))
    assert [t.dtype for t in saved if t.numel() == x.numel()] == [torch.float32]
    assert (BoolMaskDropout(1.).train()(x) == 0).all()
    assert torch.equal(BoolMaskDropout(0.).train()(x), x)


def test_bernoulli_keep_mask_rates():
    """Both 32-bit halves of every 64-bit draw decide an element (even and odd positions keep at the same rate, odd
    sizes too); the rate follows p; the default generator's seed fixes the mask."""
    torch.manual_seed(0)
    mask = bernoulli_keep_mask([999, 1001], 0.1)
    assert mask.shape == (999, 1001) and mask.dtype == torch.bool
    even, odd = mask.flatten()[0:-1:2], mask.flatten()[1::2]
    for half in (even, odd):
        assert abs(half.float().mean().item() - 0.9) < 7 * math.sqrt(0.09 / half.numel())  # 7 standard deviations
    both = (even & odd).float().mean().item()  # independent halves: 0.81; one half copied into the other: 0.9
    assert abs(both - 0.81) < 7 * math.sqrt(0.81 * 0.19 / odd.numel())
    for p in (0.5, 0.97):
        n = 200_001
        assert abs(bernoulli_keep_mask([n], p).float().mean().item() - (1 - p)) < 7 * math.sqrt(p * (1 - p) / n)
    torch.manual_seed(3)
    first = bernoulli_keep_mask([3, 7], 0.5)
    torch.manual_seed(3)
    assert torch.equal(bernoulli_keep_mask([3, 7], 0.5), first)


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
