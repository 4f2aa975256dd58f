"""Which MLflow run is which: the search's parent run and one child run per trial, found again by their tags.

Unlike Ray's ``MLflowLoggerCallback`` (a trial -> run map in driver memory), runs are found again by their tags,
so a retried trial, a restored experiment or a restarted driver continues the same runs:

- the parent run carries the tag ``search.id`` (made when the search starts, kept beside Tune's state);
- a child run carries ``mlflow.parentRunId`` and ``trial_id`` (Ray's trial id);
- every epoch is logged with ``step=epoch``, and a step a run already has is skipped (``last_epoch``).

The index is used from the delivery thread (``search.tracking.delivery``) and, for the parent run, by the driver
before any trial starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract import metrics as M
from contract.flat import flatten
from contract.status import RUNNING
from contract.tracking import (
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    PARENT_RUN_TAG,
    ROLE_TAG,
    ROLE_TRIAL,
    SEARCH_ID_TAG,
    SEGMENT_TAG,
    TRIAL_ID_TAG,
    child_runs,
)

PARENT = "<parent>"  # the key of the search's parent run among the trial ids (no Ray trial id looks like it)
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names it and the fix."""


class RunIndex:
    """The runs of one search in one MLflow experiment, through ``client`` (an ``MlflowClient`` or a
    ``search.tracking.store_process.StoreProcess``; default: an ``MlflowClient`` of ``uri`` made on first use)."""

    def __init__(self, uri: str, experiment: str, search_id: str, client=None) -> None:
        self.uri, self.experiment, self.search_id = uri, experiment, search_id
        self._client = client
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id (or PARENT) -> run id
        self._earlier: dict[str, tuple[str, str, bool]] | None = None  # see earlier_runs
        self._unlogged: set[str] = set()  # runs whose parameters are still to be logged (see child_run)
        self._ended: set[str] = set()  # runs this index ended: a start of their trial reopens them
        self._last_step: dict[str, int] = {}  # run id -> last epoch logged
        self._segment: dict[str, str | None] = {}  # run id -> the schedule segment of its last epoch (a member's)

    @property
    def client(self):
        """The MLflow client (or store process) every call goes through."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    @client.setter
    def client(self, client) -> None:
        self._client = client

    def close(self) -> None:
        """End a client that has an end (a store process); a later call makes a plain ``MlflowClient``."""
        if hasattr(self._client, "close"):
            self._client.close()
            self._client = None

    @property
    def experiment_id(self) -> str:
        """The experiment's id, created on first use and tagged a model-training experiment."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            kind = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND_TRAINING}  # a model-training experiment, as MLflow marks one
            if found is None:
                self._experiment_id = self.client.create_experiment(self.experiment, tags=kind)
            else:
                self._experiment_id = found.experiment_id
                if EXPERIMENT_KIND_TAG not in found.tags:
                    self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING)
        return self._experiment_id

    def find_parent(self) -> str | None:
        """The run id tagged with this search's id, or None."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{SEARCH_ID_TAG}` = '{self.search_id}'", max_results=1
        )
        return runs[0].info.run_id if runs else None

    def start_parent(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str], artifacts: Mapping[str, Any]
    ) -> str:
        """The search's parent run: found again by the search id (a resume), else created."""
        run_id = self.find_parent()
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=run_name, tags={SEARCH_ID_TAG: self.search_id, **tags}
            )
            run_id = run.info.run_id
            for chunk in mlflow_params(params):
                self.client.log_batch(run_id, params=chunk)
            for name, content in artifacts.items():
                self.client.log_dict(run_id, content, name)
        self._runs[PARENT] = run_id
        return run_id

    @property
    def parent_id(self) -> str:
        """The search's parent run (``TrackingError`` when there is none)."""
        if PARENT not in self._runs:
            run_id = self.find_parent()
            if run_id is None:
                raise TrackingError(f"no parent run tagged {SEARCH_ID_TAG}={self.search_id}")
            self._runs[PARENT] = run_id
        return self._runs[PARENT]

    def child_run(self, trial_id: str, reopen: bool = False, tags: Mapping | None = None) -> str:
        """The trial's run: cached, found again among the parent's runs (reopened if ``reopen``: the trial starts
        again), or created. Only a start reopens: a later write, such as the baseline tag at a resumed search's end,
        labels a trial that may have ended before this driver started. The parameters of a created run, or of a
        found one that has none, go out with the run's first ``log_batch`` (``search.tracking.writes.StartTrial``):
        cached at once, a run whose next call failed is not created twice when the writes are retried."""
        if trial_id in self._runs:
            run_id = self._runs[trial_id]
            if reopen and run_id in self._ended:  # a retried trial, or one whose end a killed driver left queued
                self.client.update_run(run_id, status="RUNNING")
                self._ended.discard(run_id)
            return run_id
        found = self.earlier_runs().pop(trial_id, None)
        if found:
            run_id, status, has_params = found
            if reopen and status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {ROLE_TAG: ROLE_TRIAL, **(tags or {}), PARENT_RUN_TAG: self.parent_id, TRIAL_ID_TAG: trial_id,
                    M.STATUS: RUNNING}  # fmt: skip
            name = f"{tags[ROLE_TAG]}-{trial_id}"
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            has_params = False
            self._last_step[run_id], self._segment[run_id] = 0, None  # a new run: no need to ask MLflow
        if not has_params:
            self._unlogged.add(run_id)
        self._runs[trial_id] = run_id
        return run_id

    def earlier_runs(self) -> dict[str, tuple[str, str, bool]]:
        """Trial id -> (run id, MLflow status, whether it has parameters) of the parent's child runs that existed
        when this index first looked: read once, page by page, so finding a run costs no query per trial. Only the
        driver creates a search's child runs, so a run made later is one this index made and has cached."""
        if self._earlier is None:
            earlier = {}
            for run in child_runs(self.client, self.experiment_id, self.parent_id):
                if TRIAL_ID_TAG in run.data.tags:
                    found = (run.info.run_id, run.info.status, bool(run.data.params))
                    earlier.setdefault(run.data.tags[TRIAL_ID_TAG], found)
                    self._segment.setdefault(run.info.run_id, run.data.tags.get(SEGMENT_TAG))
            self._earlier = earlier
        return self._earlier

    def run(self, trial_id: str) -> str:
        """The run of a trial, or the parent run for ``PARENT``."""
        return self.parent_id if trial_id == PARENT else self.child_run(trial_id)

    def known(self, trial_id: str) -> str | None:
        """The trial's run id if this index has it already (no call to the store)."""
        return self._runs.get(trial_id)

    def needs_params(self, run_id: str) -> bool:
        """Whether the run's parameters are still to be logged."""
        return run_id in self._unlogged

    def params_logged(self, run_id: str) -> None:
        """The run's parameters are in MLflow."""
        self._unlogged.discard(run_id)

    def run_ended(self, run_id: str) -> None:
        """The run was ended by this index: a later start of its trial reopens it."""
        self._ended.add(run_id)

    def last_epoch(self, run_id: str) -> int:
        """The epoch logged last to the run (0: none), read from MLflow once per run: the highest, or a population
        member's latest (after a copy of an earlier checkpoint, its epochs go back)."""
        if run_id not in self._last_step:
            history = self.client.get_metric_history(run_id, M.EPOCH)
            if self.last_segment(run_id):  # a population member's: by time (drivers' clocks may differ: not else)
                self._last_step[run_id] = max(history, key=lambda m: (m.timestamp, m.step)).step if history else 0
            else:
                self._last_step[run_id] = max((m.step for m in history), default=0)
        return self._last_step[run_id]

    def last_segment(self, run_id: str) -> str | None:
        """The schedule segment of the run's last epoch (``SEGMENT_TAG``; None but for a population member): known
        for the runs this index made or found among the parent's."""
        if run_id not in self._segment:
            parent = run_id == self._runs.get(PARENT)
            self._segment[run_id] = None if parent else self.client.get_run(run_id).data.tags.get(SEGMENT_TAG)
        return self._segment[run_id]

    def logged_epoch(self, run_id: str, step: int, segment: str | None = None) -> None:
        """The run's last logged epoch is now ``step``, of ``segment``."""
        self._last_step[run_id], self._segment[run_id] = step, segment


def mlflow_params(params: Mapping[str, Any]) -> list[list]:
    """A config's parameters as MLflow ``Param`` lists of at most ``PARAMS_PER_BATCH`` each: flat keys, values
    cut to MLflow's 6,000 characters."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in flatten(dict(params)).items()]
    return [items[i : i + PARAMS_PER_BATCH] for i in range(0, len(items), PARAMS_PER_BATCH)]
