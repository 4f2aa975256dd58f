"""Named model variants: ``register_model`` adds a factory, ``create_model`` builds one by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from contract.names import close_matches

_MODELS: dict[str, Callable[..., Any]] = {}


def register_model(factory: Callable[..., Any]) -> Callable[..., Any]:
    if factory.__name__ in _MODELS:
        raise ValueError(f"model {factory.__name__!r} is registered twice")
    _MODELS[factory.__name__] = factory
    return factory


def list_models() -> list[str]:
    return sorted(_MODELS)


def _factory(name: str) -> Callable[..., Any]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}{close_matches(name, _MODELS)} (known: {', '.join(list_models())})")
    return _MODELS[name]


def model_config(name: str, **overrides: Any):
    """The validated ``T2TConfig`` of a named variant with ``overrides`` applied, without building the model."""
    return _factory(name)(build=False, **overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered variant; ``overrides`` replace any of its ``T2TConfig`` fields."""
    return _factory(name)(**overrides)
