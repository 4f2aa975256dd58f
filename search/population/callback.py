"""A population member's MLflow run: its epochs as any trial's, plus what population-based training changes.

The schedule of the member's weights (``contract.schedule``) comes with the first result of each trial process and
with every result after it changed. From it, each epoch is logged with the values that trained it as ``hp/KEY``
metrics (the UI charts the schedule) and in the segment it belongs to: after a copy of another member's checkpoint,
the epochs the copy trains again are logged again (``search.tracking.writes.LogEpoch``). Each copy in the weights'
lineage is one tag, ``search.population.copy.SEGMENT``: the epoch, the member copied, and each value that changed
(from the copied member's to the new one).

Tune's scheduler replaces a copying member's config before callbacks see the result that triggered the copy, so the
values come from the schedule the trial process reported, never from ``trial.config``.
"""

from __future__ import annotations

import itertools
import json

from contract import metrics as M
from contract import schedule as S
from contract.tracking import COPY_TAG_PREFIX
from search.tracking.mlflow_callback import MlflowCallback
from search.tracking.tracker import MlflowTracker


def copy_tags(trial_id: str, schedule: S.Schedule) -> dict[str, str]:
    """One tag per copy the member ``trial_id`` made in its weights' lineage, ``search.population.copy.SEGMENT`` ->
    "epoch E: copied trial X; key a -> b, ...": stable across reports, so a tag is never stale."""
    tags = {}
    for previous, segment in itertools.pairwise(schedule):
        if segment["owner"] != trial_id or "from" not in segment:
            continue
        old, new = previous["config"], segment["config"]
        changed = ", ".join(f"{k} {S.value(old, k)} -> {S.value(new, k)}" for k in S.changes(old, new))
        tags[f"{COPY_TAG_PREFIX}{segment['id']}"] = (
            f"epoch {segment['epoch']}: copied trial {segment['from']}; {changed or 'no value changed'}"
        )
    return tags


class PopulationCallback(MlflowCallback):
    """``MlflowCallback`` for a population member (see the module's docstring); ``mutable``: the keys charted."""

    def __init__(self, tracker: MlflowTracker, mutable: tuple[str, ...]) -> None:
        super().__init__(tracker)
        self.mutable = tuple(mutable)
        self._schedules: dict[str, S.Schedule] = {}  # trial id -> its weights' schedule, as last reported

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if isinstance(result.get(M.SCHEDULE), str):
            self._schedules[trial.trial_id] = json.loads(result[M.SCHEDULE])
            self.tracker.set_tags(trial.trial_id, copy_tags(trial.trial_id, self._schedules[trial.trial_id]))
        schedule = self._schedules.get(trial.trial_id)
        if schedule is None or not isinstance(result.get(M.EPOCH), int):  # no schedule yet, or no epoch
            self.log_result(trial, result)
            return
        current = next(s for s in reversed(schedule) if s["epoch"] < result[M.EPOCH])
        values = {f"{M.HP_PREFIX}{k}": S.value(current["config"], k) for k in self.mutable}
        self.log_result(trial, {**result, **values}, segment=current["id"], segment_start=current["epoch"])
