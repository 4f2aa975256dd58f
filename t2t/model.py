"""T2T-ViT: tokens-to-token module, then a ViT backbone on the cls token. The named variants are in ``t2t.variants``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from t2t.config import T2TConfig
from t2t.layers import LN_EPS, Block
from t2t.tokens import TokensToToken


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed 1-D position table (num_positions, dim): angle[p, j] = p / 10000^(2*(j//2)/dim), sin even j, cos odd j."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    exponent = 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim
    angle = position / torch.pow(10000.0, exponent)
    table = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class T2TViT(nn.Module):
    """Tokens-to-Token ViT (Yuan et al., ICCV 2021), loading the official checkpoints unchanged.

    Built from a ``T2TConfig`` or from its fields as keyword arguments (``T2TViT(embed_dim=256, depth=7, ...)``).
    """

    def __init__(self, config: T2TConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = T2TConfig.from_dict(kwargs)
        elif kwargs:
            config = T2TConfig.from_dict({**config.to_dict(), **kwargs})
        self.config = cfg = config
        self.num_classes = cfg.num_classes
        self.num_features = self.embed_dim = cfg.embed_dim

        self.tokens_to_token = TokensToToken(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(
            sinusoid_table(cfg.num_patches + 1, cfg.embed_dim).unsqueeze(0), requires_grad=False
        )
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist()  # stochastic depth rises linearly
        self.blocks = nn.ModuleList(
            Block(
                cfg.embed_dim,
                cfg.num_heads,
                cfg.mlp_ratio,
                qkv_bias=cfg.qkv_bias,
                drop=cfg.drop_rate,
                attn_drop=cfg.attn_drop_rate,
                drop_path=rate,
                fused_attn=cfg.fused_attn,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()

        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    @property
    def img_size(self) -> tuple[int, int]:
        """The image size the model's token grid was built for."""
        return self.config.img_size

    def no_weight_decay(self) -> set[str]:
        """Parameter names that the official recipe exempts from weight decay (besides biases and norms)."""
        return {"cls_token", "pos_embed"}

    def set_fused_attn(self, enabled: bool) -> None:
        """Switch every attention layer between SDPA and the plain reference path."""
        for module in self.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = enabled

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head for ``num_classes`` (0: no head, ``forward`` returns features)."""
        self.num_classes = num_classes
        self.config = self.config.replace(num_classes=num_classes)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.head.to(self.cls_token.device)
        _init_weights(self.head)

    def forward_features(self, x: torch.Tensor, all_tokens: bool = False) -> torch.Tensor:
        """Normed cls token (B, D), or every token (B, 1 + num_patches, D) with ``all_tokens``; cls first."""
        if tuple(x.shape[-2:]) != self.img_size or x.ndim != 4 or x.shape[1] != self.config.in_chans:
            raise ValueError(
                f"expected input (B, {self.config.in_chans}, {self.img_size[0]}, {self.img_size[1]}), "
                f"got {tuple(x.shape)}; build the model with img_size={tuple(x.shape[-2:])} to change it"
            )
        x = self.tokens_to_token(x)  # (B, N, D)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x if all_tokens else x[:, 0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier on the class token's features."""
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
