"""The writes a search makes to MLflow, as small typed operations that the tracker applies or keeps in order.

Each operation names the trial it is about (``PARENT`` for the search's parent run) and applies itself to a
``search.tracker.MlflowTracker``; a list of them is what the tracker buffers while the store is away and saves
to ``mlflow_pending.json`` at the end if it is still away.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from contract import metrics as M
from contract.status import RUN_STATUS

if TYPE_CHECKING:
    from search.tracker import MlflowTracker

PARENT = "<parent>"  # the key of the search's parent run among the trial ids (no Ray trial id looks like it)
# Numbers of an epoch's result that become the run's metrics (step = epoch).
EPOCH_METRICS = (
    M.EPOCH,
    M.TRAIN_LOSS,
    M.VAL_LOSS,
    M.VAL_ACC,
    M.VAL_ACC5,
    M.BEST_VAL_ACC,
    M.LR,
    M.EPOCH_TIME_S,
    M.IMAGES_PER_S,
    M.TEST_LOSS,  # a final-phase run's, at its last epoch
    M.TEST_ACC,
    M.TEST_ACC5,
)
SIZE_METRICS = (M.PARAMS, M.MACS)  # logged once, at step 0, with a run's first epoch


def _now_ms() -> int:
    return int(time.time() * 1000)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Write:
    trial_id: str
    kind: ClassVar[str]

    def apply(self, tracker: MlflowTracker) -> None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass
class StartTrial(Write):
    """Find the trial's run again (reopened: it runs again) or create it with its parameters and tags."""

    params: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "start"

    def apply(self, tracker: MlflowTracker) -> None:
        tracker.child_run(self.trial_id, self.params, reopen=True, tags=self.tags)


@dataclass
class LogEpoch(Write):
    """One epoch's numbers at ``step=epoch``, with ``tags`` in the same call; an epoch the run already has is
    skipped (a repeated epoch), its tags still set."""

    row: dict[str, float]
    timestamp: int = field(default_factory=_now_ms)
    tags: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "epoch"

    def apply(self, tracker: MlflowTracker) -> None:
        from mlflow.entities import Metric

        run_id = tracker.child_run(self.trial_id)
        step, last = int(self.row[M.EPOCH]), tracker.last_epoch(run_id)
        values = []
        if step > last:
            values = [Metric(k, float(self.row[k]), self.timestamp, step) for k in EPOCH_METRICS if k in self.row]
        if values and last == 0:
            values += [Metric(k, float(self.row[k]), self.timestamp, 0) for k in SIZE_METRICS if k in self.row]
        if values or self.tags:
            tracker.client.log_batch(run_id, metrics=values, tags=run_tags(self.tags))
        if values:
            tracker.logged_epoch(run_id, step)


@dataclass
class EndRun(Write):
    """The run's final ``status`` tag, its ``reason`` if any, and MLflow's run status for that end."""

    status: str
    reason: str | None = None
    kind: ClassVar[str] = "end"

    def apply(self, tracker: MlflowTracker) -> None:
        run_id = tracker.run(self.trial_id)
        tags = {M.STATUS: self.status, **({M.REASON: str(self.reason)[:5000]} if self.reason else {})}
        tracker.client.log_batch(run_id, tags=run_tags(tags))
        tracker.client.set_terminated(run_id, RUN_STATUS.get(self.status, "FINISHED"))


@dataclass
class LogMetrics(Write):
    """Numbers without an epoch (step 0), e.g. the parent run's summary."""

    values: dict[str, float]
    timestamp: int = field(default_factory=_now_ms)
    kind: ClassVar[str] = "metrics"

    def apply(self, tracker: MlflowTracker) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(k, float(v), self.timestamp, 0) for k, v in self.values.items()]
        tracker.client.log_batch(tracker.run(self.trial_id), metrics=metrics)


@dataclass
class SetTags(Write):
    tags: dict[str, str]
    kind: ClassVar[str] = "tags"

    def apply(self, tracker: MlflowTracker) -> None:
        tracker.client.log_batch(tracker.run(self.trial_id), tags=run_tags(self.tags))


def run_tags(tags: dict[str, Any]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(key, str(value)) for key, value in tags.items()]


_KINDS = {cls.kind: cls for cls in (StartTrial, LogEpoch, EndRun, LogMetrics, SetTags)}


def from_json(values: dict[str, Any]) -> Write:
    """A write saved with ``to_json`` (``mlflow_pending.json``)."""
    values = dict(values)
    return _KINDS[values.pop("kind")](**values)
