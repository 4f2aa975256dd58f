"""The search space: a define-by-run function over ``section.key`` paths of the training config.

In YAML each entry is a fixed value or a distribution, optionally conditional on an earlier choice:

    model.depth: {type: int, low: 2, high: 6}
    optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    model.tokens_type: {type: choice, values: [performer, transformer]}
    model.performer_kernel_ratio: {type: float, low: 0.25, high: 1.0, when: {model.tokens_type: performer}}
    train.epochs: 15

``sample(trial)`` only calls ``trial.suggest_*`` (so Optuna sees every parameter with a static distribution);
``apply`` merges the sampled values into the base config.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainables.config import TrainConfig, set_paths

Scalar = bool | int | float | str | None


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    when: dict[str, Scalar] | None = None  # sample only when these earlier parameters have these values

    def active(self, values: dict[str, Any]) -> bool:
        """Whether the parameter is sampled, given the values chosen before it."""
        return not self.when or all(values.get(k) == v for k, v in self.when.items())


class IntParam(_Param):
    """``{type: int, low, high, step}``: an integer, both ends included."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high, self.log)
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[int]:
        """The values the preflight builds the model at: the ends."""
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        """Whether a value (the base config's, for the baseline trial) is one this parameter can take."""
        ok = isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high
        return ok and (value - self.low) % self.step == 0


class FloatParam(_Param):
    """``{type: float, low, high, log, step}``: a float, both ends included."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        if self.step is not None and self.log:
            raise ValueError("a float parameter cannot have both step and log")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[float]:
        """The values the preflight builds the model at: the ends."""
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        """Whether a value (the base config's, for the baseline trial) is one this parameter can take."""
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high
        if not ok or self.step is None:
            return ok
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-9


class ChoiceParam(_Param):
    """``{type: choice, values}``: one of the values, of the same type."""

    type: Literal["choice"]
    values: list[Scalar] = Field(min_length=1)

    def suggest(self, trial: optuna.Trial, name: str) -> Scalar:
        return trial.suggest_categorical(name, self.values)

    def corners(self) -> list[Scalar]:
        """The values the preflight builds the model at: every choice."""
        return list(self.values)

    def contains(self, value: Any) -> bool:
        """Whether a value (the base config's, for the baseline trial) is one of the choices, type and all."""
        return any(value == v and type(value) is type(v) for v in self.values)


Param = Annotated[IntParam | FloatParam | ChoiceParam, Field(discriminator="type")]


def _check_range(low: float, high: float, log: bool) -> None:
    if low >= high:
        raise ValueError(f"low must be below high, got low={low} high={high}")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0, got low={low}")


class SearchSpace:
    """Validated distributions and fixed values over config paths, in the order given."""

    def __init__(self, entries: dict[str, Param | Scalar], head_dim: int | None = None) -> None:
        self.params = {k: v for k, v in entries.items() if isinstance(v, _Param)}
        self.fixed = {k: v for k, v in entries.items() if not isinstance(v, _Param)}
        self.head_dim = head_dim

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every active parameter; return the sampled and fixed values by path."""
        values: dict[str, Any] = dict(self.fixed)
        for name, param in self.params.items():
            if not param.active(values):
                continue
            values[name] = param.suggest(trial, name)
        return values

    def base_values(self, base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The base config's own value of each active parameter, where it lies in that parameter's distribution
        (to enqueue it as the search's first trial), and the names whose base value lies outside."""
        values: dict[str, Any] = dict(self.fixed)
        outside = []
        for name, param in self.params.items():
            if not param.active(values):
                continue
            value = _base_value(base, name)
            if param.contains(value):
                values[name] = value
            else:
                outside.append(name)
        return {k: v for k, v in values.items() if k in self.params}, outside

    def apply(self, base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """The base config (a ``TrainConfig.to_dict()``) with ``values`` set, num_heads derived if asked."""
        values = dict(values)
        if self.head_dim and "model.num_heads" not in values:
            embed_dim = values.get("model.embed_dim", _model_field(base, "embed_dim"))
            values["model.num_heads"] = embed_dim // self.head_dim
        return set_paths(base, values)

    def check(self, base: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming the parameter when any of its corner values makes an invalid config."""
        for name, param in self.params.items():
            for value in param.corners():
                try:
                    TrainConfig.from_dict(self.apply(base, {name: value}))
                except ValueError as e:
                    raise ValueError(f"space.{name}={value!r} gives an invalid config: {e}") from None
        for name, value in self.fixed.items():
            try:
                TrainConfig.from_dict(self.apply(base, {name: value}))
            except ValueError as e:
                raise ValueError(f"space.{name}={value!r} gives an invalid config: {e}") from None
        for name, param in self.params.items():
            for key, value in (param.when or {}).items():
                if key not in self.params or list(self.params).index(key) >= list(self.params).index(name):
                    raise ValueError(f"space.{name}.when refers to {key!r}, which must be a parameter listed before it")
                if value not in self.params[key].corners() and not isinstance(self.params[key], (IntParam, FloatParam)):
                    raise ValueError(f"space.{name}.when: {value!r} is not among the values of {key}")
        self._check_heads(base)

    def _check_heads(self, base: dict[str, Any]) -> None:
        """Every sampled embed_dim must split into whole heads: check all combinations up front."""
        dims = self.every_value("model.embed_dim", _model_field(base, "embed_dim"))
        if self.head_dim:
            bad = [d for d in dims if d % self.head_dim]
            if bad:
                raise ValueError(f"search.head_dim={self.head_dim} does not divide model.embed_dim {bad[0]}")
            return
        heads = self.every_value("model.num_heads", _model_field(base, "num_heads"))
        for d, h in itertools.product(dims, heads):
            if d % h:
                raise ValueError(
                    f"model.embed_dim {d} is not divisible by model.num_heads {h}: search both as choices that "
                    "divide, or set search.head_dim to derive num_heads from embed_dim"
                )

    def values_of(self, name: str, default: Any) -> list[Any]:
        """The values at the edges of what ``name`` takes in a trial: its corners, its fixed value, or ``default``."""
        if name in self.params:
            return self.params[name].corners()
        return [self.fixed.get(name, default)]

    def every_value(self, name: str, default: Any) -> list[Any]:
        """Every value ``name`` takes in a trial (an int range or a choice), else its fixed value or ``default``."""
        param = self.params.get(name)
        if param is None:
            return [self.fixed.get(name, default)]
        if isinstance(param, IntParam):
            return list(range(param.low, param.high + 1, param.step))
        if isinstance(param, ChoiceParam):
            return list(param.values)
        raise ValueError(f"space.{name} must be an int range or a choice, not a float range")


def _base_value(base: dict[str, Any], path: str) -> Any:
    """The value at ``section.key`` in ``base``; a model field not set there is the named variant's default."""
    section, _, key = path.partition(".")
    if section == "model":
        try:
            return _model_field(base, key)
        except AttributeError:  # not a T2TConfig field
            return None
    node: Any = base
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _model_field(base: dict[str, Any], name: str) -> Any:
    """A model field's value in ``base``: its override, else the named variant's default."""
    import t2t

    model = base.get("model", {})
    if name in model:
        return model[name]
    return getattr(t2t.model_config(model.get("name", "t2t_vit_mini")), name)
