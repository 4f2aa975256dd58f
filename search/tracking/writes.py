"""The writes a search makes to MLflow, as small typed operations that the tracker applies or keeps in order.

Each operation names the trial it is about (``PARENT`` for the search's parent run) and applies itself to a
``search.tracking.run_index.RunIndex``; a list of them is what the tracker buffers while the store is away, kept on
disk as it queues (``search.tracking.pending``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from contract import metrics as M
from contract.status import RUN_STATUS
from contract.tracking import DATASET_CONTEXT_TAG, SEGMENT_TAG, SYSTEM_METRICS_PREFIX
from search.tracking.run_index import RunIndex, mlflow_params

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


def epoch_metric(name: str) -> bool:
    """Whether a result's number is one of a run's per-epoch metrics: the training's, the telemetry its process
    sent (``system/*``, trainables.telemetry), or a population member's values (``hp/*``, search.population)."""
    return name in EPOCH_METRICS or name.startswith((SYSTEM_METRICS_PREFIX, M.HP_PREFIX))


def _now_ms() -> int:
    return int(time.time() * 1000)


def is_number(value: Any) -> bool:
    """Whether a result value is a metric (an int or float; not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Write:
    """One write to one trial's run (``trial_id``; ``PARENT``: the parent run)."""

    trial_id: str
    kind: ClassVar[str]

    def apply(self, index: RunIndex) -> None:
        """Deliver this write alone."""
        deliver([self], index)

    def to_json(self) -> dict[str, Any]:
        """The write as a line of the pending file (``from_json`` reads it back)."""
        return {"kind": self.kind, **asdict(self)}


@dataclass
class StartTrial(Write):
    """Find the trial's run again (reopened: it runs again) or create it with its tags; a created run's parameters
    go out with its first ``log_batch``, with the epochs that queued up behind the start."""

    params: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "start"

    def begin(self, index: RunIndex) -> None:
        """Find the trial's run again (reopened) or create it."""
        index.child_run(self.trial_id, reopen=True, tags=self.tags)

    def add_to(self, batch: RunBatch) -> None:
        """Its parameters, where the run has none yet."""
        if batch.needs_params:
            batch.params = self.params


@dataclass
class LogEpoch(Write):
    """One epoch's numbers at ``step=epoch``, with ``tags`` in the same call; an epoch the run already has is
    skipped (a repeated epoch), its tags still set. A population member's epochs name the ``segment`` of the weights'
    schedule they belong to (contract.schedule): in a segment the run has not logged yet, the epochs from
    ``segment_start`` on are logged again (the member copied another one's checkpoint)."""

    row: dict[str, float]
    timestamp: int = field(default_factory=_now_ms)
    tags: dict[str, str] = field(default_factory=dict)
    segment: str | None = None
    segment_start: int = 0
    kind: ClassVar[str] = "epoch"

    def add_to(self, batch: RunBatch) -> None:
        """Its numbers at step = epoch, unless the run has that epoch (size metrics at step 0)."""
        from mlflow.entities import Metric

        if self.segment and self.segment != batch.segment:
            batch.step, batch.segment = min(batch.step, self.segment_start), self.segment
            batch.tags[SEGMENT_TAG] = self.segment
        step, row, at = int(self.row[M.EPOCH]), self.row, self.timestamp
        if step > batch.step:
            batch.metrics += [Metric(k, float(v), at, step) for k, v in row.items() if epoch_metric(k)]
            if batch.step == 0:
                batch.metrics += [Metric(k, float(row[k]), at, 0) for k in SIZE_METRICS if k in row]
            batch.step = step
        batch.tags.update(self.tags)


@dataclass
class EndRun(Write):
    """The run's final ``status`` tag, its ``reason`` if any, and MLflow's run status for that end."""

    status: str
    reason: str | None = None
    kind: ClassVar[str] = "end"

    def add_to(self, batch: RunBatch) -> None:
        """The ``status`` and reason tags, and the run's end."""
        batch.tags.update({M.STATUS: self.status, **({M.REASON: str(self.reason)[:5000]} if self.reason else {})})
        batch.ended = RUN_STATUS.get(self.status, "FINISHED")


@dataclass
class LogMetrics(Write):
    """Numbers without an epoch (step 0), e.g. the parent run's summary."""

    values: dict[str, float]
    timestamp: int = field(default_factory=_now_ms)
    kind: ClassVar[str] = "metrics"

    def begin(self, index: RunIndex) -> None:
        """Its numbers at step 0, in a call of its own."""
        from mlflow.entities import Metric

        metrics = [Metric(k, float(v), self.timestamp, 0) for k, v in self.values.items()]
        index.client.log_batch(index.run(self.trial_id), metrics=metrics)


@dataclass
class LogInputs(Write):
    """The run's data set inputs: one per split, as ``trainables.dataset_record.SplitRecord`` fields (logging the
    same again adds nothing: MLflow keeps one input per data set and run)."""

    records: list[dict[str, Any]]
    kind: ClassVar[str] = "inputs"

    def begin(self, index: RunIndex) -> None:
        """The inputs, in a call of their own."""
        index.client.log_inputs(index.run(self.trial_id), datasets=dataset_inputs(self.records))


def dataset_inputs(records: list[dict[str, Any]]) -> list:
    """MLflow ``DatasetInput``s of split records: the UI's Dataset column, each split told apart by its context tag."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for r in records:
        profile = {"num_rows": r["rows"], "num_classes": r["num_classes"], "image_shape": list(r["image_shape"])}
        dataset = Dataset(
            name=r["name"], digest=r["digest"], source_type="local", source=json.dumps({"source": r["source"]}),
            profile=json.dumps(profile),
        )  # fmt: skip
        inputs.append(DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT_TAG, r["split"])]))
    return inputs


@dataclass
class SetTags(Write):
    """Tags on a run."""

    tags: dict[str, str]
    kind: ClassVar[str] = "tags"

    def add_to(self, batch: RunBatch) -> None:
        """Its tags."""
        batch.tags.update(self.tags)


@dataclass
class RunBatch:
    """What a run of writes adds to one MLflow run: sent as one ``log_batch`` (and the run's end, if any).
    ``step`` is the run's last epoch logged, with those in ``metrics``; ``params`` those of a run that has none."""

    run_id: str
    step: int
    segment: str | None = None  # the schedule segment of the run's last epoch (a population member's)
    needs_params: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    ended: str | None = None  # MLflow's run status for its end

    @classmethod
    def of(cls, index: RunIndex, trial_id: str) -> RunBatch:
        """An empty batch for the trial's run, knowing its last epoch and whether it has parameters."""
        run_id = index.run(trial_id)
        return cls(run_id, index.last_epoch(run_id), index.last_segment(run_id), index.needs_params(run_id))

    def send(self, index: RunIndex) -> None:
        """One ``log_batch`` (parameters past MLflow's limit per call in more), then the run's end."""
        first, *rest = mlflow_params(self.params) or [[]]
        if self.metrics or self.tags or first:
            index.client.log_batch(self.run_id, metrics=self.metrics, params=first, tags=run_tags(self.tags))
        for chunk in rest:
            index.client.log_batch(self.run_id, params=chunk)
        if first:
            index.params_logged(self.run_id)
        if self.ended:
            index.client.set_terminated(self.run_id, self.ended)
            index.run_ended(self.run_id)
        index.logged_epoch(self.run_id, self.step, self.segment)


BATCHED = (StartTrial, LogEpoch, EndRun, SetTags)  # the writes whose MLflow calls merge per run
# The writes with a call of their own, made after what their run gathered.
IN_ORDER = (StartTrial, LogMetrics, LogInputs)


def deliver(writes: list[Write], index: RunIndex) -> None:
    """Apply ``writes`` in order, with one ``log_batch`` per run for the parameters, epochs, tags and ends among
    them: a trial's writes that queued up while the store was busy cost one call, not one each. A write with a call
    of its own (a run's start, step-0 numbers) first sends what its run has gathered, so each run sees its writes
    in order. Applying the same writes again changes nothing: an epoch a run has is skipped, parameters, tags and
    ends are set again."""
    batches: dict[str, RunBatch] = {}  # trial id -> what its run has gathered
    for write in writes:
        if isinstance(write, IN_ORDER):
            if write.trial_id in batches:
                batches.pop(write.trial_id).send(index)
            write.begin(index)
        if isinstance(write, BATCHED):
            if write.trial_id not in batches:
                batches[write.trial_id] = RunBatch.of(index, write.trial_id)
            write.add_to(batches[write.trial_id])
    for batch in batches.values():
        batch.send(index)


def run_tags(tags: dict[str, Any]) -> list:
    """MLflow ``RunTag`` entities, values as strings."""
    from mlflow.entities import RunTag

    return [RunTag(key, str(value)) for key, value in tags.items()]


_KINDS = {cls.kind: cls for cls in (StartTrial, LogEpoch, EndRun, LogMetrics, LogInputs, SetTags)}


def from_json(values: dict[str, Any]) -> Write:
    """A write saved with ``to_json`` (``search.tracking.pending``)."""
    values = dict(values)
    return _KINDS[values.pop("kind")](**values)
