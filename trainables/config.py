"""The training configuration: typed, closed (unknown keys are errors) and validated before anything runs.

YAML / ``--set key=value`` -> ``TrainConfig`` -> ``to_dict()`` (a plain dict for Ray Tune's ``param_space``)
-> ``TrainConfig.from_dict`` again at the top of the trainable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

import t2t
from trainables.yaml_reader import YamlError, loads, read_file

# Set by the data set, not by the user: the model is built to fit it.
_DATA_DERIVED = {"img_size": "data.img_size", "in_chans": "the data set", "num_classes": "the data set"}


class ConfigError(ValueError):
    """A configuration problem, with a one-line message that names the key and the fix."""


# numpy's and torch's seeds are unsigned 32-bit (torch takes 64, but numpy's RandomState in the libraries does not)
MAX_SEED = 2**32 - 1


# What a run may change when it continues from a checkpoint (an exploit of population-based training, or a user
# resuming with a lower learning rate): the schedule, regularisation and augmentation strength, each read afresh at
# every step. The architecture, the data, the epochs and the seed stay: the weights, the batches and the schedule's
# length are made of them.
MUTABLE = (
    "optim.lr", "optim.min_lr", "optim.warmup_lr", "optim.weight_decay", "optim.clip_grad",
    "model.drop_rate", "model.attn_drop_rate", "model.drop_path_rate", "model.performer_drop",
    "train.label_smoothing", "train.ema_decay",
    "data.mixup", "data.cutmix", "data.random_erasing", "data.randaugment_magnitude",
)  # fmt: skip


class _Section(BaseModel):
    # strict: a value is read as what it is, so `qkv_bias: "false"` or `epochs: true` is an error, not a coercion
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def list_to_tuple(value: Any) -> Any:
    """A list as a tuple (a strict field's validator): YAML and JSON have lists, not tuples."""
    return tuple(value) if isinstance(value, list) else value


class ModelSection(BaseModel):
    """``name`` of a registered variant plus any ``T2TConfig`` field to override (depth, token_dim, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    name: str = "t2t_vit_mini"
    pretrained: str | None = None  # checkpoint file to start from (official ImageNet or ours)

    @property
    def overrides(self) -> dict[str, Any]:
        """The T2TConfig fields the section sets besides the variant's name."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check(self) -> ModelSection:
        for key, where in _DATA_DERIVED.items():
            if key in self.overrides:
                raise ValueError(f"model.{key} is set by {where}, remove it from the model section")
        t2t.model_config(self.name, **self.overrides)  # raises ValueError naming the option or rule
        return self

    def build_config(self, img_size: int, in_chans: int, num_classes: int) -> t2t.T2TConfig:
        """The variant's ``T2TConfig`` for this data (image size, channels, classes) with the overrides."""
        return t2t.model_config(
            self.name, img_size=img_size, in_chans=in_chans, num_classes=num_classes, **self.overrides
        )


class DataSection(_Section):
    """The data set, its splits and its augmentation."""

    name: Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic"] = "digits"
    root: str = "data"  # where cifar10/cifar100/imagefolder live (imagefolder: root/train, root/val, root/test)
    download: bool = False  # let torchvision download CIFAR into root (needs internet, once)
    img_size: int = Field(32, ge=8, le=1024)
    # The split is drawn from its own seed, not train.seed: runs of one config with several train.seed values
    # (the final phase) train and measure on the same images.
    split_seed: int = Field(0, ge=0, le=MAX_SEED)
    val_fraction: float = Field(0.2, gt=0, lt=1)  # digits and synthetic: held-out share for val, stratified
    test_fraction: float = Field(0.2, gt=0, lt=1)  # digits and synthetic: held-out share for test, stratified
    val_size: int = Field(5000, ge=1)  # CIFAR: val images carved from the official training set, stratified
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    num_workers: int | None = Field(None, ge=0)  # imagefolder loader processes; None: the CPUs available
    synthetic_samples: int = Field(512, ge=10)
    synthetic_classes: int = Field(10, ge=2)
    augment: bool = True  # random crop (+ horizontal flip where it makes sense)
    randaugment_magnitude: int | None = Field(None, ge=0, le=30)  # RandAugment(2 ops, magnitude); None: off
    random_erasing: float = Field(0.0, ge=0, le=1)  # probability per image
    mixup: float = Field(0.0, ge=0)  # Beta(alpha, alpha) of mixup; 0: off
    cutmix: float = Field(0.0, ge=0)  # Beta(alpha, alpha) of cutmix; 0: off

    @model_validator(mode="after")
    def _check(self) -> DataSection:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"data.val_fraction={self.val_fraction} plus data.test_fraction={self.test_fraction} must be below 1 "
                "to leave training images; lower one of them"
            )
        return self


