"""MLflow runs of a search: one parent per search, one child per trial, that never get lost or duplicated.

Unlike Ray's ``MLflowLoggerCallback`` (a trial -> run map in driver memory), runs are found again by their tags,
so a retried trial, a restored experiment or a restarted driver continues the same runs:

- the parent run carries the tag ``t2t.experiment_path`` (the Tune experiment folder);
- a child run carries ``mlflow.parentRunId`` and ``trial_id`` (Ray's trial id);
- every epoch is logged with ``step=epoch`` in one ``log_batch`` call, and a step already logged is skipped.

Writes that fail (the server is away) are kept in order and retried with every later write, with one warning
per outage; what is still undelivered at the end is saved to a JSON file beside the results.

A trial waits while the driver handles its report (Tune's function trainables report synchronously), so the
callback only queues a trial's epoch and writes it at the end of Tune's step, after the trial was let go on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, FAILED, INTERRUPTED, PRUNED, RUNNING

log = logging.getLogger(__name__)

EXPERIMENT_PATH_TAG = "t2t.experiment_path"
TRIAL_ID_TAG = "trial_id"
PARENT_TAG = "mlflow.parentRunId"
PARENT = "parent"  # the key of the parent run among the trial ids
NODE_IP = "node_ip"  # the address of the node that produced a result (Tune fills it in)
NODE_IP_TAG = "ray.node_ip"  # a trial run's latest node
NODE_IPS_TAG = "ray.node_ips"  # every node a trial ran on, in order ("a,b" after a node died)
_PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
_LOGGED_METRICS = (
    M.EPOCH,
    M.TRAIN_LOSS,
    M.VAL_LOSS,
    M.VAL_ACC,
    M.VAL_ACC5,
    M.BEST_VAL_ACC,
    M.LR,
    M.EPOCH_TIME_S,
    M.IMAGES_PER_S,
)
_FINAL_STATUS = {
    COMPLETED: "FINISHED",
    PRUNED: "FINISHED",
    DIVERGED: "FAILED",
    FAILED: "FAILED",
    INTERRUPTED: "KILLED",
}


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names it and the fix."""


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_tracking(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before the search starts, when the tracking store cannot be reached or written."""
    if uri.startswith(("http://", "https://")):
        import requests
        from mlflow.utils.credentials import read_mlflow_creds

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
            creds = read_mlflow_creds()  # what the client sends: MLFLOW_TRACKING_* or ~/.mlflow/credentials
            auth = (creds.username, creds.password) if creds.username and creds.password else None
            answer = requests.get(
                f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=auth,
                timeout=timeout_s,
            )  # fmt: skip
        except requests.RequestException as e:
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {uri} ({type(e).__name__}): start it, or set "
                "MLFLOW_TRACKING_URI / tracking_uri to a reachable server or to sqlite:///mlflow.db"
            ) from None
        if answer.status_code in (401, 403):
            raise TrackingError(
                f"the MLflow tracking server at {uri} refused {'the' if auth else 'missing'} credentials "
                f"(HTTP {answer.status_code}): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or write "
                "them to ~/.mlflow/credentials"
            )
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise TrackingError(f"cannot write the MLflow store {uri}: folder {folder} is missing or read-only")
    elif (uri.startswith("file:") or "://" not in uri) and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "") != "true":
        raise TrackingError(
            f"tracking URI {uri} is MLflow's legacy file store, which MLflow 3.7+ refuses: use "
            "sqlite:///mlflow.db (the default) or a tracking server"
        )


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
        self._pending: list[tuple] = []
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
            self._experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
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

    def _child(self, trial_id: str, params: Mapping[str, Any] | None = None, reopen: bool = False) -> str:
        """The trial's run: cached, found again by its tags (reopened if ``reopen``: the trial starts again), or
        created. Only a start reopens: a later write, such as the baseline tag at a resumed search's end, labels a
        trial that may have ended before this driver started."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{TRIAL_ID_TAG}` = '{trial_id}'",
            max_results=2,
        )
        if runs:
            run_id = runs[0].info.run_id
            if reopen and runs[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {PARENT_TAG: self.parent_id, TRIAL_ID_TAG: trial_id, M.STATUS: RUNNING}
            run_id = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags=tags).info.run_id
            self._log_params(run_id, params or {})
        self._runs[trial_id] = run_id
        return run_id

    def _run(self, trial_id: str) -> str:
        """The run of a trial, or the parent run for ``PARENT``."""
        return self.parent_id if trial_id == PARENT else self._child(trial_id)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[i : i + _PARAMS_PER_BATCH])

    def _last_logged(self, run_id: str) -> int:
        if run_id not in self._last_step:
            history = self.client.get_metric_history(run_id, M.EPOCH)
            self._last_step[run_id] = max((m.step for m in history), default=0)
        return self._last_step[run_id]

    # --- operations: applied now, or kept in order while the store is away ---

    def _apply(self, op: tuple) -> None:
        kind, trial_id, *args = op
        if kind == "start":
            self._child(trial_id, args[0], reopen=True)
        elif kind == "epoch":
            from mlflow.entities import Metric

            run_id = self._child(trial_id)
            row, timestamp = args
            step = int(row[M.EPOCH])
            if step <= self._last_logged(run_id):
                return  # already logged (a trial that repeated an epoch after a restore)
            metrics = [Metric(k, float(row[k]), timestamp, step) for k in _LOGGED_METRICS if _is_number(row.get(k))]
            if self._last_logged(run_id) == 0:  # the run's first epoch: its size, once
                metrics += [Metric(k, float(row[k]), timestamp, 0) for k in (M.PARAMS, M.MACS) if k in row]
            self.client.log_batch(run_id, metrics=metrics)
            self._last_step[run_id] = step
        elif kind == "end":
            status, reason = args
            run_id = self._run(trial_id)
            self.client.set_tag(run_id, M.STATUS, status)
            if reason:
                self.client.set_tag(run_id, M.REASON, str(reason)[:5000])
            self.client.set_terminated(run_id, _FINAL_STATUS.get(status, "FINISHED"))
        elif kind == "metrics":
            from mlflow.entities import Metric

            values, timestamp = args
            run_id = self._run(trial_id)
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), timestamp, 0) for k, v in values.items()])
        elif kind == "tags":
            run_id = self._run(trial_id)
            for key, value in args[0].items():
                self.client.set_tag(run_id, key, str(value))
        else:
            raise ValueError(f"unknown tracking operation {kind!r}")

    def _submit(self, op: tuple, defer: bool = False) -> None:
        self._pending.append(op)
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
        """Apply the pending operations in order; ``True`` when none is left. Never raises."""
        while self._pending:
            try:
                self._apply(self._pending[0])
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
            Path(self.pending_file).write_text(json.dumps(self._pending, default=str, indent=1))
            log.error(
                "%d MLflow writes could not be delivered to %s; they are saved in %s",
                len(self._pending),
                self.uri,
                self.pending_file,
            )

    # --- what the search calls ---

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> None:
        self._open.add(trial_id)
        self._submit(("start", trial_id, dict(params)))

    def epoch(self, trial_id: str, row: Mapping[str, Any], defer: bool = False) -> None:
        """Log one epoch's numbers; ``defer``: only queue it, for ``flush_deferred`` or the next write."""
        values = {k: v for k, v in row.items() if _is_number(v)}
        self._submit(("epoch", trial_id, values, int(time.time() * 1000)), defer)

    def trial_ended(self, trial_id: str, status: str, reason: str | None = None) -> None:
        self._open.discard(trial_id)
        self._submit(("end", trial_id, status, reason))

    def open_trials(self) -> list[str]:
        return sorted(self._open)

    def log_metrics(self, trial_id: str, values: Mapping[str, float]) -> None:
        self._submit(("metrics", trial_id, dict(values), int(time.time() * 1000)))

    def set_tags(self, trial_id: str, tags: Mapping[str, Any], defer: bool = False) -> None:
        self._submit(("tags", trial_id, dict(tags)), defer)

    def run_id(self, trial_id: str) -> str | None:
        return self._runs.get(trial_id)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def trial_status(result: Mapping[str, Any] | None, error: bool) -> str:
    """A finished trial's status from its last result: completed, pruned (stopped early), diverged or failed."""
    status = (result or {}).get(M.STATUS)
    if error:
        return FAILED
    if status in (COMPLETED, DIVERGED):
        return status
    return PRUNED if result else FAILED


