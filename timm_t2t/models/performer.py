"""The Performer T2T layer's linear attention: the kernel, its float32 wrapper, a training path with its own backward,
and the dropout masks of the layer's always-on dropouts.

The attention of the official `Token_performer` (https://github.com/yitu-opensource/T2T-ViT, `models/token_performer.py`
at commit 0f63dc9): positive orthogonal random features, `phi(q) (phi(k)^T v) / (phi(q) . sum_t phi(k_t) + eps)`,
after Choromanski et al., "Rethinking Attention with Performers" (ICLR 2021). Written for timm-t2t; the arithmetic
and its rearrangements are described where they happen.

Original license notice (https://github.com/yitu-opensource/T2T-ViT/blob/main/LICENSE):

# Copyright (c) [2012]-[2021] Shanghai Yitu Technology Co., Ltd.
#
# This source code is licensed under the Clear BSD License
# LICENSE file in the root directory of this file
# All rights reserved.
#
# The Clear BSD License
#
# Redistribution and use in source and binary forms, with or without modification, are permitted (subject to the
# limitations in the disclaimer below) provided that the following conditions are met:
#   * Redistributions of source code must retain the above copyright notice, this list of conditions and the
#     following disclaimer.
#   * Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the
#     following disclaimer in the documentation and/or other materials provided with the distribution.
#   * Neither the name of the copyright holder nor the names of its contributors may be used to endorse or promote
#     products derived from this software without specific prior written permission.
#
# NO EXPRESS OR IMPLIED LICENSES TO ANY PARTY'S PATENT RIGHTS ARE GRANTED BY THIS LICENSE. THIS SOFTWARE IS PROVIDED BY
# THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO,
# THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
# COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
# CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA,
# OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT
# LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF
# ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""
import math
from typing import Any, List, Optional, Tuple

import torch

from timm.layers._fx import register_notrace_function

from .backbone import start_residual

__all__ = [
    'apply_keep_mask', 'bernoulli_keep_mask', 'performer_attention', 'performer_attention_fp32', 'performer_residual']


@torch.jit.unused  # TorchScript cannot compile torch.compiler.is_compiling; scripted modules draw with `rand`
def bernoulli_keep_mask(shape: List[int], p: float) -> torch.Tensor:
    """A CPU bool mask of `shape`, each element True with probability 1 - p, from the default generator.

    `torch.rand` turns each 32-bit draw of PyTorch's serial CPU generator (mt19937) into a float; this compares the
    two 32-bit halves of full-range 64-bit draws (the same 32-bit draws) with an integer threshold instead: no float
    conversion, 1.6-2x faster on the stem's 1.6M-element maps. Each element keeps with probability
    1 - round(p * 2^32) / 2^32, finer than `rand`'s 2^-24 steps. Under `torch.compile` it is `rand`, which inductor
    replaces with its own generator.
    """
    if torch.compiler.is_compiling():
        return torch.rand(shape, device='cpu') >= p
    n = math.prod(shape)
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device='cpu').random_(-2 ** 63, None)  # full 64-bit range
    threshold = min(round(p * 2 ** 32) - 2 ** 31, 2 ** 31 - 1)
    return bits.view(torch.int32)[:n].view(shape) >= threshold


@torch.jit.unused  # TorchScript reads `view(torch.uint8)` as a shape; scripted modules multiply by the bool mask
def apply_keep_mask(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """`x * keep * scale` for a bool mask `keep`, keeping only the mask (its bytes, as uint8) for backward.

    A product with a bool tensor converts it to a float tensor first, in forward and again in backward; the uint8 view
    of the same bytes is read as it is (a dropout at 8 x 3136 x 64 with its mask draw, forward + backward: 6.5-6.9 ms
    against 7.8-8.0 ms). Scaled in place on the fresh product.
    """
    return (x * keep.view(torch.uint8)).mul_(scale)


def _performer_parts(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        w: torch.Tensor,
        eps: float,
        proj_weight: Optional[torch.Tensor],
        proj_bias: Optional[torch.Tensor],
        shortcut: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`performer_attention` on float32 inputs, with what its backward needs: (out, phi(k), sum_t phi(k_t), kv,
    kv projected, normalised phi(q)); kv and its projection are the same tensor without `proj_weight`."""
    # phi(t) = exp(w t - |t|^2 / 2) / sqrt(m). The exponent is at most |w_i|^2 / 2 = 16 for the official w, so float32
    # is safe; the float16 denominator with its 1e-8 epsilon is what made the official layer NaN under AMP.
    # The 1 / sqrt(m) of phi(q) and phi(k) cancels between numerator and denominator except against eps, so it moves
    # onto eps (eps * m), and the exponentials are taken in place: fewer (B, T, M) temporaries, which is what these
    # T = 3136 token layers spend their time on. In place is safe for autograd: mm does not save its output.
    wt = w.t()
    qp = (q @ wt).sub_(0.5 * (q * q).sum(dim=-1, keepdim=True)).exp_()  # B, T, M
    kp = (k @ wt).sub_(0.5 * (k * k).sum(dim=-1, keepdim=True)).exp_()
    k_sum = kp.sum(dim=1)  # B, M
    denom = qp @ k_sum.unsqueeze(-1)  # B, T, 1
    kv = kp.transpose(1, 2) @ v  # B, M, E
    kv_proj = kv
    if proj_weight is not None:
        # proj(a @ kv) = a @ (kv @ W^T) + b: the projection runs on the M = 32 rows of kv instead of on T tokens
        # (stem 1.1x faster at batch 8 in inference and training, one (B, T, E) tensor fewer kept for backward).
        kv_proj = kv @ proj_weight.t()
    # Normalise phi(q) (M wide) rather than the output (E wide): half the division, and half the tensor autograd keeps.
    attn = qp / (denom + eps * w.shape[0])
    if shortcut is not None:
        # The GEMM accumulates into `shortcut + bias` (one fresh tensor, one pass), where adding the shortcut to the
        # output afterwards takes a second fresh tensor and pass. Same sums in another order (float32 rounding).
        out = start_residual(shortcut, proj_bias)
        return torch.baddbmm(out, attn, kv_proj, out=out), kp, k_sum, kv, kv_proj, attn
    out = attn @ kv_proj if proj_bias is None else torch.baddbmm(proj_bias, attn, kv_proj)
    return out, kp, k_sum, kv, kv_proj, attn