class OptimSection(_Section):
    """AdamW and its schedule: warmup then cosine to ``min_lr``."""

    lr: float = Field(2e-3, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0)
    betas: Annotated[tuple[float, float], BeforeValidator(list_to_tuple)] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    warmup_epochs: float = Field(2.0, ge=0)
    warmup_lr: float = Field(1e-6, ge=0)
    min_lr: float = Field(1e-5, ge=0)
    clip_grad: float | None = Field(None, gt=0)  # max global grad norm; None: no clipping

    @model_validator(mode="after")
    def _check(self) -> OptimSection:
        if self.min_lr > self.lr:
            raise ValueError(f"optim.min_lr must not exceed optim.lr, got min_lr={self.min_lr} lr={self.lr}")
        if any(not 0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be in [0, 1), got {self.betas}")
        return self


class TrainSection(_Section):
    """Epochs, seed, regularisation, EMA, precision and device."""

    epochs: int = Field(20, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    ema_decay: float | None = Field(None, gt=0, lt=1)  # model EMA; validation then uses the EMA weights
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on a GPU that has it, else fp32
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False  # torch.compile the model
    # Also measure the test split once, after the last epoch, with the weights val is measured with. Off in a search
    # (no test number may reach the scheduler or the searcher); the final phase turns it on.
    evaluate_test: bool = False


class TrainConfig(_Section):
    """One training run's whole config: model, data, optim, train."""

    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    optim: OptimSection = OptimSection()
    train: TrainSection = TrainSection()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (what a checkpoint and a trial's config hold)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The config of ``values``; a bad key or value raises ``ConfigError`` naming it."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise ConfigError(describe(e)) from None

    @classmethod
    def load(cls, path: str | Path | None = None, assignments: Sequence[str] = ()) -> TrainConfig:
        """The YAML file at ``path`` (or the defaults) with ``key=value`` assignments applied."""
        values = read_yaml(path) if path else {}
        return cls.from_dict(apply_assignments(values, list(assignments)))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's sections (see ``trainables.yaml_reader`` for how it is read)."""
    try:
        values = read_file(path) or {}
    except YamlError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(values).__name__}")
    return values


def apply_assignments(values: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (value parsed as YAML) to a nested dict, returning a new one."""
    updates = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. optim.lr=0.001), got {assignment!r}")
        try:
            updates[key.strip()] = loads(raw, f"--set {key.strip()}") if raw.strip() else None
        except YamlError as e:
            raise ConfigError(str(e)) from None
    return set_paths(values, updates)


def set_paths(values: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """A copy of the nested dict ``values`` with each dotted path of ``updates`` set."""
    out = _deep_copy(values)
    for key, value in updates.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def describe(error: ValidationError, root: type[BaseModel] | None = None) -> str:
    """One line per problem, naming the key: ``optim.lr: Input should be greater than 0 (got -1)``."""
    lines = []
    for e in error.errors():
        loc = [str(p) for p in e["loc"] if not str(p).startswith(("tagged-union[", "function-after["))]
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key" + _suggest(e["loc"], root or TrainConfig)
        elif "input" in e and not isinstance(e["input"], dict) and repr(e["input"]) not in message:
            message += f" (got {e['input']!r})"
        lines.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(lines)


def _suggest(loc: tuple, root: type[BaseModel]) -> str:
    from contract.names import close_matches

    section: Any = root
    for part in loc[:-1]:
        field = section.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return ""
        section = field.annotation
    return close_matches(str(loc[-1]), section.model_fields)


def _deep_copy(values: Any) -> Any:
    return {k: _deep_copy(v) for k, v in values.items()} if isinstance(values, dict) else values
