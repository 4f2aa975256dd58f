"""Named model variants: ``model_config`` and ``create_model`` look a name up in ``t2t.variants.VARIANTS``."""

from __future__ import annotations

from typing import Any

from contract.names import close_matches
from t2t.config import T2TConfig
from t2t.model import T2TViT
from t2t.variants import VARIANTS


def list_models() -> list[str]:
    """The registered variants' names, sorted."""
    return sorted(VARIANTS)


def model_config(name: str, **overrides: Any) -> T2TConfig:
    """The validated ``T2TConfig`` of a named variant with ``overrides`` applied, without building the model."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}{close_matches(name, VARIANTS)} (known: {', '.join(list_models())})")
    return T2TConfig.from_dict({**VARIANTS[name], **overrides})


def create_model(name: str, **overrides: Any) -> T2TViT:
    """Build a named variant; ``overrides`` replace any of its ``T2TConfig`` fields."""
    return T2TViT(model_config(name, **overrides))
