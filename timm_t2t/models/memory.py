"""Memory savers for the MLPs: keep the input of a cheap op for backward, not its output; one temporary fewer without
autograd.

A Linear keeps its input for the weight gradient. After a GELU that input is the GELU output, while the GELU itself
keeps its own input: two tensors of the MLP's hidden width per block. `gelu_linear` keeps only the GELU input and
recomputes the GELU in backward (one elementwise op), so each MLP keeps one hidden-width tensor instead of two. The
forward arithmetic is unchanged; gradients match autograd's to float32 rounding.

Without autograd the GELU runs in place on the first Linear's output: one hidden-width tensor fewer to allocate per
MLP. On CPU a fresh allocation that large often comes as fresh pages from the OS, each first touched through a page
fault.
"""
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm.layers import Mlp
from timm.layers._fx import register_notrace_function

__all__ = ['gelu_linear', 'GeluRecomputeMlp']


class _GeluLinear(torch.autograd.Function):
    """`F.linear(F.gelu(h), weight, bias)` keeping `h` (not `gelu(h)`) for backward."""

    @staticmethod
    def forward(
            ctx: torch.autograd.function.FunctionCtx,
            h: torch.Tensor,
            weight: torch.Tensor,
            bias: Optional[torch.Tensor],
            approximate: str,
    ) -> torch.Tensor:
        ctx.approximate = approximate
        ctx.has_bias = bias is not None
        ctx.save_for_backward(h, weight)
        return F.linear(F.gelu(h, approximate=approximate), weight, bias)

    @staticmethod
    def backward(
            ctx: torch.autograd.function.FunctionCtx,
            grad_out: torch.Tensor,
    ) -> Tuple[Optional[torch.Tensor], ...]:
        h, weight = ctx.saved_tensors
        grad_h = grad_weight = grad_bias = None
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            act = F.gelu(h, approximate=ctx.approximate)  # the recompute
            grad_weight = grad_2d.t() @ act.reshape(-1, act.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_2d.sum(0)
        if ctx.needs_input_grad[0]:
            grad_h = torch.ops.aten.gelu_backward(grad_out @ weight, h, approximate=ctx.approximate)
        return grad_h, grad_weight, grad_bias, None


@torch.jit.unused  # TorchScript cannot compile autograd functions; scripted modules take the plain path
@register_notrace_function  # an FX leaf: it branches on autograd state
def gelu_linear(
        h: torch.Tensor,
        weight: torch.Tensor,
        bias: Optional[torch.Tensor] = None,
        approximate: str = 'none',
) -> torch.Tensor:
    """`F.linear(F.gelu(h), weight, bias)`, keeping only `h` for backward when autograd records.

    Under autocast (whose casts the custom backward would have to repeat) or without autograd it is the plain
    composition.

    Args:
        h: Pre-activations (..., hidden).
        weight: Linear weight (out, hidden).
        bias: Linear bias (out), or None.
        approximate: GELU approximation, 'none' (erf) or 'tanh'.

    Returns:
        (..., out).
    """
    records = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    if not records or torch.is_autocast_enabled(h.device.type):
        return F.linear(F.gelu(h, approximate=approximate), weight, bias)
    return _GeluLinear.apply(h, weight, bias, approximate)


class GeluRecomputeMlp(Mlp):
    """timm's `Mlp` (same parameters and keys) that recomputes its GELU in backward instead of keeping its output.

    When the MLP is `fc1 -> GELU -> fc2` (no dropout between, no hidden norm), the GELU is recomputed in backward in
    training (`gelu_linear`), and runs in place on fc1's output without autograd, unless something could see that
    output: a forward hook on fc1, an FX graph (which may return it as a feature) or `torch.jit.trace`. Otherwise it
    runs exactly as `Mlp`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.act_approximate = getattr(self.act, 'approximate', 'none')
        self.recompute_act = (
            isinstance(self.act, nn.GELU) and isinstance(self.norm, nn.Identity) and isinstance(self.fc2, nn.Linear)
            and self.drop1.p == 0.)

    @torch.jit.unused  # scripted modules never take the in-place path
    def _gelu_in_place(self, h: torch.Tensor) -> bool:
        """Whether the GELU may overwrite fc1's output `h`: no autograd, and nothing else can hold `h`. FX symbolic
        tracing passes proxies, not tensors, so a traced graph (whose outputs may include fc1's) never takes it."""
        return (not torch.is_grad_enabled() and isinstance(h, torch.Tensor) and not torch.jit.is_tracing()
                and not self.fc1._forward_hooks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.recompute_act and not torch.jit.is_scripting():
            if self._gelu_in_place(x):
                # aten's in-place GELU, which has no public Python wrapper.
                return self.drop2(self.fc2(torch.ops.aten.gelu_(x, approximate=self.act_approximate)))
            if self.training:
                return self.drop2(gelu_linear(x, self.fc2.weight, self.fc2.bias, self.act_approximate))
        x = self.act(x)
        x = self.drop1(x)
        x = self.norm(x)
        x = self.fc2(x)
        return self.drop2(x)
