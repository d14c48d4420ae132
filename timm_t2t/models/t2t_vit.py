"""Tokens-to-Token Vision Transformer (T2T-ViT)

A timm implementation of the models from:
    `Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet`
    - https://arxiv.org/abs/2101.11986 (Yuan et al., ICCV 2021)

Architecture and numerics follow the official implementation at https://github.com/yitu-opensource/T2T-ViT
(model code at commit 0f63dc9), original copyright and license notice in the comment below. Official checkpoints
load through `checkpoint_filter_fn` and reproduce the official logits to float32 rounding.

Modifications and additions for timm by the timm-t2t authors:
  * timm's ViT `Block` in the backbone; fused attention (`F.scaled_dot_product_attention`) by default in the backbone
    and the Transformer T2T layers, the official arithmetic behind `set_fused_attn(False)`;
  * the Performer T2T layer in float32 (finite under fp16/bf16 autocast), its output projection folded into
    `phi(k)^T v`;
  * soft splits as one gather of channel runs from a channels-last map, the weights that read the patches reordered
    at use (the state dict keeps the official layout), and the last split merged with the projection into one
    convolution;
  * `pos_embed` and the Performer features as buffers, any input size, stem feature taps, the timm model API.

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
from typing import Any, Dict, Final, List, Optional, Set, Tuple, Type, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Mlp, _assert, get_device_dtype, resample_abs_pos_embed, to_2tuple, trunc_normal_, use_fused_attn
from timm.layers._fx import register_notrace_function
from timm.models import (
    build_model_with_cfg, checkpoint, checkpoint_seq, generate_default_cfgs, register_model, resolve_pretrained_cfg)
from timm.models._features import feature_take_indices
from timm.models._manipulate import adapt_input_conv
from timm.models.vision_transformer import Block

__all__ = ['T2TViT', 'TokensToToken', 'TokenPerformer', 'TokenTransformer', 'TokenAttention']

# Hugging Face Hub namespace that hosts the converted weights (`<namespace>/<arch>.<tag>`).
HF_HUB_NAMESPACE = 'timm-t2t'
RELEASE_URL = 'https://github.com/yitu-opensource/T2T-ViT/releases/download/main/'

# Soft splits as (kernel, stride, padding): the image, then the two token maps.
SOFT_SPLITS = ((7, 4, 2), (3, 2, 1), (3, 2, 1))


def soft_split_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of one spatial dim after a soft split."""
    return (size + 2 * padding - kernel_size) // stride + 1


def soft_split(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Overlapping patches of a channels-last map: the values of `nn.Unfold`, each patch flattened kernel-major.

    One gather of each patch position's C contiguous channels from the padded map, in every mode (exported: a Pad and
    one Gather). Compared with `nn.Unfold`, strided views (not exportable with a dynamic batch) and a row gather, it was
    the fastest exportable form on the token maps; on the image, a few percent of a model's time, others copy faster in
    eager mode only (benchmarks/README.md, "Soft-split form"). Column `(i * k + j) * C + c` holds `nn.Unfold`'s column
    `c * k * k + i * k + j`; `kernel_major` reorders the weights that read the patches.

    Args:
        x: Map of shape (B, H, W, C), any strides.
        kernel_size: Patch size.
        stride: Patch stride.
        padding: Zero padding on each side.

    Returns:
        Patches of shape (B, H' * W', kernel_size ** 2 * C).
    """
    k, s, p = kernel_size, stride, padding
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    H_out, W_out = soft_split_size(H, k, s, p), soft_split_size(W, k, s, p)
    W_pad = W + 2 * p
    rows = (torch.arange(H_out, device=x.device) * s).unsqueeze(1) + torch.arange(k, device=x.device)  # H', k
    cols = (torch.arange(W_out, device=x.device) * s).unsqueeze(1) + torch.arange(k, device=x.device)  # W', k
    pixels = rows.reshape(H_out, 1, k, 1) * W_pad + cols.reshape(1, W_out, 1, k)  # H', W', k, k
    x = F.pad(x, (0, 0, p, p, p, p)).reshape(-1, (H + 2 * p) * W_pad, C)  # no reshape names the batch size
    return x.index_select(1, pixels.flatten()).reshape(-1, H_out * W_out, k * k * C)


def kernel_major(t: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Reorder the last dim of a weight that reads `nn.Unfold` patches (`c * k * k + i * k + j`, the checkpoints'
    layout) to read `soft_split` patches (`(i * k + j) * C + c`)."""
    return t.unflatten(-1, (-1, kernel_size * kernel_size)).transpose(-1, -2).flatten(-2)


class PatchLayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over `soft_split` patches, its affine stored in `nn.Unfold`'s column order (the official
    checkpoints' layout) and reordered at use: a permutation of a LayerNorm's inputs permutes only its affine."""

    def __init__(self, dim: int, patch_size: int, **kwargs: Any) -> None:
        super().__init__(dim, **kwargs)
        self.patch_size = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = kernel_major(self.weight, self.patch_size), kernel_major(self.bias, self.patch_size)
        return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


class PatchLinear(nn.Linear):
    """`nn.Linear` over `soft_split` patches, its weight stored in `nn.Unfold`'s column order and reordered at use."""

    def __init__(self, in_features: int, out_features: int, patch_size: int, **kwargs: Any) -> None:
        super().__init__(in_features, out_features, **kwargs)
        self.patch_size = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, kernel_major(self.weight, self.patch_size), self.bias)


