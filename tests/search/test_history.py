"""Tune's own history files keep each epoch once when a resumed trial reports epochs again."""

import csv
import json
from pathlib import Path

import pytest

from search.plugins.history import CsvHistory, JsonHistory


class _Trial:
    """What Tune's file loggers read of a trial: its id, config and folder; no checkpoint, so nothing to fetch."""

    checkpoint = None

    def __init__(self, folder: Path):
        self.trial_id, self.config, self.local_path = "t1", {"lr": 0.1}, str(folder)
        folder.mkdir(parents=True)  # Tune makes it before it starts the trial

    def init_local_path(self):
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def _rows(kind, folder: Path) -> list[dict]:
    if kind is JsonHistory:
        return [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
    with (folder / "progress.csv").open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _report(logger, trial, iterations, loss):
    for i in iterations:
        logger.on_trial_result(i, [trial], trial, {"training_iteration": i, "epoch": i, "loss": loss})


@pytest.mark.parametrize("kind", [JsonHistory, CsvHistory])
def test_a_resumed_trial_that_repeats_epochs_writes_each_once(tmp_path, kind):
    trial = _Trial(tmp_path / "trial_t1")
    first = kind()  # the driver that is killed after epoch 3
    first.on_trial_start(0, [trial], trial)
    _report(first, trial, [1, 2, 3], loss=1.0)

    resumed = kind()  # a new driver; its snapshot named the checkpoint of epoch 1, so epochs 2 and 3 come again
    resumed.on_trial_start(0, [trial], trial)
    _report(resumed, trial, [2, 3, 4, 5], loss=2.0)
    resumed.on_trial_complete(0, [trial], trial)

    rows = _rows(kind, Path(trial.local_path))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in rows] == [1.0, 1.0, 1.0, 2.0, 2.0]  # the first report of an epoch stays


def test_results_without_an_iteration_are_written(tmp_path):
    trial = _Trial(tmp_path / "trial_t1")
    logger = JsonHistory()
    logger.on_trial_result(0, [trial], trial, {"training_iteration": 1, "epoch": 1})
    logger.on_trial_result(0, [trial], trial, {"note": "no iteration"})
    assert len(_rows(JsonHistory, Path(trial.local_path))) == 2
