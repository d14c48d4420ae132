"""`SplitHeadsAttention`: timm's `Attention` with one copy of the qkv gradient in backward instead of two."""
from typing import List

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import timm
from timm.layers import Attention

import timm_t2t  # noqa: F401  registers the models
from timm_t2t.attention import SplitHeadsAttention

COPIES = {'aten.cat', 'aten.stack', 'aten.clone', 'aten.copy_', 'aten._to_copy'}


class _CopyLog(TorchDispatchMode):
    """Records the aten copies (and their output sizes) that run inside the context."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: List[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN202
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket._qualified_op_name.replace('::', '.') in COPIES:
            first = out[0] if isinstance(out, (tuple, list)) else out
            self.copies.append(first.numel())
        return out


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
        with _CopyLog() as log:
            out.backward(torch.ones_like(out))
        counts.append(sum(n == qkv_numel for n in log.copies))
    assert counts == [2, 1]  # timm's: unbind's stack, then reshape's copy; ours: one stack into the Linear's layout


def test_models_use_it_and_it_scripts():
    model = timm.create_model('t2t_vit_7').eval()
    assert all(type(block.attn) is SplitHeadsAttention for block in model.blocks)
    scripted = torch.jit.script(model.blocks[0])  # takes the view split: TorchScript compiles no autograd function
    tokens = torch.randn(1, 197, model.embed_dim)
    with torch.no_grad():
        assert torch.equal(scripted(tokens), model.blocks[0](tokens))
