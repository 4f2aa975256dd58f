"""Console progress of a search: a line when a trial starts, moves node or ends, and a status line now and then."""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.tune import Callback
from ray.tune.result import NODE_IP

from contract import metrics as M
from contract.status import trial_status
from search.tracking.writes import is_number

log = logging.getLogger(__name__)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if is_number(value) else "-"


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
        if is_number(acc) and (self._best is None or acc > self._best[0]):
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