def sinusoid_pos_embed(
        num_positions: int, dim: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """The official 1-D sinusoid position table, shape (1, num_positions, dim).

    angle(p, j) = p / 10000 ** (2 * (j // 2) / dim); even channels sin, odd channels cos (interleaved, so this is
    not timm's 2-D sin-cos embedding). Computed in float64 and then cast, as the official table is.
    """
    pos = torch.arange(num_positions, device=device, dtype=torch.float64).unsqueeze(1)
    chan = torch.arange(dim, device=device, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(chan, 2, rounding_mode='floor') / dim)
    table = torch.where(chan.long() % 2 == 0, angle.sin(), angle.cos())
    return table.unsqueeze(0).to(dtype or torch.get_default_dtype())


def _performer_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, eps: float, proj_weight: torch.Tensor,
        proj_bias: torch.Tensor) -> torch.Tensor:
    # phi(t) = exp(t w^T - |t|^2 / 2) / sqrt(m), in float32: a float16 denominator with its 1e-8 epsilon made the
    # official layer NaN under AMP. The 1 / sqrt(m) of phi(q) and phi(k) cancels except against eps: it moves onto eps.
    wt = w.t()
    qp = torch.exp(q @ wt - 0.5 * (q * q).sum(dim=-1, keepdim=True))  # B, T, M
    kp = torch.exp(k @ wt - 0.5 * (k * k).sum(dim=-1, keepdim=True))
    denom = qp @ kp.sum(dim=1).unsqueeze(-1)  # B, T, 1
    # proj(a @ kv) = a @ (kv @ W^T) + b: the projection runs on the M rows of phi(k)^T v instead of on all T tokens.
    kv_proj = (kp.transpose(1, 2) @ v) @ proj_weight.t()  # B, M, E
    # Normalise phi(q) (M wide) rather than the output (E wide): half the division.
    return torch.baddbmm(proj_bias, qp / (denom + eps * w.shape[0]), kv_proj)


@register_notrace_function  # an FX leaf: `torch.autocast` needs the concrete device type that proxies lack
def performer_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, eps: float, proj_weight: torch.Tensor,
        proj_bias: torch.Tensor) -> torch.Tensor:
    """Projected linear attention with positive orthogonal random features (the T2T Performer), in float32.

    Args:
        q: Queries (B, T, E).
        k: Keys (B, T, E).
        v: Values (B, T, E).
        w: Random feature matrix (M, E).
        eps: Added to the normaliser, as in the official code.
        proj_weight: Weight (E_out, E) of the output projection.
        proj_bias: Its bias (E_out).

    Returns:
        `proj(phi(q) (phi(k)^T v) / (phi(q) . sum_t phi(k_t) + eps))` of shape (B, T, E_out), in the dtype of `v`.
    """
    args = [t.float() for t in (q, k, v, w, proj_weight, proj_bias)]
    if torch.jit.is_scripting():  # TorchScript has no autocast context
        return _performer_attention(args[0], args[1], args[2], args[3], eps, args[4], args[5]).to(v.dtype)
    device_type = 'cpu' if q.device.type == 'meta' else q.device.type  # autocast has no `meta` device
    with torch.autocast(device_type=device_type, enabled=False):
        return _performer_attention(*args[:4], eps, *args[4:]).to(v.dtype)


