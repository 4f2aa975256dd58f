"""MLflow runs of a search: one parent per search, one child per trial, that never get lost or duplicated.

Unlike Ray's ``MLflowLoggerCallback`` (a trial -> run map in driver memory), runs are found again by their tags,
so a retried trial, a restored experiment or a restarted driver continues the same runs:

- the parent run carries the tag ``t2t.experiment_path`` (the Tune experiment folder);
- a child run carries ``mlflow.parentRunId`` and ``trial_id`` (Ray's trial id);
- every epoch is logged with ``step=epoch`` in one ``log_batch`` call, and a step already logged is skipped.

Writes (``search.writes``) that fail (the server is away) are kept in order and retried with every later write,
with one warning per outage; what is still undelivered at the end is saved to a JSON file beside the results.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract import metrics as M
from contract.flat import flatten
from contract.status import RUNNING
from contract.tracking import (
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    EXPERIMENT_PATH_TAG,
    PARENT_RUN_TAG,
    TRIAL_ID_TAG,
)
from search.writes import PARENT, EndRun, LogEpoch, LogMetrics, SetTags, StartTrial, Write, is_number

log = logging.getLogger(__name__)

_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names it and the fix."""


class MlflowTracker:
    """The runs of one search in one MLflow experiment. Safe to pickle: the client is made on first use."""

    def __init__(self, uri: str, experiment: str, experiment_path: str, pending_file: str | None = None) -> None:
        self.uri, self.experiment, self.experiment_path = uri, experiment, experiment_path
        self.pending_file = pending_file
        self._reset()

    def _reset(self) -> None:
        self._client = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id (or PARENT) -> run id
        self._last_step: dict[str, int] = {}  # run id -> last epoch logged
        self._pending: list[Write] = []
        self._deferred = False  # queued writes that no flush has tried yet
        self._outage_since: float | None = None
        self._open: set[str] = set()  # trials started and not yet ended in this process

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("uri", "experiment", "experiment_path", "pending_file")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            kind = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND_TRAINING}  # `mlflow ui` then opens on the runs
            if found is None:
                self._experiment_id = self.client.create_experiment(self.experiment, tags=kind)
            else:
                self._experiment_id = found.experiment_id
                if EXPERIMENT_KIND_TAG not in found.tags:
                    self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING)
        return self._experiment_id

    # --- finding or creating runs ---

    def find_parent(self) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{EXPERIMENT_PATH_TAG}` = '{self.experiment_path}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def start_parent(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str], artifacts: Mapping[str, Any]
    ) -> str:
        """The search's parent run: found again by the experiment path (a resume), else created."""
        run_id = self.find_parent()
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=run_name, tags={EXPERIMENT_PATH_TAG: self.experiment_path, **tags}
            )
            run_id = run.info.run_id
            self._log_params(run_id, params)
            for name, content in artifacts.items():
                self.client.log_dict(run_id, content, name)
        self._runs[PARENT] = run_id
        return run_id

    @property
    def parent_id(self) -> str:
        if PARENT not in self._runs:
            run_id = self.find_parent()
            if run_id is None:
                raise TrackingError(f"no parent run tagged {EXPERIMENT_PATH_TAG}={self.experiment_path}")
            self._runs[PARENT] = run_id
        return self._runs[PARENT]

    def child_run(self, trial_id: str, params: Mapping[str, Any] | None = None, reopen: bool = False) -> str:
        """The trial's run: cached, found again by its tags (reopened if ``reopen``: the trial starts again), or
        created. Only a start reopens: a later write, such as the baseline tag at a resumed search's end, labels a
        trial that may have ended before this driver started."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_RUN_TAG}` = '{self.parent_id}' and tags.`{TRIAL_ID_TAG}` = '{trial_id}'",
            max_results=2,
        )
        if runs:
            run_id = runs[0].info.run_id
            if reopen and runs[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {PARENT_RUN_TAG: self.parent_id, TRIAL_ID_TAG: trial_id, M.STATUS: RUNNING}
            run_id = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags=tags).info.run_id
            self._log_params(run_id, params or {})
        self._runs[trial_id] = run_id
        return run_id

    def run(self, trial_id: str) -> str:
        """The run of a trial, or the parent run for ``PARENT``."""
        return self.parent_id if trial_id == PARENT else self.child_run(trial_id)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[i : i + _PARAMS_PER_BATCH])

    def last_epoch(self, run_id: str) -> int:
        """The last epoch logged to the run (0: none), read from MLflow once per run."""
        if run_id not in self._last_step:
            history = self.client.get_metric_history(run_id, M.EPOCH)
            self._last_step[run_id] = max((m.step for m in history), default=0)
        return self._last_step[run_id]

    def logged_epoch(self, run_id: str, step: int) -> None:
        self._last_step[run_id] = step

    # --- writes: applied now, or kept in order while the store is away ---

    def _submit(self, write: Write, defer: bool = False) -> None:
        self._pending.append(write)
        if defer:
            self._deferred = True
        else:
            self.flush()

    def flush_deferred(self) -> None:
        """Try the writes queued with ``defer=True`` (once per batch of them, as ``_submit`` would have)."""
        if self._deferred:
            self._deferred = False
            self.flush()

    def flush(self) -> bool:
        """Apply the pending writes in order; ``True`` when none is left. Never raises."""
        while self._pending:
            try:
                self._pending[0].apply(self)
            except Exception as e:
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "MLflow at %s is not answering (%s: %s); buffering, will retry with the next write",
                        self.uri,
                        type(e).__name__,
                        str(e).splitlines()[0][:200],
                    )
                return False
            self._pending.pop(0)
        if self._outage_since is not None:
            log.warning(
                "MLflow at %s is back after %.0f s; buffered writes delivered",
                self.uri,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        return True

    def close(self, timeout_s: float = 60.0) -> None:
        """Deliver what is pending, retrying for up to ``timeout_s``; save what is left to ``pending_file``."""
        deadline = time.monotonic() + timeout_s
        delay = 1.0
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 10.0)
        if self._pending and self.pending_file:
            writes = [w.to_json() for w in self._pending]
            Path(self.pending_file).write_text(json.dumps(writes, default=str, indent=1))
            log.error(
                "%d MLflow writes could not be delivered to %s; they are saved in %s",
                len(self._pending),
                self.uri,
                self.pending_file,
            )

    # --- what the search calls ---

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> None:
        self._open.add(trial_id)
        self._submit(StartTrial(trial_id, dict(params)))

    def epoch(self, trial_id: str, row: Mapping[str, Any], defer: bool = False) -> None:
        """Log one epoch's numbers; ``defer``: only queue it, for ``flush_deferred`` or the next write."""
        self._submit(LogEpoch(trial_id, {k: v for k, v in row.items() if is_number(v)}), defer)

    def trial_ended(self, trial_id: str, status: str, reason: str | None = None) -> None:
        self._open.discard(trial_id)
        self._submit(EndRun(trial_id, status, reason))

    def open_trials(self) -> list[str]:
        return sorted(self._open)

    def log_metrics(self, trial_id: str, values: Mapping[str, float]) -> None:
        self._submit(LogMetrics(trial_id, dict(values)))

    def set_tags(self, trial_id: str, tags: Mapping[str, Any], defer: bool = False) -> None:
        self._submit(SetTags(trial_id, dict(tags)), defer)

    def run_id(self, trial_id: str) -> str | None:
        return self._runs.get(trial_id)
