"""timm's ViT `Attention` with one copy fewer in backward, where it splits the qkv projection into heads.

timm splits the fused qkv output with `reshape -> permute -> unbind`. Autograd undoes that with two full copies of
the qkv gradient: `unbind`'s backward stacks the three head gradients on a new leading dim, then `reshape`'s backward
copies that permuted stack back into the Linear's layout. `split_heads` gives the same views in forward and writes
the three gradients straight into the Linear's layout in backward: one copy (measured on the 2-core CPU at batch 8,
384 wide, 6 heads: 71 -> 67 ms per block in forward plus backward; the gradients are the same values, only copied).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from timm.layers import Attention
from timm.layers._fx import register_notrace_function
from timm.layers.attention import maybe_add_mask, resolve_self_attn_mask

__all__ = ['SplitHeadsAttention', 'split_heads']


class _SplitHeads(torch.autograd.Function):
    """(B, N, 3, H, D) -> q, k, v views (B, H, N, D); backward stacks their gradients in the input's layout."""

    @staticmethod
    def forward(
            ctx: torch.autograd.function.FunctionCtx,
            qkv: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    @staticmethod
    def backward(
            ctx: torch.autograd.function.FunctionCtx,
            grad_q: torch.Tensor,
            grad_k: torch.Tensor,
            grad_v: torch.Tensor,
    ) -> torch.Tensor:
        # (autograd passes zeros for an output that got no gradient)
        grads = (grad_q, grad_k, grad_v)
        return torch.stack([g.transpose(1, 2) for g in grads], dim=2)  # B, N, 3, H, D: the Linear's layout


@torch.jit.unused  # TorchScript cannot compile autograd functions; scripted modules split with views
@register_notrace_function  # an FX leaf: it branches on autograd state
def split_heads(qkv: torch.Tensor, num_heads: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a fused qkv projection into per-head queries, keys and values.

    The same views as timm's `reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)`; when autograd records, its
    backward writes the three gradients into the projection's layout in one copy instead of two.

    Args:
        qkv: Output of the qkv projection (B, N, 3 * num_heads * head_dim).
        num_heads: Number of heads.

    Returns:
        q, k, v, each (B, num_heads, N, head_dim).
    """
    qkv = qkv.reshape(qkv.shape[0], qkv.shape[1], 3, num_heads, -1)
    if torch.is_grad_enabled() and qkv.requires_grad and not torch.jit.is_tracing():
        return _SplitHeads.apply(qkv)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


class SplitHeadsAttention(Attention):
    """timm's `Attention` (same parameters, options and outputs) splitting its heads with `split_heads`."""

    def forward(
            self,
            x: torch.Tensor,
            attn_mask: Optional[torch.Tensor] = None,
            is_causal: bool = False,
    ) -> torch.Tensor:
        B, N, C = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        if torch.jit.is_scripting():
            q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = split_heads(self.qkv(x), self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v,
                attn_mask=attn_mask,
                dropout_p=self.attn_drop.p if self.training else 0.,
                is_causal=is_causal,
            )
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = maybe_add_mask(attn, resolve_self_attn_mask(N, attn, attn_mask, is_causal))
            x = self.attn_drop(attn.softmax(dim=-1)) @ v
        x = self.norm(x.transpose(1, 2).reshape(B, N, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))
