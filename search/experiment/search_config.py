"""The experiment config: the fixed training config, the search space, and how to search and track.

    name: t2t-search            # MLflow experiment, Tune experiment folder and Optuna study
    base: {model: ..., data: ..., optim: ..., train: ...}     # a trainables TrainConfig
    space: {model.depth: {type: int, low: 2, high: 6}, ...}   # see search/study/space.py
    search: {num_trials: 12, scheduler: asha, ...}
    tracking_uri: null          # MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory
    storage_path: null          # Tune's results: ./ray_results (must be shared storage on a cluster)

Everything is validated (unknown keys, bad values, an invalid corner of the space) before Ray or MLflow start.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.tracking import DEFAULT_TRACKING_URI
from search.population.check import check_population, check_study_mode
from search.study.space import ChoiceParam, Param, SearchSpace
from trainables.config import MAX_SEED, ConfigError, TrainConfig, apply_assignments, describe, list_to_tuple, read_yaml

DEFAULT_STORAGE = "ray_results"

# The embedded default: digits with a small T2T-ViT on a laptop CPU, the final phase included in minutes on 2 cores.
# No augmentation: a random crop of an 8 px digit upscaled to 32 px shifts it by a whole pixel of the original, which
# cost more than it gave; batch 32 at lr 2e-3 learns in the few epochs a trial has (both measured: benchmarks/README.md,
# section 5).
DEFAULT_BASE: dict[str, Any] = {
    "model": {"name": "t2t_vit_mini"},
    "data": {"augment": False, "batch_size": 32},
    "optim": {"lr": 2.0e-3, "warmup_epochs": 1.0},
    "train": {"epochs": 4},
}
DEFAULT_SPACE: dict[str, Any] = {
    "model.depth": {"type": "int", "low": 3, "high": 5},
    "model.token_dim": {"type": "choice", "values": [16, 32]},
    "model.embed_dim": {"type": "choice", "values": [96, 128]},
    "model.mlp_ratio": {"type": "choice", "values": [2.0, 3.0]},
    "model.tokens_type": {"type": "choice", "values": ["performer", "transformer"]},
    "model.performer_kernel_ratio": {
        "type": "float",
        "low": 0.25,
        "high": 1.0,
        "when": {"model.tokens_type": "performer"},
    },
    "model.drop_path_rate": {"type": "float", "low": 0.0, "high": 0.2},
    "model.drop_rate": {"type": "float", "low": 0.0, "high": 0.1},
    "model.attn_drop_rate": {"type": "float", "low": 0.0, "high": 0.1},
    "optim.lr": {"type": "float", "low": 1.0e-3, "high": 4.0e-3, "log": True},
    "optim.weight_decay": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
}


_PARAM = TypeAdapter(Param)


# The keys that decide which images each split holds (trainables.config.DataSection): one value for a whole search.
SPLIT_KEYS = (
    "data.name", "data.root", "data.split_seed", "data.val_fraction", "data.test_fraction", "data.val_size",
    "data.synthetic_samples", "data.synthetic_classes",
)  # fmt: skip


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)  # strict: see trainables.config


class FinalSection(_Section):
    """The final phase: after the search, the best configurations and the baseline retrained from scratch with
    several seeds and measured once on the test split (see search/experiment/final_phase.py)."""

    enabled: bool = True
    top_k: int = Field(1, ge=1)  # the best completed configurations of the search, by contract.ranking
    seeds: int = Field(3, ge=2)  # runs per configuration: at least 2 for a spread


class PopulationSection(_Section):
    """``search.mode`` pbt or pb2: a population trained together, the worst members copying the best ones' weights
    and configuration every ``interval`` epochs and changing the ``mutable`` keys (search/population/)."""

    size: int = Field(4, ge=2)  # members, each one trial trained to full length
    interval: int = Field(1, ge=1)  # epochs between a member's perturbations (a checkpoint is made every epoch)
    quantile: float = Field(0.25, gt=0, le=0.5)  # the bottom share copies the top share
    resample_probability: float = Field(0.25, ge=0, le=1)  # pbt: a copied value is drawn anew from the space
    # the keys a perturbation changes, each of trainables.config.MUTABLE with a distribution in space; null: all such
    mutable: Annotated[tuple[str, ...] | None, BeforeValidator(list_to_tuple)] = None


class SearchSection(_Section):
    """How to search: trials, sampler, scheduler, budgets, resources, the baseline and the final phase."""

    # study: Optuna proposes each trial, ASHA stops the hopeless ones; pbt/pb2: Ray's population-based training
    mode: Literal["study", "pbt", "pb2"] = "study"
    num_trials: int = Field(6, ge=1)
    max_concurrent: int | None = Field(None, ge=1)  # None: as many as the cluster's resources allow
    seed: int = Field(0, ge=0, le=MAX_SEED)
    sampler: Literal["tpe", "random"] = "tpe"
    multi_objective: bool = False  # maximise val_acc and minimise MACs (a Pareto front)
    scheduler: Literal["asha", "none"] = "asha"
    grace_period: int = Field(2, ge=1)  # ASHA: epochs every trial gets before it may be stopped
    reduction_factor: float = Field(2.0, gt=1)  # ASHA: keep the top 1/reduction_factor at each rung
    time_budget_s: float | None = Field(None, gt=0)  # stop the whole search after this long
    max_params: int | None = Field(None, ge=1)  # refuse configurations above this many parameters
    max_macs: int | None = Field(None, ge=1)  # refuse configurations above this many MACs per image
    head_dim: int | None = Field(32, ge=1)  # derive model.num_heads = embed_dim // head_dim (null: off)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)  # fractions share a GPU between trials
    workers_per_trial: int = Field(1, ge=1)  # a trial's processes (DDP), sharing its CPUs and GPUs equally
    max_failures: int = Field(2, ge=0)  # retries of a trial whose worker or node died
    keep_checkpoints: int = Field(2, ge=1)  # per trial, the best by val_acc
    log_checkpoints: int = Field(3, ge=0)  # the best trials' model weights become MLflow artifacts
    register_model: bool = True  # the winner in the Model Registry as an MLflow model (torch.export: ~6 s at the end)
    report: bool = True  # the report at the end (~4 s; python -m analysis.report makes one any time)
    warm_start: str | None = None  # a previous search's study, e.g. ray_results/OLD/optuna.journal
    baseline: bool = True  # the first trial trains the base config's own values (not with warm_start)
    population: PopulationSection = PopulationSection()
    final: FinalSection = FinalSection()


class SearchConfig(_Section):
    """The experiment config (see the module's docstring), validated whole before anything starts."""

    name: str = "t2t-search"
    base: TrainConfig = TrainConfig.from_dict(DEFAULT_BASE)
    space: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_SPACE), validate_default=True)
    search: SearchSection = SearchSection()
    tracking_uri: str | None = None
    storage_path: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value):
            raise ValueError(f"name must be letters, digits, '_', '.', '-' (at most 100), got {value!r}")
        return value

    @field_validator("space", mode="before")
    @classmethod
    def _space(cls, space: Any) -> dict[str, Any]:
        """A mapping is a distribution (validated as one), anything else a fixed value."""
        if not isinstance(space, dict):
            raise ValueError("space must be a mapping of section.key to a value or a distribution")
        out = {}
        for key, value in space.items():
            if (
                not isinstance(key, str)
                or "." not in key
                or key.split(".")[0] not in ("model", "data", "optim", "train")
            ):
                raise ValueError(f"space key {key!r} must be section.key with section model, data, optim or train")
            if isinstance(value, dict):
                try:
                    value = _PARAM.validate_python(value)
                except ValidationError as e:
                    raise ValueError(f"{key}: {describe(e)}") from None
            elif isinstance(value, (list, tuple)):
                raise ValueError(f"{key}: a list is not a distribution; write {{type: choice, values: [...]}}")
            out[key] = value
        return out

    @model_validator(mode="after")
    def _check_space(self) -> SearchConfig:
        self.search_space.check(self.base.to_dict())
        if not self.search_space.params and self.search.num_trials > 1:
            raise ValueError(
                f"space has no distribution, so the search.num_trials={self.search.num_trials} trials would be "
                "identical: add one ({type: ...}) or set search.num_trials=1"
            )
        if self.search.workers_per_trial > 1:
            self._check_workers()
        if self.search.mode != "study":
            check_population(self)
        else:
            check_study_mode(self)
            if self.search.scheduler == "asha":
                self._check_asha()
        varied = [key for key in SPLIT_KEYS if key in self.space]
        if varied:
            raise ValueError(
                f"space varies {varied[0]}, which decides which images the val and test splits hold: trials would be "
                "ranked, and candidates compared, on different images; set it in base.data instead"
            )
        if self.base.train.evaluate_test or "train.evaluate_test" in self.space:
            raise ValueError(
                "train.evaluate_test is the final phase's own (the search must never see a test number): remove "
                "it from base and space; search.final runs it"
            )
        return self

    def _check_workers(self) -> None:
        s = self.search
        n = f"search.workers_per_trial={s.workers_per_trial}"
        if s.mode != "study":
            raise ValueError(f"{n} with search.mode={s.mode}: a population's members train on one process each; "
                             "set search.workers_per_trial=1, or search.mode=study")  # fmt: skip
        if s.gpus_per_trial not in (0, s.workers_per_trial):
            raise ValueError(f"{n} with search.gpus_per_trial={s.gpus_per_trial:g}: each worker trains on one GPU of "
                             f"its own; set search.gpus_per_trial={s.workers_per_trial} (or 0)")  # fmt: skip
        param = self.search_space.params.get("data.batch_size")
        if param is not None and not isinstance(param, ChoiceParam):
            raise ValueError(f"{n} with space.data.batch_size a range: give it as a choice of multiples of "
                             f"{s.workers_per_trial} (each worker trains an equal share of every batch)")  # fmt: skip
        for size in self.search_space.every_value("data.batch_size", self.base.data.batch_size):
            if size % s.workers_per_trial:
                raise ValueError(f"{n} with data.batch_size={size}: each worker trains an equal share of every "
                                 f"batch; give batch sizes that are multiples of {s.workers_per_trial}")  # fmt: skip

    def _check_asha(self) -> None:
        if self.search.multi_objective:
            raise ValueError(
                "search.multi_objective=true with search.scheduler=asha: ASHA stops trials on val_acc alone and "
                "would cut the cheap models the accuracy-vs-MACs front needs; set search.scheduler=none"
            )
        shortest = min(self.search_space.values_of("train.epochs", self.base.train.epochs))
        if self.search.grace_period > shortest:
            raise ValueError(
                f"search.grace_period={self.search.grace_period} exceeds the epochs the shortest trial trains "
                f"({shortest}): lower search.grace_period or raise the epochs"
            )

    @property
    def trials_planned(self) -> int:
        """The search phase's trials: ``search.num_trials``, or a population's members."""
        return self.search.num_trials if self.search.mode == "study" else self.search.population.size

    def describe_trials(self) -> str:
        """What the search trains, in a few words: "6 trials", or "a population of 4 (pbt)"."""
        s = self.search
        return f"{s.num_trials} trials" if s.mode == "study" else f"a population of {s.population.size} ({s.mode})"

    @property
    def max_epochs(self) -> int:
        """The epochs of the longest trial: ASHA's max_t, so a trial the space makes longer is not cut short."""
        return max(self.search_space.values_of("train.epochs", self.base.train.epochs))

    @property
    def search_space(self) -> SearchSpace:
        """The space as the searcher samples it (``search.head_dim`` applied)."""
        return SearchSpace(self.space, self.search.head_dim)

    @property
    def resolved_tracking_uri(self) -> str:
        """``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` here."""
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI

    @property
    def resolved_storage_path(self) -> str:
        """Where Tune keeps results: ``storage_path``, else ``T2T_STORAGE_PATH``, else ``./ray_results``;
        a local path made absolute."""
        path = self.storage_path or os.environ.get("T2T_STORAGE_PATH") or DEFAULT_STORAGE
        return path if "://" in path else str(Path(path).expanduser().resolve())

    @property
    def experiment_path(self) -> str:
        """This search's folder (or URI) under the storage path."""
        return f"{self.resolved_storage_path.rstrip('/')}/{self.name}"

    @property
    def local_experiment_dir(self) -> Path | None:
        """The experiment folder when results are on a local (or mounted) file system; None for s3:// etc."""
        return None if "://" in self.resolved_storage_path else Path(self.experiment_path)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values, every key present (what is saved and resumed)."""
        return self.model_dump(mode="json", exclude_none=False)

    @classmethod
    def load(cls, path: str | Path | None = None, assignments: list[str] = (), **overrides: Any) -> SearchConfig:
        """The YAML at ``path`` (or the embedded default), then ``--set`` assignments, then flag overrides."""
        values = read_yaml(path) if path else {}
        # space keys are dotted paths themselves: `--set space.model.depth={...}` sets space["model.depth"]
        space_sets = [a.removeprefix("space.") for a in assignments if a.startswith("space.")]
        values = apply_assignments(values, [a for a in assignments if not a.startswith("space.")])
        if space_sets:
            if not isinstance(values.get("space", {}), dict):
                raise ConfigError("space must be a mapping of section.key to a value or distribution")
            space = dict(values.get("space", DEFAULT_SPACE))
            space.update(apply_flat(space_sets))
            values["space"] = space
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise ConfigError(describe(e, SearchConfig)) from None


def apply_flat(assignments: list[str]) -> dict[str, Any]:
    """``key=value`` strings to a flat dict (keys kept whole, values parsed as YAML)."""
    out = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set space.SECTION.KEY=VALUE expected, got 'space.{assignment}'")
        out.update({key: apply_assignments({}, [f"v={raw}"])["v"]})
    return out


SMOKE_TEST = [  # --smoke-test: every part of the path, in well under a minute
    "base.model.name=t2t_vit_test",
    "base.train.epochs=2",
    "base.data.batch_size=128",
    "search.num_trials=3",
    "search.grace_period=1",
    "search.reduction_factor=2",
    "search.head_dim=16",
    "search.log_checkpoints=1",
    "search.final.seeds=2",
]
# --smoke-test of a population (search.mode pbt or pb2): 3 epochs, so that members are compared after epochs 1 and 2,
# the bottom half copying the top; all 4 at once on 2 cores (members taking turns cost more than they share)
SMOKE_POPULATION = ["base.train.epochs=3", "search.population.quantile=0.5", "search.cpus_per_trial=0.5"]
SMOKE_SPACE = {
    "model.depth": {"type": "int", "low": 1, "high": 2},
    "model.embed_dim": {"type": "choice", "values": [32, 48]},
    "model.token_dim": {"type": "choice", "values": [16, 32]},
    "model.drop_path_rate": {"type": "float", "low": 0.0, "high": 0.2},
    "optim.lr": {"type": "float", "low": 1.0e-3, "high": 5.0e-3, "log": True},
}
