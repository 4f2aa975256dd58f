"""A Tune trial whose placement group has two bundles trains on two processes (trainables.trial_ranks) under a real
local Ray: it reports what one process trains, a trial Tune stops gives back every bundle, and a trial whose other
rank dies continues from its checkpoint."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from ray import tune

from contract import metrics as M
from contract.status import COMPLETED, RUNNING
from tests.trainables.test_ranks import DETERMINISTIC
from trainables.config import TrainConfig
from trainables.loop import Trainer
from trainables.tune import train_t2t

pytestmark = pytest.mark.ray
TWO_RANKS = tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 1}])  # the local Ray's 2 CPUs: one trial at a time


def _fit(ray_local, tmp_path, name: str, stop: dict | None = None, epochs: int = 3) -> tune.ResultGrid:
    tuner = tune.Tuner(
        tune.with_resources(train_t2t, TWO_RANKS),
        param_space=TrainConfig.load(None, [*DETERMINISTIC, f"train.epochs={epochs}"]).to_dict(),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(tmp_path),
            stop=stop,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    return tuner.fit()


def _everything_given_back(ray) -> bool:
    """Every placement group removed and both CPUs free again, within 20 s."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        groups = ray.util.placement_group_table().values()
        if all(g["state"] == "REMOVED" for g in groups) and ray.available_resources().get("CPU") == 2:
            return True
        time.sleep(0.5)
    return False


def test_a_two_rank_trial_reports_what_one_process_trains(ray_local, tmp_path):
    expected = list(Trainer(TrainConfig.load(None, DETERMINISTIC), torch.device("cpu")).epochs())
    (result,) = _fit(ray_local, tmp_path, "two-ranks")
    assert result.error is None, result.error
    history = result.metrics_dataframe
    assert history[M.EPOCH].tolist() == [1, 2, 3]
    assert history[M.STATUS].tolist() == [RUNNING, RUNNING, COMPLETED]
    for (_, got), want in zip(history.iterrows(), expected, strict=True):  # tolerances: tests/trainables/test_ranks.py
        assert got[M.TRAIN_LOSS] == pytest.approx(want[M.TRAIN_LOSS], rel=1e-4)
        assert got[M.VAL_LOSS] == pytest.approx(want[M.VAL_LOSS], rel=1e-4)
        assert got[M.VAL_ACC] == want[M.VAL_ACC]
    assert history[M.TEST_ACC].iloc[-1] == expected[-1][M.TEST_ACC]  # measured at the last epoch
    state = torch.load(f"{result.checkpoint.path}/checkpoint.pt", weights_only=True)  # rank 0's, one model
    assert state["epoch"] == 3 and "module.head.weight" not in state["model"]
    assert _everything_given_back(ray_local)


def test_a_trial_tune_stops_gives_back_both_bundles(ray_local, tmp_path):
    (result,) = _fit(ray_local, tmp_path, "stopped", stop={"training_iteration": 1})
    assert result.error is None and result.metrics_dataframe[M.EPOCH].tolist() == [1]
    assert _everything_given_back(ray_local)  # the worker rank ended with the trial, mid-run


def _rank_workers() -> list[int]:
    """The PIDs of the RankWorker actors training now (their process title, set by Ray)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::RankWorker.train"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_a_trial_whose_other_rank_dies_continues_from_its_checkpoint(ray_local, tmp_path):
    killed: list[int] = []

    def kill_rank_1_after_epoch_2() -> None:  # bounded: the trial reports an epoch every second or two
        for _ in range(600):  # each epoch's checkpoint reaches the storage as it is reported
            if len(list((tmp_path / "killed").glob("*/checkpoint_*"))) >= 2 and _rank_workers():
                killed.extend(_rank_workers())
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_rank_1_after_epoch_2)
    killer.start()
    (result,) = _fit(ray_local, tmp_path, "killed", epochs=8)
    killer.join()
    assert len(killed) == 1  # rank 1 died mid-trial
    assert result.error is None, result.error
    assert tune.ExperimentAnalysis(str(tmp_path / "killed")).trials[0].num_failures == 1  # the trial failed once
    # Continued after a checkpoint: no epoch twice. Tune's result.json keeps the first attempt's lines, or (seen once
    # in three runs) starts again with the retry's: then its first line is the epoch after the checkpoint.
    epochs = result.metrics_dataframe[M.EPOCH].tolist()
    assert epochs == sorted(set(epochs)) and epochs[-1] == 8 and (epochs[0] > 1 or len(epochs) == 8), epochs
    assert result.metrics_dataframe[M.STATUS].iloc[-1] == COMPLETED
    assert _everything_given_back(ray_local)