class MlflowCallback(Callback):
    """Tune callback that mirrors every trial into the tracker. Never raises into Tune."""

    def __init__(self, tracker: MlflowTracker) -> None:
        self.tracker = tracker
        self._nodes: dict[str, list[str]] = {}  # trial id -> the nodes it ran on, in order

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.tracker.trial_started(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.tracker.epoch(trial.trial_id, result, defer=True)  # written in on_step_end: the trial is not kept waiting
        node = result.get(NODE_IP)
        nodes = self._nodes.setdefault(trial.trial_id, [])
        if node and (not nodes or nodes[-1] != node):  # where the trial ran: a moved trial lists both nodes
            nodes.append(node)
            self.tracker.set_tags(trial.trial_id, {NODE_IP_TAG: node, NODE_IPS_TAG: ",".join(nodes)}, defer=True)

    def on_step_end(self, iteration, trials, **info) -> None:
        self.tracker.flush_deferred()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        status = trial_status(result, error=False)
        self.tracker.trial_ended(trial.trial_id, status, result.get(M.REASON))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        reason = None
        if trial.error_file and os.path.exists(trial.error_file):
            lines = Path(trial.error_file).read_text().strip().splitlines()
            reason = lines[-1] if lines else None
        self.tracker.trial_ended(trial.trial_id, FAILED, reason)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if _is_number(value) else "-"


class Progress(Callback):
    """A line when a trial starts or ends, and a status line every ``every_s`` seconds."""

    def __init__(self, every_s: float = 15.0) -> None:
        self.every_s = every_s
        self._start = time.monotonic()
        self._last = 0.0
        self._best: tuple[float, str] | None = None
        self._node: dict[str, str] = {}  # trial id -> the node of its last result

    def __getstate__(self) -> dict[str, Any]:
        return {"every_s": self.every_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["every_s"])

    def _say(self, message: str) -> None:
        log.info("[%5.0fs] %s", time.monotonic() - self._start, message)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        model = trial.config.get("model", {})
        shape = ", ".join(f"{k}={model[k]}" for k in ("tokens_type", "depth", "embed_dim", "token_dim") if k in model)
        self._say(f"trial {trial.trial_id} started ({shape})")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        node = result.get(NODE_IP)
        if node and self._node.get(trial.trial_id, node) != node:
            self._say(f"trial {trial.trial_id} continues on node {node} at epoch {result.get(M.EPOCH)}")
        if node:
            self._node[trial.trial_id] = node
        acc = result.get(M.VAL_ACC)
        if _is_number(acc) and (self._best is None or acc > self._best[0]):
            self._best = (acc, trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        self.on_trial_result(iteration, trials, trial, result)
        status = trial_status(result, error=False)
        self._say(
            f"trial {trial.trial_id} {status} at epoch {result.get(M.EPOCH)}: best val_acc "
            f"{_fmt(result.get(M.BEST_VAL_ACC))}" + (f" ({result[M.REASON]})" if result.get(M.REASON) else "")
        )

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._say(f"trial {trial.trial_id} failed (see {trial.error_file})")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        where = self._node.get(trial.trial_id)
        self._say(
            f"trial {trial.trial_id} lost its worker"
            + (f" on node {where}" if where else "")
            + f" (failure {trial.num_failures}); it restarts from its last checkpoint"
        )

    def on_step_end(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        state = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        best = f"best val_acc {self._best[0]:.4f} (trial {self._best[1]})" if self._best else "no result yet"
        self._say(f"{state} | {best}")
