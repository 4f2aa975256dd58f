"""The pre-norm transformer block of the T2T-ViT backbone."""

from __future__ import annotations

import torch
from torch import nn

from t2t.layers.attention import Attention
from t2t.layers.drop import DropPath
from t2t.layers.mlp import Mlp

LN_EPS = 1e-5  # every LayerNorm in T2T-ViT uses PyTorch's default eps (timm's ViT uses 1e-6)


class Block(nn.Module):
    """A pre-norm transformer block: attention then MLP, each residual through DropPath."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop, fused_attn=fused_attn
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
