"""The Tune trainable under a real local Ray: per-epoch reports, checkpoints, and a retried trial that continues."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ray import tune

from contract import metrics as M
from contract.status import COMPLETED, RUNNING
from contract.tracking import TRAIN_SPLIT, VAL_SPLIT
from trainables.config import TrainConfig
from trainables.tune import train_t2t

pytestmark = pytest.mark.ray

TINY = ["model.name=t2t_vit_test", "data.name=synthetic", "data.synthetic_samples=64", "data.batch_size=16"]


def _config(epochs: int) -> dict:
    return TrainConfig.load(None, [*TINY, f"train.epochs={epochs}"]).to_dict()


def crash_once_in_epoch_3(config: dict) -> None:
    """The trainable, except that its first attempt dies (the whole worker process) during epoch 3."""
    config = dict(config)
    marker = Path(config.pop("crash_marker"))

    def report(metrics, checkpoint=None):
        if metrics[M.EPOCH] == 3 and not marker.exists():
            marker.touch()
            os._exit(1)  # a hard death: no exception handling, no cleanup, like a killed node
        tune.report(metrics, checkpoint=checkpoint)

    train_t2t(config, report=report)


def _run(trainable, param_space: dict, storage: Path, name: str) -> tune.ResultGrid:
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space,
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=1),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=0,
        ),
    )
    return tuner.fit()


def test_two_trials_report_every_epoch_with_checkpoints(ray_local, tmp_path):
    space = _config(epochs=3)
    space["train"]["seed"] = tune.grid_search([0, 1])
    results = _run(train_t2t, space, tmp_path, "two")
    assert len(results) == 2 and not results.errors
    for result in results:
        history = result.metrics_dataframe
        assert history[M.EPOCH].tolist() == [1, 2, 3]
        assert history[M.STATUS].tolist() == [RUNNING, RUNNING, COMPLETED]
        assert history[M.VAL_ACC].between(0, 1).all()
        # the process's telemetry with every report, its data sets with the first (the driver logs both to MLflow)
        assert history["system/cpu_utilization_percentage"].between(0, 100).all()
        assert history["system/system_memory_usage_megabytes"].gt(0).all()
        datasets = history[M.DATASETS].tolist()
        assert {r["split"] for r in json.loads(datasets[0])} == {TRAIN_SPLIT, VAL_SPLIT}
        assert all(not isinstance(d, str) for d in datasets[1:]), datasets  # missing: NaN
        assert result.checkpoint is not None
        assert (Path(result.checkpoint.path) / "checkpoint.pt").is_file()
    seeds = {r.config["train"]["seed"] for r in results}
    assert seeds == {0, 1}


def test_killed_trial_is_retried_from_its_checkpoint(ray_local, tmp_path):
    space = {**_config(epochs=4), "crash_marker": str(tmp_path / "crashed")}
    results = _run(crash_once_in_epoch_3, space, tmp_path, "retry")
    result = results[0]
    assert (tmp_path / "crashed").exists()  # the first attempt did die
    assert result.error is None
    history = result.metrics_dataframe
    epochs = history[M.EPOCH].tolist()
    # Continued after epoch 2's checkpoint: nothing repeated. Tune's own result.json can miss the line of epoch 2
    # (seen once in 2,300 s of the suite: its progress.csv had it), so only the order and the ends are asserted.
    assert epochs == sorted(set(epochs)) and epochs[0] == 1 and epochs[-2:] == [3, 4], epochs
    assert history[M.STATUS].iloc[-1] == COMPLETED