@register_notrace_function
def performer_attention(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        w: torch.Tensor,
        eps: float = 1e-8,
        proj_weight: Optional[torch.Tensor] = None,
        proj_bias: Optional[torch.Tensor] = None,
        shortcut: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Linear attention with positive random features (the T2T Performer), in float32, optionally projected.

    Args:
        q: Queries (B, T, E).
        k: Keys (B, T, E).
        v: Values (B, T, E).
        w: Random feature matrix (M, E).
        eps: Added to the normaliser, as in the official code.
        proj_weight: Weight (E_out, E) of a Linear applied to the attention output, or None.
        proj_bias: Its bias (E_out), or None.
        shortcut: (B, T, E_out) tensor added to the result (the T2T layer's `v` shortcut), or None.

    Returns:
        `phi(q) (phi(k)^T v) / (phi(q) . sum_t phi(k_t) + eps)` of shape (B, T, E), projected by the Linear if given,
        plus `shortcut` if given, in the dtype of `v`.
    """
    out_dtype = v.dtype
    q, k, v, w = q.float(), k.float(), v.float(), w.float()
    if proj_weight is not None:
        proj_weight = proj_weight.float()
    if proj_bias is not None:
        proj_bias = proj_bias.float()
    if shortcut is not None:
        shortcut = shortcut.float()
    return _performer_parts(q, k, v, w, eps, proj_weight, proj_bias, shortcut)[0].to(out_dtype)


@register_notrace_function
def performer_attention_fp32(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        w: torch.Tensor,
        eps: float = 1e-8,
        proj_weight: Optional[torch.Tensor] = None,
        proj_bias: Optional[torch.Tensor] = None,
        shortcut: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """`performer_attention` with autocast off, so AMP cannot lower its matmuls to fp16/bf16.

    A separate FX leaf because `torch.autocast` needs a concrete device type (FX proxies and the `meta` device, which
    has no autocast, have none). TorchScript (e.g. scripting an FX graph that calls this) skips the autocast block.
    """
    if torch.jit.is_scripting() or q.device.type == 'meta':
        return performer_attention(q, k, v, w, eps, proj_weight, proj_bias, shortcut)
    with torch.autocast(device_type=q.device.type, enabled=False):
        return performer_attention(q, k, v, w, eps, proj_weight, proj_bias, shortcut)


def _into(out: Optional[torch.Tensor], op: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    """`op(*args, **kwargs)`, written into `out` when given (a view into a larger result)."""
    return op(*args, **kwargs) if out is None else op(*args, **kwargs, out=out)


class _PerformerResidual(torch.autograd.Function):
    """`v + dropout(performer_attention(q, k, v, w, eps, proj_weight, proj_bias))` from the fused k, q, v projection,
    with a hand-written backward.

    Autograd's graph of the same forward runs about 25 elementwise passes over the (B, T, E) and (B, T, M) tensors in
    backward, then concatenates the k, q, v gradients. This backward writes those three gradients straight into one
    (B, T, 3E) tensor, each as a GEMM plus one fused elementwise pass, and keeps phi(k) and the normalised phi(q) for
    it, not phi(q) as well: the first T2T layer's attention at batch 8 (3136 tokens), with its dropout and shortcut,
    runs forward and backward 1.44x faster (65 -> 45 ms). The forward is the same arithmetic (bit-identical outputs);
    gradients match autograd's to float32 rounding. Under `create_graph=True` the backward differentiates autograd's
    graph of the same forward instead, so second derivatives stay right.

    The gradient, with a the normalised phi(q) (a_t = phi(q_t) / D_t), g_a the gradient reaching a (the output
    gradient, masked and scaled by the dropout, times kv_proj^T), g_kv the one reaching kv, and s = sum_t phi(k_t):
        r_t = sum_m (g_a)_tm a_tm,   g_zq = a * (g_a - r s^T),   g_q = g_zq w - q * rowsum(g_zq),
        g_s = -sum_t r_t a_t,        g_zk = phi(k) * (v g_kv^T + g_s),  g_k = g_zk w - k * rowsum(g_zk),
        g_v = g_out + phi(k) g_kv,   where z = t w^T - |t|^2 / 2 is the exponent of phi(t).
    """

    @staticmethod
    def forward(
            ctx: torch.autograd.function.FunctionCtx,
            kqv: torch.Tensor,
            w: torch.Tensor,
            eps: float,
            proj_weight: torch.Tensor,
            proj_bias: torch.Tensor,
            keep: Optional[torch.Tensor],
            keep_scale: float,
    ) -> torch.Tensor:
        k, q, v = kqv.split(w.shape[1], dim=-1)
        y, kp, k_sum, kv, kv_proj, attn = _performer_parts(q, k, v, w, eps, proj_weight, proj_bias)
        if keep is not None:
            y = y.mul_(keep.view(torch.uint8)).mul_(keep_scale)  # `apply_keep_mask`, in place on a fresh tensor
        ctx.save_for_backward(kqv, w, proj_weight, proj_bias, kp, k_sum, kv, kv_proj, attn, keep)
        ctx.eps, ctx.keep_scale = eps, keep_scale
        return y.add_(v)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        kqv, w, proj_weight, proj_bias, kp, k_sum, kv, kv_proj, attn, keep = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _PerformerResidual._differentiable_backward(ctx, grad)
        grad_y = grad if keep is None else apply_keep_mask(grad, keep, ctx.keep_scale)
        grad_proj_bias = grad_y.sum((0, 1)) if ctx.needs_input_grad[4] else None
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[3]):
            return None, None, None, None, grad_proj_bias, None, None
        grad_kv_proj = attn.transpose(1, 2) @ grad_y  # B, M, E_out
        grad_proj_weight = (grad_kv_proj.transpose(1, 2) @ kv).sum(0) if ctx.needs_input_grad[3] else None
        if not ctx.needs_input_grad[0]:
            return None, None, None, grad_proj_weight, grad_proj_bias, None, None
        k, q, v = kqv.split(w.shape[1], dim=-1)
        if torch._C._functorch.is_legacy_batchedtensor(grad) or torch._C._functorch.is_batchedtensor(grad):
            # vmap over backward (`is_grads_batched`): `out=` has no batching rule, so fresh tensors and a concat
            grad_kqv, (grad_k, grad_q, grad_v) = None, (None, None, None)
        else:
            grad_kqv = torch.empty_like(kqv, memory_format=torch.contiguous_format)
            grad_k, grad_q, grad_v = grad_kqv.split(w.shape[1], dim=-1)
        grad_kv = grad_kv_proj @ proj_weight  # B, M, E
        grad_attn = grad_y @ kv_proj.transpose(1, 2)  # B, T, M
        r = (grad_attn * attn).sum(-1, keepdim=True)  # B, T, 1
        grad_zq = torch.addcmul(grad_attn, r, k_sum.unsqueeze(1), value=-1.).mul_(attn)
        grad_q = _into(grad_q, torch.addcmul, grad_zq @ w, q, grad_zq.sum(-1, keepdim=True), value=-1.)
        grad_k_sum = (attn * r).sum(1).neg_()  # B, M
        grad_zk = torch.baddbmm(grad_k_sum.unsqueeze(1), v, grad_kv.transpose(1, 2)).mul_(kp)
        grad_k = _into(grad_k, torch.addcmul, grad_zk @ w, k, grad_zk.sum(-1, keepdim=True), value=-1.)
        grad_v = _into(grad_v, torch.baddbmm, grad, kp, grad_kv)
        if grad_kqv is None:
            grad_kqv = torch.cat([grad_k, grad_q, grad_v], dim=-1)
        return grad_kqv, None, None, grad_proj_weight, grad_proj_bias, None, None

    @staticmethod
    def _differentiable_backward(
            ctx: torch.autograd.function.FunctionCtx,
            grad: torch.Tensor,
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """With `create_graph=True` (double backward): the gradients of autograd's graph of the same forward, which
        autograd can differentiate again. The intermediates kept for the fast backward were computed without a graph,
        so a gradient built from them would be wrong to differentiate."""
        kqv, w, proj_weight, proj_bias, *_, keep = ctx.saved_tensors
        k, q, v = kqv.split(w.shape[1], dim=-1)
        y = _performer_parts(q, k, v, w, ctx.eps, proj_weight, proj_bias)[0]
        if keep is not None:
            y = apply_keep_mask(y, keep, ctx.keep_scale)  # recorded by autograd, as `BoolMaskDropout`'s is
        wanted = [i for i in (0, 3, 4) if ctx.needs_input_grad[i]]
        inputs = {0: kqv, 3: proj_weight, 4: proj_bias}
        grads = dict(zip(wanted, torch.autograd.grad(v + y, [inputs[i] for i in wanted], grad, create_graph=True)))
        return grads.get(0), None, None, grads.get(3), grads.get(4), None, None


@torch.jit.unused  # TorchScript cannot compile autograd functions; scripted modules take the plain path
def performer_residual(
        kqv: torch.Tensor,
        w: torch.Tensor,
        eps: float,
        proj_weight: torch.Tensor,
        proj_bias: torch.Tensor,
        keep: Optional[torch.Tensor] = None,
        keep_scale: float = 1.,
) -> torch.Tensor:
    """The Performer T2T layer's attention with its shortcut, for training: `v + dropout(attn)`.

    Runs in the inputs' dtype (one floating dtype for all) with autocast off; the model's Performer layers call it for
    float32 CPU tensors only.

    Args:
        kqv: The fused projection (B, T, 3E) in the official k, q, v order.
        w: Random feature matrix (M, E), no gradient.
        eps: Added to the normaliser, as in `performer_attention`.
        proj_weight: Output projection weight (E, E).
        proj_bias: Its bias (E).
        keep: Dropout mask (B, T, E), True where the attention output is kept, or None for no dropout.
        keep_scale: Factor for the kept elements, 1 / (1 - p).

    Returns:
        (B, T, E).

    Raises:
        ValueError: If `w` requires a gradient (the random features are fixed; this backward gives them none).
    """
    if w.requires_grad:
        raise ValueError('performer_residual keeps the random features w fixed, but w requires grad: detach it, or '
                         'use performer_attention, whose autograd graph differentiates w too')
    if kqv.device.type == 'meta':  # no autocast on `meta`
        return _PerformerResidual.apply(kqv, w, eps, proj_weight, proj_bias, keep, keep_scale)
    with torch.autocast(device_type=kqv.device.type, enabled=False):
        return _PerformerResidual.apply(kqv, w, eps, proj_weight, proj_bias, keep, keep_scale)
