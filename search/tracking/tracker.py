"""MLflow runs of a search: one parent per search, one child per trial, that never get lost or duplicated.

``MlflowTracker`` is what the driver and the Tune callback call; each call returns at once. It holds three parts:
the run index (``search.tracking.run_index``: which run is which, found again by tags), the delivery
(``search.tracking.delivery``: writes queued, kept on disk and delivered in order by one thread, through a store
process of its own, ``search.tracking.store_process``, so the store's work never holds the driver's GIL), and the
driver's ledger of the trials it has open and the epochs they reported.

A tracker is shared: the driver registers it (``open``), and a copy that Tune unpickles in the same process (the
callback restored from ``tuner.pkl`` on ``--resume``) is that same object, so every ending is decided on one state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from contract import metrics as M
from search.tracking.delivery import Delivery
from search.tracking.run_index import PARENT, RunIndex, TrackingError
from search.tracking.store_process import StoreProcess
from search.tracking.writes import EndRun, LogEpoch, LogInputs, LogMetrics, SetTags, StartTrial, Write, is_number

__all__ = ["PARENT", "MlflowTracker", "TrackingError"]

log = logging.getLogger(__name__)


class MlflowTracker:
    """The runs of one search in one MLflow experiment. Pickles as a reference to the process's open tracker."""

    _open_trackers: ClassVar[dict[str, MlflowTracker]] = {}  # search id -> the tracker the driver opened

    def __init__(self, uri: str, experiment: str, search_id: str, pending_file: str | None = None) -> None:
        self.uri, self.experiment, self.search_id = uri, experiment, search_id
        self.pending_file = pending_file
        self.index = RunIndex(uri, experiment, search_id)
        self._delivery = Delivery(self.index, pending_file)
        self._open: set[str] = set()  # trials started and not yet ended in this process
        self._reported: dict[str, int] = {}  # trial id -> the last epoch it reported to this process

    def __reduce__(self):
        return _attach, (self.uri, self.experiment, self.search_id, self.pending_file)

    # --- life cycle ---

    def open(self, store: StoreProcess | None = None) -> MlflowTracker:
        """Start the store's process (or take ``store``, one for this URI started earlier) and the delivery (with
        the writes an earlier driver left undelivered), and register as the live one."""
        self.index.client = store or StoreProcess(self.uri)
        self._delivery.start()
        MlflowTracker._open_trackers[self.search_id] = self
        return self

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued write is delivered (``True``) or ``timeout_s`` passed (``False``)."""
        return self._delivery.drain(timeout_s)

    def close(self, timeout_s: float = 60.0) -> None:
        """Deliver what is queued for up to ``timeout_s``; leave what is left in ``pending_file``."""
        self._delivery.drain(timeout_s)
        self._delivery.stop()
        MlflowTracker._open_trackers.pop(self.search_id, None)
        self.index.close()  # its store process: what is called after this runs in this process
        self._delivery.keep_left()

    def pending(self) -> int:
        """Writes not yet delivered."""
        return self._delivery.pending()

    def _submit(self, write: Write) -> None:
        if not self._delivery.started:  # not opened (a tool or a test using the tracker directly): open it now
            self.open()
        self._delivery.submit(write)

    # --- the store, the experiment and the parent run (synchronous: before any trial starts) ---

    @property
    def client(self):
        """The MLflow client (the store process once opened)."""
        return self.index.client

    @property
    def experiment_id(self) -> str:
        """The experiment's id (created on first use)."""
        return self.index.experiment_id

    @property
    def parent_id(self) -> str:
        """The search's parent run id."""
        return self.index.parent_id

    def start_parent(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str], artifacts: Mapping[str, Any]
    ) -> str:
        """The search's parent run: found again by the search id (a resume), else created. Synchronous: a store
        that cannot take the parent run is an error before any trial starts."""
        return self.index.start_parent(run_name, params, tags, artifacts)

    def run_id(self, trial_id: str) -> str | None:
        """The trial's run id once its start was delivered (``drain`` first to be sure), or its run from before
        this driver (a resumed search's trial that ended earlier: this driver never starts it)."""
        known = self.index.known(trial_id)
        if known is None and self._delivery.started:
            try:
                found = self.index.earlier_runs().get(trial_id)
            except Exception as e:  # the store is away: as if unknown (what needs the run says so)
                log.warning("could not look up the MLflow run of trial %s: %s", trial_id, e)
                found = None
            known = found[0] if found else None
        return known

    # --- what the search calls: each returns at once ---

    def trial_started(self, trial_id: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        """The trial (re)starts: its run is found again or created, with ``params`` and ``tags``."""
        self._open.add(trial_id)
        self._submit(StartTrial(trial_id, dict(params), dict(tags or {})))

    def epoch(
        self,
        trial_id: str,
        row: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        segment: str | None = None,
        segment_start: int = 0,
    ) -> None:
        """An epoch's numbers (step = its epoch; an epoch the run has is skipped unless it is of a new ``segment``
        of a population member's schedule, which starts after ``segment_start``) and ``tags``."""
        if is_number(row.get(M.EPOCH)):
            self._reported[trial_id] = int(row[M.EPOCH])
        numbers = {k: v for k, v in row.items() if is_number(v)}
        self._submit(LogEpoch(trial_id, numbers, tags=dict(tags or {}), segment=segment, segment_start=segment_start))

    def trial_ended(self, trial_id: str, status: str, reason: str | None = None) -> None:
        """The trial ended with ``status`` (contract.status) and, if given, its reason; the run ends."""
        self._open.discard(trial_id)
        self._submit(EndRun(trial_id, status, reason))

    def log_metrics(self, trial_id: str, values: Mapping[str, float]) -> None:
        """Numbers at step 0 (the final phase's test numbers, a parent's leaderboard)."""
        self._submit(LogMetrics(trial_id, dict(values)))

    def log_inputs(self, trial_id: str, records: list[dict[str, Any]]) -> None:
        """The trial's data sets, one input per split (``trainables.dataset_record.SplitRecord`` fields)."""
        self._submit(LogInputs(trial_id, list(records)))

    def set_tags(self, trial_id: str, tags: Mapping[str, Any]) -> None:
        """Tags on a trial's run (``PARENT``: the parent run's)."""
        self._submit(SetTags(trial_id, dict(tags)))

    # --- the driver's ledger ---

    def open_trials(self) -> list[str]:
        """Trials started and not yet ended while this driver ran."""
        return sorted(self._open)

    def reported(self, trial_id: str) -> int:
        """The last epoch the trial reported while this driver ran (0: none)."""
        return self._reported.get(trial_id, 0)


def _attach(uri: str, experiment: str, search_id: str, pending_file: str | None) -> MlflowTracker:
    """Unpickling a tracker: the driver's open one for the same search if this is its process, else a new one."""
    return MlflowTracker._open_trackers.get(search_id) or MlflowTracker(uri, experiment, search_id, pending_file)
