"""The smoke search's MLflow records as MLflow's users expect them: a training experiment, every trial run with
its data sets and system metrics, the winner in the Model Registry (loaded back and evaluated), and the parent run
with the leaderboard's top line."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

import t2t
from contract import metrics as M
from contract.summary import GAIN
from contract.tracking import (
    CHAMPION_ALIAS,
    DATASET_CONTEXT_TAG,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    SYSTEM_METRICS_PREFIX,
    TRAIN_SPLIT,
    UI_TRAINING_VIEW,
    VAL_SPLIT,
)
from trainables.config import TrainConfig
from trainables.loop import Trainer, evaluate

pytestmark = pytest.mark.slow
DIGITS = 1797  # images in scikit-learn's bundled digits


def _client(folder: Path) -> tuple[MlflowClient, str]:
    uri = f"sqlite:///{folder}/mlflow.db"
    return MlflowClient(uri), uri


def _children(client: MlflowClient, experiment_id: str):
    runs = client.search_runs([experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags], [
        r for r in runs if "mlflow.parentRunId" not in r.data.tags
    ]


def test_experiment_kind_data_sets_and_system_metrics(smoke_search):
    client, _ = _client(smoke_search)
    exp = client.get_experiment_by_name("smoke")
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND_TRAINING
    page = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?{UI_TRAINING_VIEW}"
    assert page in (smoke_search / "search.log").read_text()  # the address that opens the UI on the runs
    children, _ = _children(client, exp.experiment_id)
    assert len(children) == 3
    for child in children:
        inputs = {
            i.tags[0].value: i.dataset for i in child.inputs.dataset_inputs if i.tags[0].key == DATASET_CONTEXT_TAG
        }
        assert set(inputs) == {TRAIN_SPLIT, VAL_SPLIT}
        rows = {split: json.loads(d.profile)["num_rows"] for split, d in inputs.items()}
        assert rows[TRAIN_SPLIT] + rows[VAL_SPLIT] == DIGITS and rows[VAL_SPLIT] > 0
        assert {d.name for d in inputs.values()} == {"digits"}
        assert inputs[TRAIN_SPLIT].digest != inputs[VAL_SPLIT].digest
        system = {k for k in child.data.metrics if k.startswith(SYSTEM_METRICS_PREFIX)}
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system, system


def test_the_winner_is_registered_and_evaluates_to_its_accuracy(smoke_search, tmp_path, monkeypatch):
    client, uri = _client(smoke_search)
    version = client.get_model_version_by_alias("smoke", CHAMPION_ALIAS)
    exp = client.get_experiment_by_name("smoke")
    _, parents = _children(client, exp.experiment_id)
    parent = parents[0]
    assert version.run_id == parent.data.tags["best_run_id"]
    assert parent.data.tags["registered_version"] == str(version.version)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as a user would: the registry is the tracking store's
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/smoke@{CHAMPION_ALIAS}", dst_path=str(tmp_path)))
    cfg = TrainConfig.from_dict(json.loads((folder / MODEL_CONFIG_FILE).read_text()))
    trainer = Trainer(cfg, torch.device("cpu"))  # the same data split (seeded) and an untrained model
    report = t2t.load_pretrained(trainer.model, folder / MODEL_WEIGHTS_FILE)
    assert not report.missing and not report.unexpected and not report.skipped
    acc = evaluate(trainer.model, trainer.data.val, False, trainer.data.num_classes)[M.VAL_ACC]
    best = client.get_run(version.run_id).data.metrics[M.BEST_VAL_ACC]
    assert acc == pytest.approx(best, abs=1e-9)
    assert acc == pytest.approx(parent.data.metrics[M.BEST_VAL_ACC], abs=1e-9)


def test_the_parent_run_carries_the_leaderboard(smoke_search):
    client, _ = _client(smoke_search)
    exp = client.get_experiment_by_name("smoke")
    _, parents = _children(client, exp.experiment_id)
    metrics = parents[0].data.metrics
    best = client.get_run(parents[0].data.tags["best_run_id"]).data.metrics
    assert metrics[M.PARAMS] == best[M.PARAMS] and metrics[M.MACS] == best[M.MACS]
    assert metrics[GAIN] == pytest.approx(metrics[M.BEST_VAL_ACC] - metrics["baseline_val_acc"])
    assert metrics["wall_time_s"] > 0
