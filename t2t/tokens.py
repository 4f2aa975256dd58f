"""The tokens-to-token module: soft splits that re-structurize the image, with a token layer between them.

Each soft split is an ``nn.Unfold`` (kernel, stride, padding): overlapping patches whose pixels become one token,
flattened channel-major (index = c*k*k + i*k + j) as the official weights expect. Between splits a token layer
(performer or transformer) mixes the tokens and shrinks them to ``token_dim`` channels; the tokens are then laid
back on their (H, W) grid for the next split. After the last split ``project`` maps to the backbone's width.
The ``convolution`` variant (the paper's T2T-ViT_c) replaces every split + token layer by a convolution.

With ``fused_soft_split`` (the default) each soft split runs together with what follows it (the token layer's
LayerNorm and first projection, or ``project``) as one convolution on channels-last tensors; see
``split_project``. Same parameters, same function; the plain path is kept as the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from t2t.config import T2TConfig
from t2t.layers import LN_EPS, Attention, Mlp


def random_features(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Positive random features phi(x) = exp(x w^T - |x|^2 / 2) / sqrt(m) of (B, T, d) tokens, w: (m, d).

    With ``w``'s rows of norm sqrt(m), the exponent is at most m / 2: safe in float32, not in float16.
    """
    return torch.exp(x @ w.t() - x.pow(2).sum(dim=-1, keepdim=True) / 2) / math.sqrt(w.shape[0])


def performer_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Linear-time softmax-kernel attention, computed in (at least) float32 whatever autocast says."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, v, w = (t.to(dtype) for t in (q, k, v, w))
        qp, kp = random_features(q, w), random_features(k, w)  # (B, T, m)
        normaliser = qp @ kp.sum(dim=1).unsqueeze(-1)  # (B, T, 1)
        kptv = v.transpose(1, 2) @ kp  # (B, d, m)
        return (qp @ kptv.transpose(1, 2)) / (normaliser + eps)  # (B, T, d)


def split_project(
    x: torch.Tensor,
    split: tuple[int, int, int],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    norm: nn.LayerNorm | None = None,
) -> torch.Tensor:
    """``F.linear(norm(unfold(x)), weight, bias)`` as a convolution: (B, C, H, W) -> (B, L, out) tokens.

    An unfolded patch is flattened channel-major, the layout of a convolution kernel, so a linear map of patches is
    a convolution with ``weight`` viewed as (out, C, k, k). A LayerNorm between them folds in as well: with
    norm(p) = (p - mean) * rstd * g + b,

        W norm(p) + c = ((W g)_0 p) * rstd + (W b + c),

    where (W g)_0 is W g with each filter's mean removed, which subtracts mean(p) * sum(W g) without cancellation.
    A patch's mean and mean square are average pools (zero padding included, as in ``nn.Unfold``) of the channel
    means of x and x^2, computed in (at least) float32. No unfolded copy is made; for a channels-last ``x`` the
    output is channels-last too, so the (B, L, out) result is a view.
    """
    k, stride, padding = split
    out_dim, channels = weight.shape[0], x.shape[1]
    kernel = weight.view(out_dim, channels, k, k)
    if norm is None:
        y = F.conv2d(x, kernel, bias, stride, padding)
    else:
        kernel = kernel * norm.weight.view(1, channels, k, k)
        kernel = kernel - kernel.mean(dim=(1, 2, 3), keepdim=True)
        shift = F.linear(norm.bias, weight, bias)  # W b + c
        y = F.conv2d(x, kernel, None, stride, padding)
        with torch.autocast(device_type=x.device.type, enabled=False):
            stats_dtype = torch.promote_types(x.dtype, torch.float32)
            xf = x.to(stats_dtype)
            mean = F.avg_pool2d(xf.mean(dim=1, keepdim=True), k, stride, padding)
            mean_sq = F.avg_pool2d(xf.square().mean(dim=1, keepdim=True), k, stride, padding)
            rstd = torch.rsqrt((mean_sq - mean.square()).clamp_min(0) + norm.eps)
            y = (y.to(stats_dtype) * rstd + shift.to(stats_dtype).view(1, -1, 1, 1)).to(y.dtype)
    return y.flatten(2).transpose(1, 2)


