"""The Performer T2T layer's training path (`performer_residual`) against autograd and numerical gradients."""
import pytest
import torch

from timm_t2t.models import t2t_vit
from timm_t2t.models.performer import performer_attention, performer_residual
from timm_t2t.models.t2t_vit import BoolMaskDropout, TokenPerformer


def _inputs(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T, E, M = 2, 5, 4, 3
    kqv = 0.5 * torch.randn(B, T, 3 * E, generator=g, dtype=dtype)
    w = torch.randn(M, E, generator=g, dtype=dtype)
    proj_weight = torch.randn(E, E, generator=g, dtype=dtype)
    proj_bias = torch.randn(E, generator=g, dtype=dtype)
    keep = torch.rand(B, T, E, generator=g) >= 0.3
    return kqv, w, proj_weight, proj_bias, keep


@pytest.mark.parametrize('dropout', [False, True])
def test_performer_residual_gradients_against_numerical(dropout):
    kqv, w, proj_weight, proj_bias, keep = _inputs(torch.float64)
    keep, scale = (keep, 1 / 0.7) if dropout else (None, 1.)
    args = [t.requires_grad_() for t in (kqv, proj_weight, proj_bias)]
    assert torch.autograd.gradcheck(
        lambda kqv, pw, pb: performer_residual(kqv, w, 1e-8, pw, pb, keep, scale), args)
    # only the projection trainable (kqv from a frozen layer): the shortcut that skips the k, q, v gradients
    assert torch.autograd.gradcheck(
        lambda pw, pb: performer_residual(kqv.detach(), w, 1e-8, pw, pb, keep, scale), args[1:])


def test_performer_residual_batched_backward():
    """`is_grads_batched` (vmap over backward, as `torch.autograd.functional.jacobian(vectorize=True)` runs it) gives
    the gradients of one backward per grad output."""
    kqv, w, proj_weight, proj_bias, keep = _inputs(torch.float32)
    kqv.requires_grad_()
    out = performer_residual(kqv, w, 1e-8, proj_weight, proj_bias, keep, 1 / 0.7)
    grads = torch.randn(3, *out.shape, generator=torch.Generator().manual_seed(5))
    (batched,) = torch.autograd.grad(out, kqv, grads, retain_graph=True, is_grads_batched=True)
    for g, got in zip(grads, batched):
        torch.testing.assert_close(got, torch.autograd.grad(out, kqv, g, retain_graph=True)[0])


def test_performer_residual_rejects_trainable_features():
    kqv, w, proj_weight, proj_bias, _ = _inputs(torch.float32)
    with pytest.raises(ValueError, match='w requires grad'):
        performer_residual(kqv, w.requires_grad_(), 1e-8, proj_weight, proj_bias)


@pytest.mark.parametrize('dropout', [False, True])
def test_performer_residual_forward_is_the_plain_composition(dropout):
    """Bit-identical to `v + dropout(performer_attention(...))` with the same mask."""
    kqv, w, proj_weight, proj_bias, keep = _inputs(torch.float32)
    k, q, v = kqv.split(w.shape[1], dim=-1)
    y = performer_attention(q, k, v, w, 1e-8, proj_weight, proj_bias)
    if dropout:
        want = v + torch.where(keep, y, 0.) * (1 / 0.7)
        got = performer_residual(kqv, w, 1e-8, proj_weight, proj_bias, keep, 1 / 0.7)
    else:
        want = v + y
        got = performer_residual(kqv, w, 1e-8, proj_weight, proj_bias)
    assert torch.equal(got, want)


def test_token_performer_training_matches_autograd_path(monkeypatch):
    """In training, TokenPerformer takes `performer_residual`: same outputs and dropout masks as autograd's graph of
    the plain path, and the same gradients for its input and every parameter, to float32 rounding."""
    torch.manual_seed(0)
    layer = TokenPerformer(36, 8).train()
    x = torch.randn(2, 40, 36, requires_grad=True)
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return performer_residual(*args, **kwargs)

    def run():
        torch.manual_seed(1)  # the two dropouts draw the same masks on both paths
        out = layer(x)
        return out, torch.autograd.grad((out * out).sum(), [x, *layer.parameters()])

    monkeypatch.setattr(t2t_vit, 'performer_residual', counted)
    out, grads = run()
    assert len(calls) == 1
    monkeypatch.setattr(TokenPerformer, '_attention_own_backward', lambda self, kqv: False)
    want_out, want_grads = run()
    assert len(calls) == 1
    assert torch.equal(out, want_out)
    torch.manual_seed(2)
    assert not torch.equal(layer(x), out)  # other masks, other outputs: the equality above needs the same masks
    for (name, _), got, want in zip([('x', None), *layer.named_parameters()], grads, want_grads):
        # float32 rounding of sums over 40 tokens, relative to each gradient's size
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item(), msg=name)


def _count_calls(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return performer_residual(*args, **kwargs)
    monkeypatch.setattr(t2t_vit, 'performer_residual', counted)
    return calls


def test_token_performer_training_keeps_hooks(monkeypatch):
    """Hooks on the dropout (its own forward and backward hooks, or global module hooks) still fire: the layer then
    runs autograd's graph."""
    torch.manual_seed(0)
    layer = TokenPerformer(36, 8).train()
    x = torch.randn(2, 40, 36, requires_grad=True)
    calls = _count_calls(monkeypatch)
    layer(x).sum().backward()
    assert len(calls) == 1  # no hooks: the fast path
    seen = []
    for register, name in ((layer.proj_drop.register_forward_hook, 'forward'),
                           (layer.proj_drop.register_full_backward_hook, 'backward')):
        handle = register(lambda module, *args, name=name: seen.append(name))
        layer(x).sum().backward()
        handle.remove()
    assert seen == ['forward', 'backward']
    seen.clear()
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.append(module) if module is layer.proj_drop else None)
    try:
        layer(x).sum().backward()
    finally:
        handle.remove()
    assert seen == [layer.proj_drop]
    assert len(calls) == 1


def test_token_performer_training_under_autocast(monkeypatch):
    """Under bf16 autocast the layer runs autograd's graph (the attention in float32) and trains."""
    torch.manual_seed(0)
    layer = TokenPerformer(36, 8).train()
    x = torch.randn(2, 40, 36, requires_grad=True)
    calls = _count_calls(monkeypatch)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert not calls
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_scripted_layer_trains():
    """TorchScript compiles the training path (scripted modules multiply by the bool mask and use autograd)."""
    torch.manual_seed(0)
    layer = torch.jit.script(TokenPerformer(36, 8).train())
    x = torch.randn(2, 40, 36, requires_grad=True)
    layer(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    drop = torch.jit.script(BoolMaskDropout(0.5).train())
    assert set(drop(torch.ones(1000)).unique().tolist()) == {0., 2.}


@pytest.mark.parametrize('dropout', [False, True])
def test_performer_residual_double_backward(dropout):
    """Second derivatives (create_graph=True: gradient penalties, Hessian-vector products) are right too."""
    kqv, w, proj_weight, proj_bias, keep = _inputs(torch.float64, seed=1)
    keep, scale = (keep, 1 / 0.7) if dropout else (None, 1.)
    args = [t.requires_grad_() for t in (kqv, proj_weight, proj_bias)]
    assert torch.autograd.gradgradcheck(
        lambda kqv, pw, pb: performer_residual(kqv, w, 1e-8, pw, pb, keep, scale), args)
