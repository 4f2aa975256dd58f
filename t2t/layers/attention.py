"""Multi-head self-attention with a fused (SDPA) path and the plain reference path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# On a CPU, SDPA against the explicit product, forward + backward: in float32 it wins from about 128 tokens and loses
# below; in bfloat16 it loses up to ~1000 tokens (benchmarks/README.md, section 1).
CPU_SDPA_MIN_TOKENS = {torch.float32: 128}
CPU_SDPA_MIN_TOKENS_OTHER = 1024  # bfloat16, float16, float64


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    dropout_p: float,
    fused: bool,
    cpu_min_tokens: int | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale) v over (B, heads, N, head_dim) tensors.

    ``fused`` uses ``F.scaled_dot_product_attention`` (on a CPU only from ``cpu_min_tokens`` tokens, by default
    where it wins for q's dtype); otherwise the explicit reference computation, in the official order (q is scaled
    before the product).
    """
    if cpu_min_tokens is None:
        cpu_min_tokens = CPU_SDPA_MIN_TOKENS.get(q.dtype, CPU_SDPA_MIN_TOKENS_OTHER)
    if fused and (q.device.type != "cpu" or q.shape[-2] >= cpu_min_tokens):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    attn = (q * scale) @ k.transpose(-2, -1)  # (B, H, N, N)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, dropout_p, training=True)
    return attn @ v


class Attention(nn.Module):
    """Self-attention from ``dim`` to ``out_dim`` channels with ``num_heads`` heads.

    With ``out_dim == dim`` this is the backbone's attention. The token transformer uses ``out_dim`` smaller than
    ``dim`` and adds its skip connection on ``v`` (``v_skip=True``), because its input has another width.
    ``scale`` defaults to ``(dim // num_heads) ** -0.5``: the *input* width per head, as in the official code.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        out_dim: int | None = None,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        v_skip: bool = False,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        out_dim = out_dim or dim
        if out_dim % num_heads:
            raise ValueError(f"attention width must be divisible by num_heads, got {out_dim=} {num_heads=}")
        self.num_heads = num_heads
        self.out_dim = out_dim
        self.scale = (dim // num_heads) ** -0.5
        self.v_skip = v_skip
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, 3 * out_dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(out_dim, out_dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend_projected(self.qkv(x))

    def attend_projected(self, qkv: torch.Tensor) -> torch.Tensor:
        """The rest of ``forward`` after the ``qkv`` projection (B, N, 3 * out_dim), however that was computed."""
        B, N, _ = qkv.shape
        qkv = qkv.reshape(B, N, 3, self.num_heads, self.out_dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, head_dim)
        dropout_p = self.attn_drop if self.training else 0.0
        y = attend(q, k, v, self.scale, dropout_p, self.fused_attn)
        y = y.transpose(1, 2).reshape(B, N, self.out_dim)
        y = self.proj_drop(self.proj(y))
        if self.v_skip:
            y = v.transpose(1, 2).reshape(B, N, self.out_dim) + y
        return y

    def extra_repr(self) -> str:
        heads = f"num_heads={self.num_heads}, scale={self.scale:.4g}"
        return f"{heads}, attn_drop={self.attn_drop}, fused={self.fused_attn}"