class TokenPerformer(nn.Module):
    """One-head performer from ``dim`` to ``out_dim`` channels; skip connection on ``v`` (keys as official)."""

    def __init__(self, dim: int, out_dim: int, kernel_ratio: float = 0.5, drop: float = 0.1) -> None:
        super().__init__()
        self.out_dim = out_dim
        m = int(out_dim * kernel_ratio)
        w = nn.init.orthogonal_(torch.empty(m, out_dim)) * math.sqrt(m)
        self.w = nn.Parameter(w, requires_grad=False)  # fixed random projection, stored in the state_dict
        self.kqv = nn.Linear(dim, 3 * out_dim)
        self.dp = nn.Dropout(drop)
        self.proj = nn.Linear(out_dim, out_dim)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(out_dim, eps=LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(out_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim), nn.Dropout(drop))

    def input_projection(self) -> tuple[nn.LayerNorm, nn.Linear]:
        """The LayerNorm and projection the fused soft split folds into its convolution."""
        return self.norm1, self.kqv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_projected(self.kqv(self.norm1(x)))

    def forward_projected(self, kqv: torch.Tensor) -> torch.Tensor:
        """The rest of ``forward`` after ``kqv(norm1(x))``, however that was computed."""
        k, q, v = kqv.split(self.out_dim, dim=-1)  # official order: k, q, v
        y = performer_attention(q, k, v, self.w).to(v.dtype)
        x = v + self.dp(self.proj(y))
        return x + self.dp(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"random_features={self.w.shape[0]}"


class TokenTransformer(nn.Module):
    """Transformer token layer from ``dim`` to ``out_dim`` channels (mlp_ratio 1, skip connection on ``v``)."""

    def __init__(self, dim: int, out_dim: int, num_heads: int = 1, fused_attn: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, out_dim=out_dim, v_skip=True, fused_attn=fused_attn)
        self.norm2 = nn.LayerNorm(out_dim, eps=LN_EPS)
        self.mlp = Mlp(out_dim, out_dim)

    def input_projection(self) -> tuple[nn.LayerNorm, nn.Linear]:
        """The LayerNorm and projection the fused soft split folds into its convolution."""
        return self.norm1, self.attn.qkv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_projected(self.attn.qkv(self.norm1(x)))

    def forward_projected(self, qkv: torch.Tensor) -> torch.Tensor:
        """The rest of ``forward`` after ``attn.qkv(norm1(x))``, however that was computed."""
        x = self.attn.attend_projected(qkv)
        return x + self.mlp(self.norm2(x))


class TokensToToken(nn.Module):
    """Image (B, C, H, W) -> tokens (B, num_patches, embed_dim), geometry from ``config.soft_split``."""

    def __init__(self, config: T2TConfig) -> None:
        super().__init__()
        self.tokens_type = config.tokens_type
        self.grids = config.grids
        self.splits = splits = config.soft_split
        self.fused_soft_split = config.fused_soft_split
        chans = [config.in_chans] + [config.token_dim] * (len(splits) - 1)  # channels entering each split
        self.num_layers = len(splits) - 1  # token layers (or convolutions) before `project`
        if self.tokens_type == "convolution":
            for i, (k, s, p) in enumerate(splits[:-1]):
                self.add_module(f"soft_split{i}", nn.Conv2d(chans[i], config.token_dim, k, s, p))
            k, s, p = splits[-1]
            self.project = nn.Conv2d(chans[-1], config.embed_dim, k, s, p)
            return
        for i, (k, s, p) in enumerate(splits):
            self.add_module(f"soft_split{i}", nn.Unfold(kernel_size=k, stride=s, padding=p))
        for i, (k, _, _) in enumerate(splits[:-1]):
            self.add_module(f"attention{i + 1}", self._token_layer(config, chans[i] * k * k))
        k = splits[-1][0]
        self.project = nn.Linear(chans[-1] * k * k, config.embed_dim)

    @staticmethod
    def _token_layer(config: T2TConfig, dim: int) -> nn.Module:
        if config.tokens_type == "performer":
            return TokenPerformer(dim, config.token_dim, config.performer_kernel_ratio, config.performer_drop)
        return TokenTransformer(dim, config.token_dim, config.token_heads, config.fused_attn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens_type == "convolution":
            for i in range(self.num_layers):
                x = F.gelu(getattr(self, f"soft_split{i}")(x))
            return self.project(x).flatten(2).transpose(1, 2)  # (B, N, D)
        if self.fused_soft_split:
            return self._forward_fused(x)
        for i in range(self.num_layers):
            x = getattr(self, f"soft_split{i}")(x).transpose(1, 2)  # (B, L, C*k*k)
            x = getattr(self, f"attention{i + 1}")(x)  # (B, L, token_dim)
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grids[i])  # (B, token_dim, H, W)
        x = getattr(self, f"soft_split{self.num_layers}")(x).transpose(1, 2)
        return self.project(x)  # (B, N, D)

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with each soft split and the projection after it as one convolution (``split_project``)."""
        x = x.contiguous(memory_format=torch.channels_last)
        for i in range(self.num_layers):
            layer = getattr(self, f"attention{i + 1}")
            norm, linear = layer.input_projection()
            x = layer.forward_projected(split_project(x, self.splits[i], linear.weight, linear.bias, norm))
            x = x.transpose(1, 2).unflatten(2, self.grids[i])  # (B, token_dim, H, W), channels-last: a view
        return split_project(x, self.splits[-1], self.project.weight, self.project.bias)

    def extra_repr(self) -> str:
        fused = f", fused_soft_split={self.fused_soft_split}" if self.tokens_type != "convolution" else ""
        return f"tokens_type={self.tokens_type!r}, grids={list(self.grids)}{fused}"
