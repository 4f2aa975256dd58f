"""A plain implementation of the official T2T-ViT math, as the official code computes it: manual attention,
``nn.Unfold`` with reshapes through sqrt(N), the einsum performer with its ``.float()`` casts and ``.repeat``.
It uses the official state-dict keys, so it loads our weights; the benchmarks check both give the same logits.
For benchmarks only: the model is ``t2t/``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Mlp(nn.Module):
    def __init__(self, dim, hidden, out=None):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads, in_dim=None):
        super().__init__()
        self.num_heads, self.in_dim = num_heads, in_dim
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, (in_dim or dim) * 3, bias=False)
        self.proj = nn.Linear(in_dim or dim, in_dim or dim)

    def forward(self, x):
        B, N, C = x.shape
        if self.in_dim is None:  # backbone
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.in_dim).permute(2, 0, 3, 1, 4)  # token transformer
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = self.proj((attn @ v).transpose(1, 2).reshape(B, N, self.in_dim))
        return v.squeeze(1) + x


class TokenTransformer(nn.Module):
    def __init__(self, dim, in_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, 1, in_dim)
        self.norm2 = nn.LayerNorm(in_dim)
        self.mlp = Mlp(in_dim, in_dim)

    def forward(self, x):
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokenPerformer(nn.Module):
    def __init__(self, dim, in_dim, kernel_ratio=0.5, dp=0.1):
        super().__init__()
        self.emb, self.m = in_dim, int(in_dim * kernel_ratio)
        self.kqv = nn.Linear(dim, 3 * self.emb)
        self.dp = nn.Dropout(dp)
        self.proj = nn.Linear(self.emb, self.emb)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(self.emb)
        self.mlp = nn.Sequential(
            nn.Linear(self.emb, self.emb), nn.GELU(), nn.Linear(self.emb, self.emb), nn.Dropout(dp)
        )
        self.w = nn.Parameter(
            nn.init.orthogonal_(torch.randn(self.m, self.emb)) * math.sqrt(self.m), requires_grad=False
        )

    def prm_exp(self, x):
        xd = ((x * x).sum(dim=-1, keepdim=True)).repeat(1, 1, self.m) / 2
        wtx = torch.einsum("bti,mi->btm", x.float(), self.w)
        return torch.exp(wtx - xd) / math.sqrt(self.m)

    def single_attn(self, x):
        k, q, v = torch.split(self.kqv(x), self.emb, dim=-1)
        kp, qp = self.prm_exp(k), self.prm_exp(q)
        D = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(dim=2)
        kptv = torch.einsum("bin,bim->bnm", v.float(), kp)
        y = torch.einsum("bti,bni->btn", qp, kptv) / (D.repeat(1, 1, self.emb) + 1e-8)
        return v + self.dp(self.proj(y))

    def forward(self, x):
        x = self.single_attn(self.norm1(x))
        return x + self.dp(self.mlp(self.norm2(x)))


class T2TModule(nn.Module):
    def __init__(self, splits, tokens_type, in_chans, token_dim, embed_dim):
        super().__init__()
        (k0, s0, p0), (k1, s1, p1), (k2, s2, p2) = splits
        self.soft_split0 = nn.Unfold(kernel_size=k0, stride=s0, padding=p0)
        self.soft_split1 = nn.Unfold(kernel_size=k1, stride=s1, padding=p1)
        self.soft_split2 = nn.Unfold(kernel_size=k2, stride=s2, padding=p2)
        layer = TokenPerformer if tokens_type == "performer" else TokenTransformer
        self.attention1 = layer(in_chans * k0 * k0, token_dim)
        self.attention2 = layer(token_dim * k1 * k1, token_dim)
        self.project = nn.Linear(token_dim * k2 * k2, embed_dim)

    def forward(self, x):
        x = self.attention1(self.soft_split0(x).transpose(1, 2))
        B, new_HW, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, int(math.sqrt(new_HW)), int(math.sqrt(new_HW)))
        x = self.attention2(self.soft_split1(x).transpose(1, 2))
        B, new_HW, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, int(math.sqrt(new_HW)), int(math.sqrt(new_HW)))
        return self.project(self.soft_split2(x).transpose(1, 2))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class OfficialT2TViT(nn.Module):
    """Built from one of our ``T2TConfig``s (three soft splits, performer or transformer tokens)."""

    def __init__(self, cfg):
        super().__init__()
        self.tokens_to_token = T2TModule(cfg.soft_split, cfg.tokens_type, cfg.in_chans, cfg.token_dim, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)

    def forward(self, x):
        x = self.tokens_to_token(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])
