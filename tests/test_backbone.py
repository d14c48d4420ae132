"""The backbone's layers: timm's `Attention` and `Block` with fewer copies, the same outputs and gradients."""
from typing import List

import pytest
import torch

import timm
from timm.layers import Attention
from timm.models.vision_transformer import Block

import timm_t2t  # noqa: F401  registers the models
from conftest import OpLog
from timm_t2t.models.backbone import ResidualAccumulateBlock, SplitHeadsAttention
from timm_t2t.models.t2t_vit import TokenPerformer, TokenTransformer

COPIES = {'aten.cat', 'aten.stack', 'aten.clone', 'aten.copy_', 'aten._to_copy'}


def _pair(fused: bool, **kwargs) -> List[Attention]:
    torch.manual_seed(0)
    theirs = Attention(48, num_heads=4, **kwargs)
    ours = SplitHeadsAttention(48, num_heads=4, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    for m in (theirs, ours):
        m.fused_attn = fused
    return [theirs, ours]


@pytest.mark.parametrize('kwargs', [{}, {'qkv_bias': True, 'qk_norm': True, 'norm_layer': torch.nn.LayerNorm}],
                         ids=['plain', 'qk_norm'])
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'explicit'])
def test_same_outputs_and_gradients_as_timm_attention(fused, kwargs):
    theirs, ours = _pair(fused, **kwargs)
    x = torch.randn(2, 7, 48)
    g = torch.randn(2, 7, 48)
    results = []
    for m in (theirs, ours):
        xi = x.clone().requires_grad_(True)
        out = m(xi)
        grads = torch.autograd.grad(out, [xi, *m.parameters()], g)
        results.append((out, grads))
    (want, want_grads), (got, got_grads) = results
    assert torch.equal(got, want)
    assert len(got_grads) == len(want_grads) >= 3
    for a, b in zip(got_grads, want_grads):
        assert torch.equal(a, b)  # the same values, only copied differently
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_backward_copies_the_qkv_gradient_once():
    theirs, ours = _pair(True)
    qkv_numel = 2 * 7 * 3 * 48
    counts = []
    for m in (theirs, ours):
        out = m(torch.randn(2, 7, 48, requires_grad=True))
        with OpLog() as log:
            out.backward(torch.ones_like(out))
        counts.append(sum(name.rsplit('.', 1)[0] in COPIES and n == qkv_numel for name, n in log.ops))
    assert counts == [2, 1]  # timm's: unbind's stack, then reshape's copy; ours: one stack into the Linear's layout


def test_models_use_it_and_it_scripts():
    model = timm.create_model('t2t_vit_7').eval()
    assert all(type(block) is ResidualAccumulateBlock for block in model.blocks)
    assert all(type(block.attn) is SplitHeadsAttention for block in model.blocks)
    scripted = torch.jit.script(model.blocks[0])  # takes the view split: TorchScript compiles no autograd function
    tokens = torch.randn(1, 197, model.embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(scripted(tokens), model.blocks[0](tokens), rtol=1e-5, atol=1e-5)


def _blocks(**kwargs) -> List[torch.nn.Module]:
    """timm's Block and ours with the same weights, as `t2t_vit` builds them."""
    torch.manual_seed(0)
    ours = timm.create_model('t2t_vit_7', depth=1, **kwargs).blocks[0].eval()
    theirs = Block(256, 4, mlp_ratio=2., norm_layer=torch.nn.LayerNorm).eval()
    theirs.load_state_dict(ours.state_dict())
    return [theirs, ours]


def test_block_accumulates_its_branches_into_the_residual_without_autograd():
    theirs, ours = _blocks()
    x = torch.randn(2, 197, 256)
    x_before = x.clone()
    writes = []
    with torch.no_grad():
        for block in (theirs, ours):
            with OpLog() as log:
                out = block(x)
            torch.testing.assert_close(out, theirs(x), rtol=1e-5, atol=1e-5)
            writes.append(sorted(name for name, n in log.ops if n == x.numel() and name.startswith('aten.add')))
    # timm: proj and fc2 each write a fresh output, then two residual adds make two more tensors; ours: both
    # branches' GEMMs accumulate into one tensor, x + proj.bias (addmm with out=, which FLOP counters count)
    assert writes == [
        ['aten.add.Tensor'] * 2 + ['aten.addmm.default'] * 2,
        ['aten.add.Tensor', 'aten.add_.Tensor'] + ['aten.addmm.out'] * 2]
    assert torch.equal(x, x_before)  # the input is never written to


def test_block_runs_as_timms_where_intermediates_are_visible():
    theirs, ours = _blocks()
    x = torch.randn(2, 197, 256)
    seen = []
    handle = ours.attn.proj.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    handle.remove()
    assert len(seen) == 1  # the hooked projection ran as a module
    ours.train()  # and so do train mode and autograd: the same values and gradients
    theirs.train()
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(ours(xg), theirs(x), rtol=1e-5, atol=1e-5)


def test_feature_taps_are_not_overwritten_by_later_blocks():
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=3).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fast = model.forward_intermediates(x, indices=[2, 3, 4], intermediates_only=True)
    with torch.enable_grad():  # autograd on: timm's block path
        plain = model.forward_intermediates(x, indices=[2, 3, 4], intermediates_only=True)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('layer_cls', [TokenPerformer, TokenTransformer])
