"""The Tune callback that mirrors every trial into the search's MLflow runs (``search.tracking.tracker``).

A trial waits while the driver handles its report (Tune's function trainables report synchronously): the tracker
only queues each write, and its own thread delivers them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ray.tune import Callback
from ray.tune.result import NODE_IP

from contract import metrics as M
from contract.status import FAILED, trial_status
from contract.tracking import NODE_IP_TAG, NODE_IPS_TAG, hits_tags
from search.tracking.tracker import MlflowTracker


def error_reason(trial) -> str | None:
    """The last line of a failed trial's error file (the exception), if Tune wrote one."""
    if not trial.error_file or not os.path.exists(trial.error_file):
        return None
    lines = Path(trial.error_file).read_text().strip().splitlines()
    return lines[-1] if lines else None


class MlflowCallback(Callback):
    """Mirrors every trial into the tracker. Never raises into Tune."""

    def __init__(self, tracker: MlflowTracker) -> None:
        self.tracker = tracker
        self._nodes: dict[str, list[str]] = {}  # trial id -> the nodes it ran on, in order

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.tracker.trial_started(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.log_result(trial, result)

    def log_result(self, trial, result: dict, **segment) -> None:
        """The result's epoch, tags and data sets on the trial's run (``segment``: ``MlflowTracker.epoch``'s)."""
        node = result.get(NODE_IP)
        nodes = self._nodes.setdefault(trial.trial_id, [])
        tags = {}
        if node and (not nodes or nodes[-1] != node):  # where the trial ran: a moved trial lists both nodes
            nodes.append(node)
            tags = {NODE_IP_TAG: node, NODE_IPS_TAG: ",".join(nodes)}
        if isinstance(result.get(M.FINAL_HITS), str):  # a final run's last epoch: with its numbers, in one write
            tags = {**tags, **hits_tags(result[M.FINAL_HITS])}
        if isinstance(result.get(M.DATASETS), str):  # a trial process's first result (trainables.tune)
            self.tracker.log_inputs(trial.trial_id, json.loads(result[M.DATASETS]))
        self.tracker.epoch(trial.trial_id, result, tags, **segment)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        self.tracker.trial_ended(trial.trial_id, trial_status(result, error=False), result.get(M.REASON))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.tracker.trial_ended(trial.trial_id, FAILED, error_reason(trial))
