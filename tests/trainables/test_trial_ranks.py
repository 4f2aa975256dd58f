"""A Tune trial whose placement group has two bundles trains on two processes (trainables.trial_ranks) under a real
local Ray: it reports what one process trains, and a trial Tune stops gives back every bundle."""

from __future__ import annotations

import time

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


def _fit(ray_local, tmp_path, name: str, stop: dict | None = None) -> tune.ResultGrid:
    tuner = tune.Tuner(
        tune.with_resources(train_t2t, TWO_RANKS),
        param_space=TrainConfig.load(None, DETERMINISTIC).to_dict(),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), stop=stop, verbose=0),
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
