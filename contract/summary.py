"""The summary of a finished search: written by ``search`` (``search_summary.json``, the parent run's metrics and
tags), read by ``analysis``. Field names are the JSON keys; ``trials_<status>`` hold the counts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from contract.files import SEARCH_SUMMARY
from contract.final import FinalResult
from contract.metrics import BEST_VAL_ACC, MACS, PARAMS
from contract.status import COMPLETED, DIVERGED, ENDED, FAILED

_COUNT = "trials_"  # prefix of a count's key: trials_completed, trials_pruned, ...
GAIN = "gain_over_baseline"  # the parent run's metric: best_val_acc - baseline_val_acc (a completed baseline's)


@dataclass
class SearchSummary:
    """A search's end in numbers (``search_summary.json``, the parent run's metrics and tags)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDED, 0))  # status -> trials
    wall_time_s: float = 0.0
    best_trial_id: str | None = None  # contract.ranking's best trial
    best_status: str | None = None
    best_val_acc: float | None = None
    best_params: int | None = None
    best_macs: int | None = None
    best_run_id: str | None = None
    best_config: dict[str, Any] | None = None  # its training config
    best_path: str | None = None  # its Tune trial folder
    best_config_file: str | None = None  # best_config.yaml, where the results folder is local
    schedule_file: str | None = None  # schedule.json, where the recommendation is a population member's schedule
    baseline_trial_id: str | None = None  # the trial that trained the base config's values (search.baseline)
    baseline_status: str | None = None
    baseline_val_acc: float | None = None
    report: str | None = None  # report.html
    registered_model: str | None = None  # the Model Registry's model the best trial is a version of
    registered_version: str | None = None  # that version (alias contract.tracking.CHAMPION_ALIAS)
    final: dict[str, Any] | None = None  # the final phase (contract.final.FinalResult.to_dict()), if it ran
    final_split: str | None = None  # the split the final numbers are from: test, or val where there is no test split

    @property
    def final_result(self) -> FinalResult | None:
        """The final phase's result, or None without one."""
        return FinalResult.from_dict(self.final) if self.final else None

    @property
    def finished(self) -> int:
        """Trials that ended without diverging or failing."""
        return sum(n for status, n in self.counts.items() if status not in (DIVERGED, FAILED))

    def to_dict(self) -> dict[str, Any]:
        """Plain values, the counts as ``trials_<status>`` keys."""
        values = asdict(self)
        counts = values.pop("counts")
        return {**{f"{_COUNT}{k}": v for k, v in counts.items()}, **values}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchSummary:
        """The summary ``to_dict`` wrote (unknown keys ignored)."""
        known = {f.name for f in fields(cls)} - {"counts"}
        counts = {k.removeprefix(_COUNT): v for k, v in values.items() if k.startswith(_COUNT)}
        return cls(counts=counts, **{k: v for k, v in values.items() if k in known})

    def metrics(self) -> dict[str, float]:
        """What the parent run logs as metrics: the counts, the leaderboard's top line and the gain over the
        baseline, so runs of several searches compare side by side in MLflow."""
        out = {f"{_COUNT}{k}": float(v) for k, v in self.counts.items()}
        out["wall_time_s"] = self.wall_time_s
        best = {BEST_VAL_ACC: self.best_val_acc, PARAMS: self.best_params, MACS: self.best_macs}
        out |= {k: float(v) for k, v in best.items() if v is not None}
        if self.baseline_val_acc is not None:
            out["baseline_val_acc"] = self.baseline_val_acc
            if self.best_val_acc is not None and self.baseline_status == COMPLETED:  # a pruned one stopped early
                out[GAIN] = self.best_val_acc - self.baseline_val_acc
        final = self.final_result
        return out | (final.metrics() if final else {})

    def tags(self) -> dict[str, str]:
        """What the parent run is tagged with."""
        keys = ("best_trial_id", "best_run_id", "baseline_trial_id", "registered_model", "registered_version")
        tags = {k: str(getattr(self, k)) for k in keys if getattr(self, k) is not None}
        final = self.final_result
        return tags | (final.tags() if final is not None else {})

    def write(self, folder: Path) -> Path:
        """Write ``search_summary.json`` into ``folder``; its path."""
        path = Path(folder) / SEARCH_SUMMARY
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str))
        return path

    @classmethod
    def read(cls, folder: Path) -> SearchSummary | None:
        """The summary in a results folder; None while the search has not ended."""
        path = Path(folder) / SEARCH_SUMMARY
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(errors="replace")))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not JSON ({e.msg} at line {e.lineno}): a damaged results folder") from None
