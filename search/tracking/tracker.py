"""MLflow runs of a search: one parent per search, one child per trial, that never get lost or duplicated.

Unlike Ray's ``MLflowLoggerCallback`` (a trial -> run map in driver memory), runs are found again by their tags,
so a retried trial, a restored experiment or a restarted driver continues the same runs:

- the parent run carries the tag ``search.id`` (made when the search starts, kept beside Tune's state);
- a child run carries ``mlflow.parentRunId`` and ``trial_id`` (Ray's trial id);
- every epoch is logged with ``step=epoch`` in one ``log_batch`` call, and a step already logged is skipped.

Writes (``search.tracking.writes``) are queued and delivered in order by one background thread, so Tune's event loop
never waits for MLflow; what queued up while the store was busy goes out with one ``log_batch`` per run. While the
store is away the thread retries with backoff (one warning per outage). An opened tracker's client runs in a
process of its own (``search.tracking.store_process``), so the store's work never holds the driver's GIL. What is queued
and not yet delivered is also kept in a local file (``search.tracking.pending``), so that what a search ends with
undelivered, or a killed driver left, is delivered by the next ``--resume``.

A tracker is shared: the driver registers it (``open``), and a copy that Tune unpickles in the same process (the
callback restored from ``tuner.pkl`` on ``--resume``) is that same object, so every ending is decided on one state.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from contract import metrics as M
from contract.redact import redact
from contract.status import RUNNING
from contract.tracking import (
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    PARENT_RUN_TAG,
    ROLE_TAG,
    ROLE_TRIAL,
    SEARCH_ID_TAG,
    TRIAL_ID_TAG,
    child_runs,
)
from search.tracking.pending import PendingWrites
from search.tracking.store_process import StoreProcess
from search.tracking.writes import (
    PARENT,
    EndRun,
    LogEpoch,
    LogMetrics,
    SetTags,
    StartTrial,
    Write,
    deliver,
    is_number,
    mlflow_params,
)

log = logging.getLogger(__name__)

_BATCH = 32  # writes delivered together at most (writes.deliver): far below MLflow's 1,000 numbers a call
_BACKOFF_S = (1.0, 30.0)  # the first and the longest wait between retries while the store is away


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names it and the fix."""


