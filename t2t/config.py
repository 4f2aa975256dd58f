"""The model's whole specification as one frozen, validated record.

Everything else derives from it: the module tree (``t2t.model``), the token grid and ``num_patches``
(``t2t.geometry``), and the parameter and MAC counts (``t2t.complexity``), so the search can price a
configuration without building it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract.names import close_matches
from t2t.geometry import token_grids

SoftSplit = tuple[tuple[int, int, int], ...]  # ((kernel, stride, padding), ...), one per soft split

# Named soft-split geometries. All keep the official kernel sizes (7, 3, 3), so an ImageNet checkpoint loads into
# any of them; only strides and paddings differ. Overall stride 16 suits 224 px, 4 and 8 suit 32 px images.
SOFT_SPLIT_PRESETS: dict[str, SoftSplit] = {
    "imagenet": ((7, 4, 2), (3, 2, 1), (3, 2, 1)),  # official: 224 -> 56 -> 28 -> 14 (196 tokens)
    "cifar": ((7, 1, 3), (3, 2, 1), (3, 2, 1)),  # stride 4: 32 -> 32 -> 16 -> 8 (64 tokens)
    "compact": ((7, 2, 3), (3, 2, 1), (3, 2, 1)),  # stride 8: 32 -> 16 -> 8 -> 4 (16 tokens), cheap on a CPU
}

TOKENS_TYPES = ("performer", "transformer", "convolution")


@dataclass(frozen=True)
class T2TConfig:
    """All hyperparameters of a T2T-ViT. Construction validates them; a bad value raises ``ValueError``."""

    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    num_classes: int = 1000
    tokens_type: str = "performer"
    soft_split: str | SoftSplit = "imagenet"
    token_dim: int = 64
    token_heads: int = 1  # token transformer only; the official code crashes with more than one
    performer_kernel_ratio: float = 0.5  # random features m = int(token_dim * ratio)
    performer_drop: float = 0.1  # the official code hard-codes both of the performer's dropouts to 0.1
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    fused_attn: bool = True  # SDPA where it wins (see t2t.layers.attention); False: the plain reference math
    fused_soft_split: bool = True  # each soft split + LayerNorm + projection as one convolution (t2t.tokens)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("img_size", _pair("img_size", self.img_size))
        set_("soft_split", _soft_split(self.soft_split))
        if self.tokens_type not in TOKENS_TYPES:
            raise ValueError(f"tokens_type must be one of {TOKENS_TYPES}, got {self.tokens_type!r}")
        for name in ("in_chans", "token_dim", "token_heads", "embed_dim", "depth", "num_heads"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("num_classes", self.num_classes, minimum=0)
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate", "performer_drop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        for name in ("qkv_bias", "fused_attn", "fused_soft_split"):
            if not isinstance(getattr(self, name), bool):  # "false" is truthy: a string would mean True
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("mlp_ratio", "performer_kernel_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio must be > 0 with a hidden width >= 1, got mlp_ratio={self.mlp_ratio!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got embed_dim={self.embed_dim} num_heads={self.num_heads}"
            )
        if self.token_heads != 1 and self.tokens_type != "transformer":
            raise ValueError(f"token_heads > 1 needs tokens_type='transformer', got {self.tokens_type!r}")
        if self.token_dim % self.token_heads:
            raise ValueError(
                f"token_dim must be divisible by token_heads, got token_dim={self.token_dim} "
                f"token_heads={self.token_heads}"
            )
        if self.tokens_type == "performer" and self.performer_m < 1:
            raise ValueError(
                f"performer_kernel_ratio gives no random features: int(token_dim * ratio) = "
                f"int({self.token_dim} * {self.performer_kernel_ratio}) = {self.performer_m}; it must be >= 1"
            )
        self.grids  # noqa: B018 -- raises if the soft splits cannot tile img_size

    @property
    def performer_m(self) -> int:
        """The performer's random features: ``token_dim * performer_kernel_ratio``."""
        return int(self.token_dim * self.performer_kernel_ratio)

    @property
    def grids(self) -> tuple[tuple[int, int], ...]:
        """Token grid (H, W) after each soft split; the last one gives the backbone's tokens."""
        return token_grids(self.img_size, self.soft_split)

    @property
    def num_patches(self) -> int:
        """Tokens after the last soft split."""
        h, w = self.grids[-1]
        return h * w

    @property
    def mlp_hidden(self) -> int:
        """The MLP's hidden width: ``embed_dim * mlp_ratio``."""
        return int(self.embed_dim * self.mlp_ratio)

    def replace(self, **changes: Any) -> T2TConfig:
        """A copy with ``changes`` (its checks run again: a bad value raises ``ValueError``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-friendly values (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        d["soft_split"] = [list(t) for t in self.soft_split]
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> T2TConfig:
        """Build from a mapping; an unknown key raises ``ValueError`` naming it and the close matches."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ValueError(f"unknown model option {key!r}{close_matches(key, known)}")
        return cls(**values)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _pair(name: str, value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, Sequence)
        or len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair)
    ):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of them, got {value!r}")
    return (pair[0], pair[1])


def _soft_split(value: Any) -> SoftSplit:
    if isinstance(value, str):
        if value not in SOFT_SPLIT_PRESETS:
            raise ValueError(
                f"unknown soft_split preset {value!r}{close_matches(value, SOFT_SPLIT_PRESETS)}; "
                f"presets: {sorted(SOFT_SPLIT_PRESETS)}, or give ((kernel, stride, padding), ...)"
            )
        return SOFT_SPLIT_PRESETS[value]
    ok = isinstance(value, Sequence) and len(value) >= 1
    triples = []
    for t in value if ok else ():
        if (
            not isinstance(t, Sequence)
            or len(t) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) for v in t)
            or t[0] < 1
            or t[1] < 1
            or t[2] < 0
        ):
            ok = False
            break
        triples.append((t[0], t[1], t[2]))
    if not ok:
        raise ValueError(
            "soft_split must be a preset name or a non-empty sequence of (kernel >= 1, stride >= 1, padding >= 0) "
            f"triples, got {value!r}"
        )
    return tuple(triples)
