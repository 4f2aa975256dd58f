"""Tune's own per-trial history files (``result.json``, ``progress.csv``), each epoch written once.

Tune's file loggers only append. When the driver is killed and the search resumed, Tune restarts a trial from the
checkpoint named in its last experiment snapshot, which can be an epoch older than the last line of the trial's
files (the result is written, then the snapshot is taken), and the trial reports that epoch again. These loggers
skip an iteration their file already holds, so the first report of an epoch stays, as it does in MLflow.

TensorBoard files are not written: MLflow is where trials are compared.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ray.air.constants import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE, TRAINING_ITERATION
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


def _last_in_json(path: Path) -> int:
    last = 0
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                last = max(last, int(json.loads(line)[TRAINING_ITERATION]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill, or a result without an iteration
    return last


def _last_in_csv(path: Path) -> int:
    last = 0
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    last = max(last, int(row[TRAINING_ITERATION]))
                except (ValueError, KeyError, TypeError):
                    continue
    return last


class _OncePerIteration:
    """Writes a trial's result only if its ``training_iteration`` is past the last one in the trial's file."""

    FILE: str

    def __init__(self) -> None:
        super().__init__()
        self._written: dict[str, int] = {}

    def _open(self, trial) -> None:  # the logger's own set-up: opens the file (fetching it from remote storage)
        raise NotImplementedError

    @staticmethod
    def _last_in(path: Path) -> int:
        raise NotImplementedError

    def log_trial_result(self, iteration: int, trial, result: dict[str, Any]) -> None:
        if trial not in self._trial_files:
            self._open(trial)
        if trial.trial_id not in self._written:
            self._written[trial.trial_id] = self._last_in(Path(trial.local_path, self.FILE))
        done = result.get(TRAINING_ITERATION)
        if done is not None:
            if done <= self._written[trial.trial_id]:
                return
            self._written[trial.trial_id] = done
        super().log_trial_result(iteration, trial, result)


class JsonHistory(_OncePerIteration, JsonLoggerCallback):
    """Tune's ``result.json`` of each trial, each epoch once."""

    FILE = EXPR_RESULT_FILE
    _last_in = staticmethod(_last_in_json)

    def _open(self, trial) -> None:
        self.log_trial_start(trial)


class CsvHistory(_OncePerIteration, CSVLoggerCallback):
    """Tune's ``progress.csv`` of each trial, each epoch once."""

    FILE = EXPR_PROGRESS_FILE
    _last_in = staticmethod(_last_in_csv)

    def _open(self, trial) -> None:
        self._setup_trial(trial)