class MlflowTracker:
    """The runs of one search in one MLflow experiment. Pickles as a reference to the process's open tracker."""

    _open_trackers: ClassVar[dict[str, MlflowTracker]] = {}  # search id -> the tracker the driver opened

    def __init__(self, uri: str, experiment: str, search_id: str, pending_file: str | None = None) -> None:
        self.uri, self.experiment, self.search_id = uri, experiment, search_id
        self.pending_file = pending_file
        self._pending = PendingWrites(pending_file)  # the queue, on disk
        self._client = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id (or PARENT) -> run id
        self._earlier: dict[str, tuple[str, str, bool]] | None = None  # see earlier_runs
        self._unlogged: set[str] = set()  # runs whose parameters are still to be logged (see child_run)
        self._ended: set[str] = set()  # runs this tracker ended: a start of their trial reopens them
        self._last_step: dict[str, int] = {}  # run id -> last epoch logged
        self._queue: deque[Write] = deque()
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._busy = False  # the writer is applying the queue's first writes
        self._stopping = False
        self._outage_since: float | None = None
        self._open: set[str] = set()  # trials started and not yet ended in this process
        self._reported: dict[str, int] = {}  # trial id -> the last epoch it reported to this process

    def __reduce__(self):
        return _attach, (self.uri, self.experiment, self.search_id, self.pending_file)

    # --- life cycle ---

    def open(self, store: StoreProcess | None = None) -> MlflowTracker:
        """Start the store's process (or take ``store``, one for this URI started earlier) and the writer, queue
        the writes an earlier driver left undelivered, and register as the live one."""
        self._client = store or StoreProcess(self.uri)
        left = self._pending.load()
        if left:
            log.info("delivering %d MLflow writes an earlier run of this search left undelivered", len(left))
        with self._wake:
            self._queue.extend(left)
            self._pending.start(list(self._queue))
        self._writer = threading.Thread(target=self._deliver, name="mlflow-writer", daemon=True)
        self._writer.start()
        MlflowTracker._open_trackers[self.search_id] = self
        return self

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued write is delivered (``True``) or ``timeout_s`` passed (``False``)."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            return not (self._queue or self._busy)

    def close(self, timeout_s: float = 60.0) -> None:
        """Deliver what is queued for up to ``timeout_s``; leave what is left in ``pending_file``."""
        self.drain(timeout_s)
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=15)
        MlflowTracker._open_trackers.pop(self.search_id, None)
        if isinstance(self._client, StoreProcess):  # what is called after this runs in this process
            self._client.close()
            self._client = None
        with self._wake:  # a writer stuck in a call to the store still holds its writes in the queue
            left = len(self._queue)
            kept = self._pending.close(list(self._queue))
        if left:
            where = f"they are saved in {self.pending_file} and delivered by --resume" if kept else "they are lost"
            log.error("%d MLflow writes could not be delivered to %s; %s", left, redact(self.uri), where)

    def pending(self) -> int:
        return len(self._queue) + int(self._busy)

    # --- the writer thread ---

    def _deliver(self) -> None:
        delay = _BACKOFF_S[0]
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if not self._queue:
                    return
                writes, self._busy = list(itertools.islice(self._queue, _BATCH)), True
            try:
                deliver(writes, self)
            except Exception as e:  # the store is away (or refuses): keep the write, retry after a pause
                self._outage(e)
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
                    if self._stopping:
                        return
                    self._wake.wait(delay)
                delay = min(2 * delay, _BACKOFF_S[1])
                continue
            delay = _BACKOFF_S[0]
            with self._wake:
                for _ in writes:
                    self._queue.popleft()
                self._pending.delivered(len(writes), len(self._queue))
                self._busy = False
                self._wake.notify_all()
            self._recovered()

    def _outage(self, error: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "MLflow at %s is not answering (%s: %s); buffering, retrying in the background",
                redact(self.uri), type(error).__name__, redact(str(error).splitlines()[0][:200]) if str(error) else "",
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._outage_since is not None and not self._queue:
            log.warning(
                "MLflow at %s is back after %.0f s; buffered writes delivered",
                redact(self.uri), time.monotonic() - self._outage_since,
            )  # fmt: skip
            self._outage_since = None

    def _submit(self, write: Write) -> None:
        if self._writer is None:  # not opened (a tool or a test using the tracker directly): open it now
            self.open()
        with self._wake:
            self._queue.append(write)
            self._pending.append(write)
            self._wake.notify_all()

    # --- the client, the experiment, finding or creating runs (called from the writer thread) ---

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
            kind = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND_TRAINING}  # a model-training experiment, as MLflow marks one
            if found is None:
                self._experiment_id = self.client.create_experiment(self.experiment, tags=kind)
            else:
                self._experiment_id = found.experiment_id
                if EXPERIMENT_KIND_TAG not in found.tags:
                    self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING)
        return self._experiment_id

    def find_parent(self) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{SEARCH_ID_TAG}` = '{self.search_id}'", max_results=1
        )
        return runs[0].info.run_id if runs else None

    def start_parent(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str], artifacts: Mapping[str, Any]
    ) -> str:
        """The search's parent run: found again by the search id (a resume), else created. Synchronous: a store
        that cannot take the parent run is an error before any trial starts."""
        run_id = self.find_parent()
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=run_name, tags={SEARCH_ID_TAG: self.search_id, **tags}
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
            self._last_step[run_id] = 0  # a new run has no epoch: no need to ask MLflow
        if not has_params:
            self._unlogged.add(run_id)
        self._runs[trial_id] = run_id
        return run_id

    def needs_params(self, run_id: str) -> bool:
        return run_id in self._unlogged

    def params_logged(self, run_id: str) -> None:
        self._unlogged.discard(run_id)

    def run_ended(self, run_id: str) -> None:
        self._ended.add(run_id)

    def earlier_runs(self) -> dict[str, tuple[str, str, bool]]:
        """Trial id -> (run id, MLflow status, whether it has parameters) of the parent's child runs that existed
        when this tracker first looked: read once, page by page, so finding a run costs no query per trial. Only the
        driver creates a search's child runs, so a run made later is one this tracker made and has cached."""
        if self._earlier is None:
            earlier = {}
            for run in child_runs(self.client, self.experiment_id, self.parent_id):
                if TRIAL_ID_TAG in run.data.tags:
                    found = (run.info.run_id, run.info.status, bool(run.data.params))
                    earlier.setdefault(run.data.tags[TRIAL_ID_TAG], found)
            self._earlier = earlier
        return self._earlier

    def run(self, trial_id: str) -> str:
        """The run of a trial, or the parent run for ``PARENT``."""
        return self.parent_id if trial_id == PARENT else self.child_run(trial_id)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        for chunk in mlflow_params(params):
            self.client.log_batch(run_id, params=chunk)

    def last_epoch(self, run_id: str) -> int:
        """The last epoch logged to the run (0: none), read from MLflow once per run."""
        if run_id not in self._last_step:
            history = self.client.get_metric_history(run_id, M.EPOCH)
            self._last_step[run_id] = max((m.step for m in history), default=0)
        return self._last_step[run_id]

    def logged_epoch(self, run_id: str, step: int) -> None:
        self._last_step[run_id] = step

    # --- what the search calls: each returns at once ---

    def trial_started(self, trial_id: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        self._open.add(trial_id)
        self._submit(StartTrial(trial_id, dict(params), dict(tags or {})))

    def epoch(self, trial_id: str, row: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        if is_number(row.get(M.EPOCH)):
            self._reported[trial_id] = int(row[M.EPOCH])
        self._submit(LogEpoch(trial_id, {k: v for k, v in row.items() if is_number(v)}, tags=dict(tags or {})))

    def trial_ended(self, trial_id: str, status: str, reason: str | None = None) -> None:
        self._open.discard(trial_id)
        self._submit(EndRun(trial_id, status, reason))

    def open_trials(self) -> list[str]:
        return sorted(self._open)

    def reported(self, trial_id: str) -> int:
        """The last epoch the trial reported while this driver ran (0: none)."""
        return self._reported.get(trial_id, 0)

    def log_metrics(self, trial_id: str, values: Mapping[str, float]) -> None:
        self._submit(LogMetrics(trial_id, dict(values)))

    def set_tags(self, trial_id: str, tags: Mapping[str, Any]) -> None:
        self._submit(SetTags(trial_id, dict(tags)))

    def run_id(self, trial_id: str) -> str | None:
        """The trial's run id once its start was delivered (``drain`` first to be sure)."""
        return self._runs.get(trial_id)


def _attach(uri: str, experiment: str, search_id: str, pending_file: str | None) -> MlflowTracker:
    """Unpickling a tracker: the driver's open one for the same search if this is its process, else a new one."""
    return MlflowTracker._open_trackers.get(search_id) or MlflowTracker(uri, experiment, search_id, pending_file)
