"""Grad checkpointing (timm's training-memory saver) covers the stem: it changes what autograd keeps, not the forward
values or the gradients."""
from typing import Dict

import pytest
import torch
import torch.nn.functional as F

import timm
import timm_t2t  # noqa: F401  registers the models
from timm_t2t.bench.speed import saved_activation_bytes


def _train_step(model: torch.nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    torch.manual_seed(1)  # the Performer's always-on dropouts draw the same masks on both runs
    model.zero_grad()
    F.cross_entropy(model(x), torch.tensor([3, 7])).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_grad_checkpointing_covers_the_stem(arch):
    """`set_grad_checkpointing()` (timm's --grad-checkpointing) recomputes the stem's T2T layers in backward: they run
    twice per step, the gradients are those of the plain step, and the stem keeps (almost) nothing."""
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2, img_size=64).train()
    x = torch.randn(2, 3, 64, 64)
    expected = _train_step(model, x)
    stem_saved = saved_activation_bytes(model.patch_embed, x)

    model.set_grad_checkpointing(True)
    calls = []
    for layer in (model.patch_embed.attn1, model.patch_embed.attn2):
        layer.register_forward_pre_hook(lambda m, i: calls.append(m))  # recomputes stop once all is recomputed
    grads = _train_step(model, x)
    assert len(calls) == 4  # attn1 and attn2, each in forward and again in backward
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # Checkpointed, the stem keeps its two 64-wide maps (16 x 16 and 8 x 8 tokens), the inputs of attn2 and of the
    # projection (a Conv, which keeps only its input), and nothing of its layers.
    checkpointed = saved_activation_bytes(model.patch_embed, x)
    assert checkpointed == 2 * 4 * 64 * (16 * 16 + 8 * 8)
    assert checkpointed < stem_saved / 10