def test_t2t_layers_accumulate_into_the_shortcut_without_autograd(layer_cls):
    """In eval mode without autograd a T2T layer's attention GEMM writes `v + proj.bias + attention` into one fresh
    tensor and fc2 accumulates into it, with the values of the module-by-module path (which a hook forces)."""
    torch.manual_seed(0)
    layer = layer_cls(36, 16).eval()
    for p in layer.parameters():  # nonzero biases, so that a bias added twice or not at all shows
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 50, 36)
    x_before = x.clone()
    tokens = 2 * 50 * 16
    writes, outs = [], []
    with torch.no_grad():
        for hooked in (True, False):
            handle = layer.mlp.fc2.register_forward_hook(lambda m, i, o: None) if hooked else None
            with OpLog() as log:
                outs.append(layer(x))
            if handle is not None:
                handle.remove()
            writes.append(sorted(name for name, n in log.ops if n == tokens and name.startswith(
                ('aten.add', 'aten.baddbmm', 'aten.addmm', 'aten.clone'))))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    assert torch.equal(x, x_before)
    # module by module: the attention's and fc2's GEMMs write fresh outputs, then two residual adds two more; here
    # both GEMMs accumulate (`out=`) into one fresh `v + proj.bias`, and fc2's bias is added in place. (fc1's
    # addmm.default is in both.)
    gemm = 'aten.baddbmm' if layer_cls is TokenPerformer else 'aten.addmm'
    assert writes == [
        sorted(['aten.add.Tensor'] * 2 + ['aten.addmm.default'] * 2 + [f'{gemm}.default']),
        sorted(['aten.add.Tensor', 'aten.add_.Tensor', 'aten.addmm.default', 'aten.addmm.out', f'{gemm}.out'])]


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_eval_under_cpu_autocast(arch):
    """Eval mode without autograd under CPU autocast runs (the in-place `out=` GEMMs, which autocast cannot cast,
    step aside) and stays near the float32 result."""
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_dropouts_switched_on_in_an_eval_model_still_drop(arch):
    """Monte Carlo dropout (an eval model with its dropouts in train mode) drops without autograd too: the in-place
    paths, which skip the dropouts, step aside, and the result is the one with autograd on for the same draws."""
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2, img_size=64, proj_drop_rate=0.1).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.train()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(x)
        second = model(x)
    torch.manual_seed(1)
    with_grad = model(x)
    assert not torch.allclose(first, second)  # the masks differ between calls
    torch.testing.assert_close(first, with_grad.detach(), rtol=1e-5, atol=1e-5)
