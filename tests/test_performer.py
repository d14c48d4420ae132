"""The Performer T2T layer's training path (`performer_residual`) against autograd and numerical gradients."""
import pytest
import torch

from timm_t2t import t2t_vit
from timm_t2t.performer import performer_attention, performer_residual
from timm_t2t.t2t_vit import TokenPerformer


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
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_token_performer_training_keeps_module_hooks_and_autocast():
    """A hook on the dropout still sees its input (the layer then runs autograd's graph), and bf16 autocast still
    trains (the attention in float32)."""
    torch.manual_seed(0)
    layer = TokenPerformer(36, 8).train()
    x = torch.randn(2, 40, 36, requires_grad=True)
    seen = []
    handle = layer.proj_drop.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    layer(x).sum().backward()
    handle.remove()
    assert seen == [torch.Size([2, 40, 8])]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('dropout', [False, True])
def test_performer_residual_double_backward(dropout):
    """Second derivatives (create_graph=True: gradient penalties, Hessian-vector products) are right too."""
    kqv, w, proj_weight, proj_bias, keep = _inputs(torch.float64, seed=1)
    keep, scale = (keep, 1 / 0.7) if dropout else (None, 1.)
    args = [t.requires_grad_() for t in (kqv, proj_weight, proj_bias)]
    assert torch.autograd.gradgradcheck(
        lambda kqv, pw, pb: performer_residual(kqv, w, 1e-8, pw, pb, keep, scale), args)
