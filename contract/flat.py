"""Nested configs as dotted keys (``{"model": {"depth": 4}}`` -> ``{"model.depth": 4}``): MLflow params, reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of ``a.b.c`` keys (MLflow's parameters, the space's paths)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
