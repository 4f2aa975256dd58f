"""Parameter and MAC counts computed from a ``T2TConfig`` alone, without building the model.

MACs follow ``torch.utils.flop_counter.FlopCounterMode`` for one image: matmul-type work (linear layers,
attention products, the performer's kernel products, convolutions) at one MAC per multiply-add; softmax, norms,
activations and element-wise ops are not counted. This is the convention the reference manifest was measured in.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from t2t.config import T2TConfig


@dataclass(frozen=True)
class Complexity:
    """Parameters and MACs of a configuration, counted analytically."""

    params: int  # every parameter, frozen ones included (the official README's "#params")
    params_trainable: int
    macs: int  # per image
    macs_tokens_to_token: int
    macs_blocks: int
    macs_head: int

    @property
    def gmacs(self) -> float:
        """MACs per image in billions."""
        return self.macs / 1e9


def _linear(n: int, d_in: int, d_out: int, bias: bool = True) -> tuple[int, int]:
    """(params, MACs) of a Linear applied to n tokens."""
    return d_in * d_out + (d_out if bias else 0), n * d_in * d_out


def _tokens_to_token(cfg: T2TConfig) -> tuple[int, int, int]:
    """(params, frozen params, MACs) of the tokens-to-token module."""
    params = frozen = macs = 0
    chans = cfg.in_chans
    emb = cfg.token_dim
    for (k, _, _), (h, w) in zip(cfg.soft_split[:-1], cfg.grids[:-1], strict=True):
        n, d_in = h * w, chans * k * k
        if cfg.tokens_type == "convolution":
            params += d_in * emb + emb
            macs += n * d_in * emb
        else:
            norms = 2 * d_in + 2 * emb
            mlp = 2 * (emb * emb + emb)  # hidden width = token_dim
            proj = emb * emb + emb
            if cfg.tokens_type == "performer":
                m = cfg.performer_m
                params += 3 * emb * d_in + 3 * emb + proj + norms + mlp + m * emb
                frozen += m * emb  # the random-feature matrix w
                # kqv, features of q and k, normaliser, phi(k)^T v, phi(q) (..), proj, mlp
                macs += n * (3 * emb * d_in + 2 * emb * m + m + 2 * emb * m + 3 * emb * emb)
            else:
                params += 3 * emb * d_in + proj + norms + mlp  # qkv has no bias
                macs += n * (3 * emb * d_in + 3 * emb * emb) + 2 * n * n * emb
        chans = emb
    (k, _, _), (h, w) = cfg.soft_split[-1], cfg.grids[-1]
    p, m = _linear(h * w, chans * k * k, cfg.embed_dim)
    return params + p, frozen, macs + m


def complexity(spec: T2TConfig | nn.Module) -> Complexity:
    """Parameters and MACs of a ``T2TConfig`` (or of a model's ``.config``) at its image size."""
    cfg = spec if isinstance(spec, T2TConfig) else spec.config
    d, hidden, n = cfg.embed_dim, cfg.mlp_hidden, cfg.num_patches + 1
    t2t_params, frozen, t2t_macs = _tokens_to_token(cfg)

    qkv_p, qkv_m = _linear(n, d, 3 * d, bias=cfg.qkv_bias)
    proj_p, proj_m = _linear(n, d, d)
    fc1_p, fc1_m = _linear(n, d, hidden)
    fc2_p, fc2_m = _linear(n, hidden, d)
    block_params = 4 * d + qkv_p + proj_p + fc1_p + fc2_p
    block_macs = qkv_m + 2 * n * n * d + proj_m + fc1_m + fc2_m
    head_params, head_macs = _linear(1, d, cfg.num_classes) if cfg.num_classes else (0, 0)

    pos_embed = n * d
    params = t2t_params + d + pos_embed + cfg.depth * block_params + 2 * d + head_params
    return Complexity(
        params=params,
        params_trainable=params - frozen - pos_embed,
        macs=t2t_macs + cfg.depth * block_macs + head_macs,
        macs_tokens_to_token=t2t_macs,
        macs_blocks=cfg.depth * block_macs,
        macs_head=head_macs,
    )
