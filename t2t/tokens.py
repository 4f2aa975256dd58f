"""The tokens-to-token module: soft splits that re-structurize the image, with a token layer between them.

Each soft split is an ``nn.Unfold`` (kernel, stride, padding): overlapping patches whose pixels become one token,
flattened channel-major (index = c*k*k + i*k + j) as the official weights expect. Between splits a token layer
(performer or transformer) mixes the tokens and shrinks them to ``token_dim`` channels; the tokens are then laid
back on their (H, W) grid for the next split. After the last split ``project`` maps to the backbone's width.
The ``convolution`` variant (the paper's T2T-ViT_c) replaces every split + token layer by a convolution.
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


def performer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, eps: float = 1e-8):
    """Linear-time softmax-kernel attention, computed in (at least) float32 whatever autocast says."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, v, w = (t.to(dtype) for t in (q, k, v, w))
        qp, kp = random_features(q, w), random_features(k, w)  # (B, T, m)
        normaliser = qp @ kp.sum(dim=1).unsqueeze(-1)  # (B, T, 1)
        kptv = v.transpose(1, 2) @ kp  # (B, d, m)
        return (qp @ kptv.transpose(1, 2)) / (normaliser + eps)  # (B, T, d)


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

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        k, q, v = self.kqv(x).split(self.out_dim, dim=-1)  # official order: k, q, v
        y = performer_attention(q, k, v, self.w).to(v.dtype)
        return v + self.dp(self.proj(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.norm1(x))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokensToToken(nn.Module):
    """Image (B, C, H, W) -> tokens (B, num_patches, embed_dim), geometry from ``config.soft_split``."""

    def __init__(self, config: T2TConfig) -> None:
        super().__init__()
        self.tokens_type = config.tokens_type
        self.grids = config.grids
        splits = config.soft_split
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
        for i in range(self.num_layers):
            x = getattr(self, f"soft_split{i}")(x).transpose(1, 2)  # (B, L, C*k*k)
            x = getattr(self, f"attention{i + 1}")(x)  # (B, L, token_dim)
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grids[i])  # (B, token_dim, H, W)
        x = getattr(self, f"soft_split{self.num_layers}")(x).transpose(1, 2)
        return self.project(x)  # (B, N, D)

    def extra_repr(self) -> str:
        return f"tokens_type={self.tokens_type!r}, grids={list(self.grids)}"
