"""A trial's own MLflow run, from inside the trial's process: its data set inputs and its system metrics.

The driver creates the run (``search.tracking.tracker``) and this process finds it by its tags (the search's parent run
and the trial id), so the numbers are logged where they are measured: the CPU, memory and GPU of the node the trial
runs on, through MLflow's own ``SystemMetricsMonitor`` (which needs no fluent run, only a run id). Nothing here
may fail a trial: a store that cannot be reached costs a warning and these extras, never the training.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from contract.tracking import DATASET_CONTEXT_TAG, PARENT_RUN_TAG, TRIAL_ID_TAG
from trainables.dataset_record import SplitRecord

log = logging.getLogger(__name__)

SAMPLING_INTERVAL_S = 5.0  # MLflow's default is 10 s; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides either
FIND_RUN_TIMEOUT_S = 60.0  # the driver creates the run when Tune starts the trial, about when this process starts


@dataclass(frozen=True)
class TrialRuns:
    """Where a search's trial runs are: enough for a trial's process to find its own."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str

    def find(self, trial_id: str, timeout_s: float = FIND_RUN_TIMEOUT_S) -> str | None:
        """The run the driver made for ``trial_id`` (found by its tags), waiting up to ``timeout_s``; None."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        query = f"tags.`{PARENT_RUN_TAG}` = '{self.parent_run_id}' and tags.`{TRIAL_ID_TAG}` = '{trial_id}'"
        deadline, delay = time.monotonic() + timeout_s, 0.2
        while True:
            runs = client.search_runs([self.experiment_id], filter_string=query, max_results=1)
            if runs or time.monotonic() >= deadline:
                return runs[0].info.run_id if runs else None
            time.sleep(delay)
            delay = min(2 * delay, 2.0)


def log_datasets(tracking_uri: str, run_id: str, records: list[SplitRecord]) -> None:
    """Each split as an MLflow dataset input of the run (the UI's Dataset column), its context tag the split."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.tracking import MlflowClient

    inputs = []
    for r in records:
        profile = {"num_rows": r.rows, "num_classes": r.num_classes, "image_shape": list(r.image_shape)}
        dataset = Dataset(
            name=r.name, digest=r.digest, source_type="local", source=json.dumps({"source": r.source}),
            profile=json.dumps(profile),
        )  # fmt: skip
        inputs.append(DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT_TAG, r.split)]))
    MlflowClient(tracking_uri).log_inputs(run_id, datasets=inputs)


def _sample_now(monitor) -> None:
    """What the monitor sampled since its last log (at least one sample), logged now."""
    metrics = monitor.aggregate_metrics()
    if not metrics:
        monitor.collect_metrics()
        metrics = monitor.aggregate_metrics()
    monitor.publish_metrics(metrics)
    monitor.mlflow_logger.flush()


def _stop(monitor) -> None:
    try:
        monitor.finish()  # joins the monitor's thread: what it sampled since its last log is ours to log
        _sample_now(monitor)
    except Exception as e:
        log.warning("could not log the trial's last system metrics to MLflow: %s", e)


@contextmanager
def trial_run(runs: TrialRuns | None, trial_id: str, records: list[SplitRecord]) -> Iterator[None]:
    """While the block runs, the trial's data sets are logged to its run and its system metrics sampled there.

    All of it happens on a thread of its own: training never waits for MLflow. On a cluster whose tracking server
    listens on the head's loopback (cluster.yaml), a trial on a worker node cannot reach it at all; then this
    costs a warning, with MLflow's retries off and a short timeout, and the driver still records everything else.
    """
    if runs is None:
        yield
        return
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # this process only: one try per request
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    started: dict[str, object] = {}
    starter = threading.Thread(target=_start, args=(runs, trial_id, records, started), name="trial-mlflow", daemon=True)
    starter.start()
    try:
        yield
    finally:
        threading.Thread(target=_finish, args=(starter, started), name="trial-mlflow-stop", daemon=True).start()


def _start(runs: TrialRuns, trial_id: str, records: list[SplitRecord], started: dict) -> None:
    """Find the run, log the data sets, start the monitor."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    try:
        run_id = runs.find(trial_id)
        if run_id is None:
            log.warning("no MLflow run of trial %s after %.0f s: no data sets or system metrics", trial_id,
                        FIND_RUN_TIMEOUT_S)  # fmt: skip
            return
        log_datasets(runs.tracking_uri, run_id, records)
        monitor = SystemMetricsMonitor(
            run_id, sampling_interval=SAMPLING_INTERVAL_S, resume_logging=True, tracking_uri=runs.tracking_uri
        )
        # One sample at once, before the monitor's thread shares its buffers: a trial shorter than the sampling
        # interval has numbers too.
        _sample_now(monitor)
        monitor.start()
        started["monitor"] = monitor
    except Exception as e:
        log.warning("could not log trial %s's data sets or system metrics to MLflow: %s", trial_id, e)


def _finish(starter: threading.Thread, started: dict) -> None:
    """Stop the monitor once the starter is done (it talks to the store, which may be slow: nobody waits here).

    Tune reuses a trial's actor only if the training function returns within 2 s of its last report
    (``TUNE_FUNCTION_THREAD_TIMEOUT_S``), so neither this nor the starter is waited for."""
    starter.join(timeout=FIND_RUN_TIMEOUT_S + 30)
    if "monitor" in started:
        _stop(started["monitor"])