class TokenPerformer(nn.Module):
    """Performer T2T layer: single-head linear attention from `dim` to `dim_out` tokens added to `v` (the widths
    differ), then an MLP. Both dropouts are 0.1 in the official model, in train mode whatever `drop_rate` is."""

    def __init__(
            self,
            dim: int,
            dim_out: int = 64,
            kernel_ratio: float = 0.5,
            proj_drop: float = 0.1,
            mlp_drop: float = 0.1,
            act_layer: Type[nn.Module] = nn.GELU,
            patch_size: int = 3,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        """
        Args:
            dim: Input token width (channels x kernel area of the soft split).
            dim_out: Output token width (the official `token_dim`, 64).
            kernel_ratio: Number of random features as a fraction of `dim_out`.
            proj_drop: Dropout after the attention projection.
            mlp_drop: Dropout after the MLP.
            act_layer: MLP activation.
            patch_size: Kernel of the `soft_split` patches it reads.
            device: Factory device.
            dtype: Factory dtype.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.dim_out = dim_out
        self.num_features = int(dim_out * kernel_ratio)
        self.eps = 1e-8
        self.norm1 = PatchLayerNorm(dim, patch_size, **dd)
        # NOTE output split order is k, q, v (official); the q, k, v order changes logits.
        self.kqv = PatchLinear(dim, 3 * dim_out, patch_size, **dd)
        self.proj = nn.Linear(dim_out, dim_out, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        self.norm2 = nn.LayerNorm(dim_out, **dd)
        self.mlp = Mlp(dim_out, dim_out, act_layer=act_layer, drop=(0., mlp_drop), **dd)  # dropout after fc2 only
        # Random features are fixed in training but averaged by EMA in the released weights: a buffer, loaded, never
        # resampled.
        self.register_buffer('w', torch.empty(self.num_features, dim_out, **dd))
        self.reset_random_features()

    def reset_random_features(self) -> None:
        """Draw fresh orthogonal random features scaled by sqrt(m), as the official init does."""
        if self.w.is_meta:
            return
        with torch.no_grad():
            w = torch.randn(self.w.shape, device=self.w.device, dtype=torch.float32)
            self.w.copy_(nn.init.orthogonal_(w) * math.sqrt(self.num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`soft_split` patches (B, T, dim) -> tokens (B, T, dim_out)."""
        k, q, v = self.kqv(self.norm1(x)).split(self.dim_out, dim=-1)
        x = v + self.proj_drop(performer_attention(q, k, v, self.w, self.eps, self.proj.weight, self.proj.bias))
        return x + self.mlp(self.norm2(x))


class TokenAttention(nn.Module):
    """Single-head attention of a Transformer T2T layer, `dim` -> `dim_out`, with the value as shortcut.

    Written here rather than taken from timm's `Attention` because the official layer scales by the *input* width
    (`dim ** -0.5`, e.g. 147 ** -0.5), not the head width, and adds `v` to the projected output.
    """
    fused_attn: Final[bool]

    def __init__(
            self,
            dim: int,
            dim_out: int = 64,
            qkv_bias: bool = False,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            patch_size: int = 3,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        """
        Args:
            dim: Input token width.
            dim_out: Output token width.
            qkv_bias: Bias in the qkv projection (the official layer has none).
            attn_drop: Attention dropout.
            proj_drop: Dropout after the output projection.
            patch_size: Kernel of the `soft_split` patches it reads.
            device: Factory device.
            dtype: Factory dtype.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.dim_out = dim_out
        self.scale = dim ** -0.5
        self.fused_attn = use_fused_attn()
        self.qkv = PatchLinear(dim, dim_out * 3, patch_size, bias=qkv_bias, **dd)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim_out, dim_out, **dd)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`soft_split` patches (B, T, dim) -> tokens (B, T, dim_out)."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.dim_out)).unbind(-2)
        if self.fused_attn:
            # As one explicit head (B, 1, T, E): ONNX export supports only 4-D SDPA inputs; same kernel and numbers.
            y = F.scaled_dot_product_attention(
                q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1),
                dropout_p=self.attn_drop.p if self.training else 0.,
                scale=self.scale,
            ).squeeze(1)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = self.attn_drop(attn.softmax(dim=-1))
            y = attn @ v
        return v + self.proj_drop(self.proj(y))


class TokenTransformer(nn.Module):
    """Transformer T2T layer: `TokenAttention` (v shortcut), then a residual MLP of ratio 1."""

    def __init__(
            self,
            dim: int,
            dim_out: int = 64,
            mlp_ratio: float = 1.,
            act_layer: Type[nn.Module] = nn.GELU,
            patch_size: int = 3,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        """
        Args:
            dim: Input token width.
            dim_out: Output token width.
            mlp_ratio: MLP hidden width as a multiple of `dim_out`.
            act_layer: MLP activation.
            patch_size: Kernel of the `soft_split` patches it reads.
            device: Factory device.
            dtype: Factory dtype.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.norm1 = PatchLayerNorm(dim, patch_size, **dd)
        self.attn = TokenAttention(dim, dim_out, patch_size=patch_size, **dd)
        self.norm2 = nn.LayerNorm(dim_out, **dd)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio), act_layer=act_layer, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`soft_split` patches (B, T, dim) -> tokens (B, T, dim_out)."""
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokensToToken(nn.Module):
    """The T2T stem: three soft splits with a T2T layer after the first two, then a linear projection.

    At 224 x 224 the token grid goes 56 x 56 (64 ch) -> 28 x 28 (64 ch) -> 14 x 14 (`embed_dim`). Any input size
    works; the grids follow `soft_split_size`.
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            in_chans: int = 3,
            embed_dim: int = 768,
            t2t_layer: str = 'performer',
            token_dim: int = 64,
            act_layer: Type[nn.Module] = nn.GELU,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        """
        Args:
            img_size: Input size the position table is built for.
            in_chans: Input channels.
            embed_dim: Output token width.
            t2t_layer: 'performer' or 'transformer'.
            token_dim: Width of the T2T layers' tokens.
            act_layer: MLP activation of the T2T layers.
            device: Factory device.
            dtype: Factory dtype.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if t2t_layer == 'performer':
            layer = TokenPerformer
        elif t2t_layer == 'transformer':
            layer = TokenTransformer
        else:
            raise ValueError(f"t2t_layer must be 'performer' or 'transformer', got {t2t_layer!r}")
        self.t2t_layer = t2t_layer
        self.in_chans = in_chans
        # An attribute, not the global, inside forward: TorchScript cannot read a global tuple of tuples.
        self.soft_splits = SOFT_SPLITS
        (k0, _, _), (k1, _, _), (k2, _, _) = SOFT_SPLITS
        self.attn1 = layer(in_chans * k0 * k0, token_dim, act_layer=act_layer, patch_size=k0, **dd)
        self.attn2 = layer(token_dim * k1 * k1, token_dim, act_layer=act_layer, patch_size=k1, **dd)
        self.proj = nn.Linear(token_dim * k2 * k2, embed_dim, **dd)
        self.grad_checkpointing = False  # set by T2TViT.set_grad_checkpointing
        self.set_input_size(img_size)

    def set_input_size(self, img_size: Union[int, Tuple[int, int]]) -> None:
        """Set the nominal input size and the token grid derived from it."""
        self.img_size = to_2tuple(img_size)
        self.grid_size = self.dynamic_feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def dynamic_feat_size(self, img_size: Tuple[int, int], stage: int = 2) -> Tuple[int, int]:
        """Token grid (H, W) after soft split `stage` (0, 1 or 2) for an input of `img_size`."""
        h, w = img_size[0], img_size[1]
        for i in range(stage + 1):
            k, s, p = self.soft_splits[i]
            h, w = soft_split_size(h, k, s, p), soft_split_size(w, k, s, p)
        return h, w

    def feat_ratio(self, as_scalar: bool = True) -> Union[int, Tuple[int, int]]:
        """Total stride of the final token grid (16)."""
        return 16 if as_scalar else (16, 16)

    def _t2t_step(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """Map (B, H, W, C) -> soft split `stage` and its T2T layer -> map (B, H', W', token_dim), channels-last."""
        k, s, p = self.soft_splits[stage]
        H, W = soft_split_size(x.shape[1], k, s, p), soft_split_size(x.shape[2], k, s, p)
        x = soft_split(x, k, s, p)
        x = self.attn1(x) if stage == 0 else self.attn2(x)
        return x.reshape(-1, H, W, x.shape[-1])

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Token map (B, H, W, token_dim) -> last soft split and projection -> tokens (B, H * W / 4, embed_dim)."""
        k, s, p = self.soft_splits[2]
        # A soft split followed by a Linear is a convolution with the Linear's weight (its columns are in the split's
        # c * k * k order): one Conv, and no 576-wide patch tensor. Same products, summed in another order.
        weight = self.proj.weight.reshape(self.proj.out_features, -1, k, k)
        x = F.conv2d(x.permute(0, 3, 1, 2), weight, self.proj.bias, stride=s, padding=p)
        return x.flatten(2).transpose(1, 2)

    def forward_maps(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Images (B, C, H, W) -> tokens (B, N, embed_dim), and the T2T layers' token maps (B, H / 4, W / 4, token_dim)
        and (B, H / 8, W / 8, token_dim), channels-last."""
        x = x.permute(0, 2, 3, 1)  # a view: the first split gathers from it
        if self.grad_checkpointing and not torch.jit.is_scripting():
            # Each T2T step keeps only its input map for backward and recomputes its split and layer.
            map1 = checkpoint(self._t2t_step, x, 0)
            map2 = checkpoint(self._t2t_step, map1, 1)
        else:
            map1 = self._t2t_step(x, 0)
            map2 = self._t2t_step(map1, 1)
        return self._project(map2), [map1, map2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, embed_dim) of images (B, C, H, W)."""
        return self.forward_maps(x)[0]


class T2TViT(nn.Module):
    """Tokens-to-Token Vision Transformer.

    A T2T stem (`patch_embed`) in front of a plain pre-norm ViT with a class token and a sinusoid position table.
    Feature taps (`feature_info`, `forward_intermediates` indices) are the stem's two token maps (stride 4 and 8)
    followed by the output of every block (stride 16).
    """
    dynamic_img_size: Final[bool]

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            t2t_layer: str = 'performer',
            token_dim: int = 64,
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.,
            qkv_bias: bool = False,
            drop_rate: float = 0.,
            pos_drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            dynamic_img_size: bool = False,
            use_aux_head: bool = False,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
    ) -> None:
        """
        Args:
            img_size: Input size; sets the position table length (an (H, W) pair for non-square inputs).
            in_chans: Number of input channels.
            num_classes: Number of classes; 0 for no head.
            global_pool: 'token' (class token, official), 'avg' (mean of patch tokens) or '' (no pooling).
            t2t_layer: 'performer' or 'transformer' T2T layers in the stem.
            token_dim: Token width inside the stem (64 in every official model).
            embed_dim: Backbone width.
            depth: Number of backbone blocks.
            num_heads: Attention heads per block.
            mlp_ratio: Backbone MLP hidden width as a multiple of `embed_dim`.
            qkv_bias: Bias in the backbone qkv projections (the official models have none).
            drop_rate: Dropout before the head.
            pos_drop_rate: Dropout after adding the position table.
            proj_drop_rate: Dropout after the backbone attention projection and MLP.
            attn_drop_rate: Backbone attention dropout.
            drop_path_rate: Stochastic depth rate, linearly increasing over the blocks.
            dynamic_img_size: Accept any input size at run time, resampling the position table to the token grid.
            use_aux_head: Add the token-labeling auxiliary head (a classifier on every patch token, as in the
                `t2t_vit_24.tl_in1k` weights); logits become head(pooled) + 0.5 * max over tokens of aux_head(token).
            device: Factory device.
            dtype: Factory dtype.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if global_pool not in ('', 'avg', 'token'):
            raise ValueError(f"global_pool must be 'token', 'avg' or '', got {global_pool!r}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.dynamic_img_size = dynamic_img_size
        self.grad_checkpointing = False

        self.patch_embed = TokensToToken(img_size, in_chans, embed_dim, t2t_layer, token_dim, **dd)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, **dd))
        # A fixed sinusoid table in the official model, but drifted by EMA in the released weights: a buffer, so
        # it loads from checkpoints and gets no gradient or weight decay.
        self.register_buffer('pos_embed', torch.empty(1, self.patch_embed.num_patches + 1, embed_dim, **dd))
        self.pos_drop = nn.Dropout(pos_drop_rate)

        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device='cpu')]
        self.blocks = nn.Sequential(*[
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[i],
                norm_layer=nn.LayerNorm,  # eps 1e-5 as in the official model (timm's ViT uses 1e-6)
                act_layer=nn.GELU,
                **dd,
            )
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.use_aux_head = use_aux_head
        self.aux_head = nn.Linear(embed_dim, num_classes, **dd) if use_aux_head and num_classes > 0 else None

        self.feature_info = [
            dict(module='patch_embed.attn1', num_chs=token_dim, reduction=4),
            dict(module='patch_embed.attn2', num_chs=token_dim, reduction=8),
        ] + [dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=16) for i in range(depth)]

        self.init_weights()

    def init_weights(self) -> None:
        """Official initialisation: truncated-normal Linears and class token, sinusoid table, fresh random features."""
        if self.cls_token.is_meta:
            return
        with torch.no_grad():
            table = sinusoid_pos_embed(self.pos_embed.shape[1], self.embed_dim, device=self.pos_embed.device)
            self.pos_embed.copy_(table)
        trunc_normal_(self.cls_token, std=.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, TokenPerformer):
                module.reset_random_features()

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        return {'cls_token'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        blocks = [(r'^blocks\.(\d+)', None), (r'^norm', (99999,))]
        return dict(stem=r'^cls_token|^pos_embed|^patch_embed', blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in backward instead of keeping them: every block, and the stem's three steps."""
        self.grad_checkpointing = enable
        self.patch_embed.grad_checkpointing = enable

    @torch.jit.ignore
    def set_fused_attn(self, enable: bool = True) -> None:
        """Switch every softmax attention (backbone and Transformer T2T layers) between fused SDPA and the official
        explicit arithmetic. The Performer T2T layers have a single implementation."""
        for module in self.modules():
            if hasattr(module, 'fused_attn'):
                module.fused_attn = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the head; `global_pool=None` keeps the current pooling."""
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ('', 'avg', 'token'):
                raise ValueError(f"global_pool must be 'token', 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        dd = get_device_dtype(self)
        self.head = nn.Identity()
        if num_classes > 0:
            self.head = nn.Linear(self.embed_dim, num_classes, **dd).train(self.training)
        self.aux_head = None
        if self.use_aux_head and num_classes > 0:
            self.aux_head = nn.Linear(self.embed_dim, num_classes, **dd).train(self.training)

    @torch.jit.ignore
    def set_input_size(
            self,
            img_size: Optional[Union[int, Tuple[int, int]]] = None,
            patch_size: Optional[Union[int, Tuple[int, int]]] = None,
    ) -> None:
        """Rebuild for another `img_size`, resampling the position table (bicubic over the token grid); `patch_size`
        must be None (the soft splits are part of the architecture)."""
        if patch_size is not None:
            raise ValueError('T2T-ViT has no patch_size to change; its soft splits are fixed (7/4/2, 3/2/1, 3/2/1).')
        if img_size is None:
            return
        old_grid = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size)
        if self.patch_embed.grid_size != old_grid:
            self.pos_embed = resample_abs_pos_embed(
                self.pos_embed, list(self.patch_embed.grid_size), list(old_grid), self.num_prefix_tokens).detach()

    def _pos_embed(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        if self.dynamic_img_size:
            old_grid = self.patch_embed.grid_size
            pos_embed = resample_abs_pos_embed(
                self.pos_embed, [grid[0], grid[1]], [old_grid[0], old_grid[1]], self.num_prefix_tokens)
        else:
            _assert(
                x.shape[1] + 1 == self.pos_embed.shape[1],
                'Input size does not match the position table: build the model with img_size=(H, W) of your '
                'input, or with dynamic_img_size=True.',
            )
            pos_embed = self.pos_embed
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos_drop(x + pos_embed)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward that also returns intermediate feature maps.

        Tap indices run over `feature_info`: 0 and 1 are the stem's token maps (stride 4 and 8, `token_dim`
        channels), 2 + i the output of block i (stride 16, `embed_dim` channels).

        Args:
            x: Images (B, C, H, W).
            indices: Last n taps if int, all if None, else the listed taps (negative counts from the end).
            return_prefix_tokens: Return (patch tokens, class token) pairs for block taps; stem taps get an empty
                (B, 0, C) prefix.
            norm: Apply the final norm to block taps.
            stop_early: Stop after the last requested tap.
            output_fmt: 'NCHW' maps or 'NLC' token sequences (without the class token).
            intermediates_only: Return only the intermediates.

        Returns:
            (final features, intermediates) or the intermediates alone.
        """
        _assert(output_fmt in ('NCHW', 'NLC'), 'output_fmt must be NCHW or NLC')
        num_stem = 2
        take_indices, max_index = feature_take_indices(len(self.blocks) + num_stem, indices)
        intermediates: List[torch.Tensor] = []
        prefixes: List[torch.Tensor] = []

        B = x.shape[0]
        H, W = self.patch_embed.dynamic_feat_size((x.shape[-2], x.shape[-1]))
        x, maps = self.patch_embed.forward_maps(x)
        for i, tap in enumerate(maps):
            if i in take_indices:
                intermediates.append(tap.permute(0, 3, 1, 2) if output_fmt == 'NCHW' else tap.flatten(1, 2))
                prefixes.append(tap.new_zeros(B, 0, tap.shape[-1]))
        x = self._pos_embed(x, (H, W))

        if torch.jit.is_scripting() or not stop_early:
            blocks = self.blocks
        else:
            blocks = self.blocks[:max(max_index - num_stem + 1, 0)]
        for i, blk in enumerate(blocks):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(blk, x)
            else:
                x = blk(x)
            if i + num_stem in take_indices:
                y = self.norm(x) if norm else x
                prefixes.append(y[:, :self.num_prefix_tokens])
                y = y[:, self.num_prefix_tokens:]
                intermediates.append(y.reshape(B, H, W, -1).permute(0, 3, 1, 2) if output_fmt == 'NCHW' else y)

        if output_fmt == 'NCHW':
            intermediates = [y.contiguous() for y in intermediates]
        if not torch.jit.is_scripting() and return_prefix_tokens:
            intermediates = list(zip(intermediates, prefixes))
        if intermediates_only:
            return intermediates
        x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop the blocks (and optionally the final norm and head) that the requested taps do not need.

        Returns:
            The absolute tap indices, as `forward_intermediates` takes them.
        """
        num_stem = 2
        take_indices, max_index = feature_take_indices(len(self.blocks) + num_stem, indices)
        self.blocks = self.blocks[:max(max_index - num_stem + 1, 0)]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, 1 + N, embed_dim) after the final norm, class token first."""
        grid = self.patch_embed.dynamic_feat_size((x.shape[-2], x.shape[-1]))
        x = self._pos_embed(self.patch_embed(x), grid)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == 'avg':
            return x[:, self.num_prefix_tokens:].mean(dim=1)
        if self.global_pool == 'token':
            return x[:, 0]
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        out = self.head_drop(self.pool(x))
        if pre_logits:
            return out
        out = self.head(out)
        if self.aux_head is not None and self.global_pool:
            # Token labeling inference (LV-ViT, VOLO): the best patch-token score per class, at half weight.
            aux = self.aux_head(self.head_drop(x[:, self.num_prefix_tokens:]))
            out = out + 0.5 * aux.max(dim=1)[0]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _official_to_timm_key(key: str) -> str:
    """Rename one official state-dict key (`tokens_to_token.attention1.mlp.0.weight`, ...) to this module's."""
    key = key.replace('tokens_to_token.attention', 'patch_embed.attn')
    key = key.replace('tokens_to_token.project', 'patch_embed.proj')
    if key.startswith('patch_embed.attn'):
        key = key.replace('.mlp.0.', '.mlp.fc1.').replace('.mlp.2.', '.mlp.fc2.')
    return key


def _adapt_input_channels(state_dict: Dict[str, torch.Tensor], model: T2TViT) -> None:
    """Adapt the stem's first T2T layer (a LayerNorm + Linear over channel-major 7x7 patches) to `model.in_chans`.

    timm's `adapt_input_conv` rule is applied to the Linear seen as (O, C, 7, 7). With more channels the LayerNorm
    affine repeats cyclically (a multiple of the source channels gives on [x, x, ...] what the source gives on x); with
    fewer it is folded into the Linear first (into its bias where it has one, else into a least-squares LayerNorm bias,
    approximate for the Transformer stem). The Transformer stem scales attention by (C * 49) ** -0.5, so its q rows are
    rescaled by sqrt(in_chans / src) to keep the attention logits. In place.
    """
    first = 'patch_embed.attn1.kqv' if model.patch_embed.t2t_layer == 'performer' else 'patch_embed.attn1.attn.qkv'
    weight = state_dict.get(f'{first}.weight')
    k = SOFT_SPLITS[0][0]
    area = k * k
    if weight is None or weight.shape[1] == model.in_chans * area:
        return
    src_chans = weight.shape[1] // area
    dtype = weight.dtype
    weight = weight.double()
    norm_w, norm_b = state_dict.get('patch_embed.attn1.norm1.weight'), state_dict.get('patch_embed.attn1.norm1.bias')
    bias = state_dict.get(f'{first}.bias')
    fold = model.in_chans < src_chans and norm_w is not None and norm_b is not None
    shift = None
    if fold:
        shift = weight @ norm_b.double()  # the LayerNorm bias' contribution to the Linear output
        weight = weight * norm_w.double()
        if bias is not None:
            state_dict[f'{first}.bias'] = (bias.double() + shift).to(bias.dtype)
            shift = None
    weight = adapt_input_conv(model.in_chans, weight.reshape(weight.shape[0], src_chans, k, k), base_chans=src_chans)
    weight = weight.flatten(1)
    if model.patch_embed.t2t_layer == 'transformer':
        # Its attention scale is (input width) ** -0.5, which changes with the channel count: rescale q to keep the
        # attention logits (q . k * scale) unchanged.
        q_gain = math.sqrt(model.in_chans / src_chans)
        weight[:weight.shape[0] // 3] *= q_gain
        if shift is not None:
            shift[:shift.shape[0] // 3] *= q_gain
    state_dict[f'{first}.weight'] = weight.to(dtype)
    if fold:
        state_dict['patch_embed.attn1.norm1.weight'] = torch.ones(model.in_chans * area, dtype=norm_w.dtype)
        new_b = torch.zeros(model.in_chans * area, dtype=torch.float64)
        if shift is not None:
            new_b = torch.linalg.lstsq(weight, shift.unsqueeze(1)).solution.squeeze(1)
        state_dict['patch_embed.attn1.norm1.bias'] = new_b.to(norm_b.dtype)
        return
    for name in ('weight', 'bias'):
        key = f'patch_embed.attn1.norm1.{name}'
        if key in state_dict:
            per_chan = state_dict[key].reshape(src_chans, area)
            reps = math.ceil(model.in_chans / src_chans)
            state_dict[key] = per_chan.repeat(reps, 1)[:model.in_chans].flatten()


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: T2TViT) -> Dict[str, torch.Tensor]:
    """Convert an official T2T-ViT checkpoint (or this module's own) to the model's layout.

    Handles the release file layout (`state_dict_ema` preferred over `state_dict`/`model`, extra entries ignored),
    a `module.` prefix, the official key names, a position table for another token grid (bicubic resample), and
    other input channel counts.
    """
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break
    out = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            continue
        if k.startswith('module.'):
            k = k[len('module.'):]
        out[_official_to_timm_key(k)] = v

    pos_embed = out.get('pos_embed')
    if pos_embed is not None and pos_embed.shape != model.pos_embed.shape:
        old_n = pos_embed.shape[1] - model.num_prefix_tokens
        old_side = math.isqrt(old_n)
        if old_side * old_side != old_n:
            raise ValueError(
                f'pos_embed in the checkpoint has {old_n} patch positions, not a square grid; build the model with '
                f'the img_size the checkpoint was trained at.')
        out['pos_embed'] = resample_abs_pos_embed(
            pos_embed,
            new_size=list(model.patch_embed.grid_size),
            old_size=[old_side, old_side],
            num_prefix_tokens=model.num_prefix_tokens,
        )
    _adapt_input_channels(out, model)
    return out


def _cfg(url: str = '', **kwargs: Any) -> Dict[str, Any]:
    return {
        'url': url, 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': 0.9, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.attn1.kqv', 'classifier': 'head', 'license': 'bsd-3-clause-clear',
        'paper_ids': 'arXiv:2101.11986',
        'paper_name': 'Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet',
        'origin_url': 'https://github.com/yitu-opensource/T2T-ViT',
        **kwargs,
    }


def _release_cfg(arch_tag: str, filename: str, **kwargs: Any) -> Dict[str, Any]:
    return _cfg(url=RELEASE_URL + filename, hf_hub_id=f'{HF_HUB_NAMESPACE}/{arch_tag}', **kwargs)


_TRANSFORMER_STEM = dict(first_conv='patch_embed.attn1.attn.qkv')

default_cfgs = generate_default_cfgs({
    't2t_vit_7.in1k': _release_cfg('t2t_vit_7.in1k', '71.7_T2T_ViT_7.pth.tar'),
    't2t_vit_10.in1k': _release_cfg('t2t_vit_10.in1k', '75.2_T2T_ViT_10.pth.tar'),
    't2t_vit_12.in1k': _release_cfg('t2t_vit_12.in1k', '76.5_T2T_ViT_12.pth.tar'),
    't2t_vit_14.in1k': _release_cfg('t2t_vit_14.in1k', '81.5_T2T_ViT_14.pth.tar'),
    't2t_vit_14.in1k_384': _release_cfg('t2t_vit_14.in1k_384', '83.3_T2T_ViT_14.pth.tar', input_size=(3, 384, 384)),
    't2t_vit_19.in1k': _release_cfg('t2t_vit_19.in1k', '81.9_T2T_ViT_19.pth.tar'),
    't2t_vit_24.in1k': _release_cfg('t2t_vit_24.in1k', '82.3_T2T_ViT_24.pth.tar'),
    't2t_vit_24.tl_in1k': _release_cfg(
        't2t_vit_24.tl_in1k', '84.2_T2T_ViT_24.pth.tar',
        classifier=('head', 'aux_head'),  # the token-labeling auxiliary head, see `use_aux_head`
        notes=('Trained with token labeling (https://github.com/zihangJiang/TokenLabeling).',),
    ),
    't2t_vit_t_14.in1k': _release_cfg('t2t_vit_t_14.in1k', '81.7_T2T_ViTt_14.pth.tar', **_TRANSFORMER_STEM),
    't2t_vit_t_19.in1k': _release_cfg('t2t_vit_t_19.in1k', '82.4_T2T_ViTt_19.pth.tar', **_TRANSFORMER_STEM),
    't2t_vit_t_24.in1k': _release_cfg('t2t_vit_t_24.in1k', '82.6_T2T_ViTt_24.pth.tar', **_TRANSFORMER_STEM),
    # Architectures of the paper without released weights.
    't2t_vit_14_resnext': _cfg(),
    't2t_vit_14_wide': _cfg(),
})


def _create_t2t_vit(variant: str, pretrained: bool = False, **kwargs: Any) -> T2TViT:
    out_indices = kwargs.pop('out_indices', 3)
    # Weights whose cfg lists an auxiliary classifier (token labeling) come with the aux head.
    classifier = resolve_pretrained_cfg(
        variant, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay')).classifier or ()
    kwargs.setdefault('use_aux_head', 'aux_head' in ((classifier,) if isinstance(classifier, str) else classifier))

    def build(load: bool, **build_kwargs: Any) -> T2TViT:
        build_kwargs.setdefault('pretrained_filter_fn', checkpoint_filter_fn)
        feature_cfg = dict(out_indices=out_indices, feature_cls='getter')
        return build_model_with_cfg(T2TViT, variant, load, feature_cfg=feature_cfg, **build_kwargs)

    if not pretrained:
        return build(False, **kwargs)
    # The Hub first, through timm's loader; the official release file when the Hub has no repo for the tag. Imported
    # here: the weights package builds on this module, not the other way round.
    from ..weights.pretrained import build_pretrained
    return build_pretrained(build, variant, checkpoint_filter_fn, **kwargs)


@register_model
def t2t_vit_7(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-7: Performer T2T stem, 256 wide, 7 blocks."""
    model_args = dict(t2t_layer='performer', embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.)
    return _create_t2t_vit('t2t_vit_7', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_10(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-10: Performer T2T stem, 256 wide, 10 blocks."""
    model_args = dict(t2t_layer='performer', embed_dim=256, depth=10, num_heads=4, mlp_ratio=2.)
    return _create_t2t_vit('t2t_vit_10', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_12(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-12: Performer T2T stem, 256 wide, 12 blocks."""
    model_args = dict(t2t_layer='performer', embed_dim=256, depth=12, num_heads=4, mlp_ratio=2.)
    return _create_t2t_vit('t2t_vit_12', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_14(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-14: Performer T2T stem, 384 wide, 14 blocks (224 and 384 weights)."""
    model_args = dict(t2t_layer='performer', embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_14', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_19(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-19: Performer T2T stem, 448 wide, 19 blocks."""
    model_args = dict(t2t_layer='performer', embed_dim=448, depth=19, num_heads=7, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_19', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_24(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-24: Performer T2T stem, 512 wide, 24 blocks (plain and token-labeling weights)."""
    model_args = dict(t2t_layer='performer', embed_dim=512, depth=24, num_heads=8, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_24', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_t_14(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT_t-14: Transformer T2T stem, 384 wide, 14 blocks."""
    model_args = dict(t2t_layer='transformer', embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_t_14', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_t_19(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT_t-19: Transformer T2T stem, 448 wide, 19 blocks."""
    model_args = dict(t2t_layer='transformer', embed_dim=448, depth=19, num_heads=7, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_t_19', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_t_24(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT_t-24: Transformer T2T stem, 512 wide, 24 blocks."""
    model_args = dict(t2t_layer='transformer', embed_dim=512, depth=24, num_heads=8, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_t_24', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_14_resnext(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-14 ResNeXt-style: 32 heads of width 12 (no released weights)."""
    model_args = dict(t2t_layer='performer', embed_dim=384, depth=14, num_heads=32, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_14_resnext', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_14_wide(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-14 wide: 768 wide, 4 blocks, 12 heads (no released weights)."""
    model_args = dict(t2t_layer='performer', embed_dim=768, depth=4, num_heads=12, mlp_ratio=3.)
    return _create_t2t_vit('t2t_vit_14_wide', pretrained=pretrained, **dict(model_args, **kwargs))
