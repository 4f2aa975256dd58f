"""The smoke search's MLflow records as MLflow's users expect them: a training experiment, every trial run with
its data sets and system metrics, the winner in the Model Registry (loaded back and evaluated), and the parent run
with the leaderboard's top line."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow.tracking import MlflowClient

import t2t
from contract import metrics as M
from contract.files import SEARCH_SUMMARY
from contract.status import COMPLETED
from contract.summary import GAIN
from contract.tracking import (
    CHAMPION_ALIAS,
    DATASET_CONTEXT_TAG,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    FINAL_SOURCE_TAG,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    ROLE_FINAL,
    ROLE_TAG,
    ROLE_TRIAL,
    TEST_SPLIT,
    TRAIN_SPLIT,
    UI_TRAINING_VIEW,
    VAL_SPLIT,
)
from tests.conftest import STARTED
from tests.processes import free_port, kill_session, serve
from trainables.config import TrainConfig
from trainables.loop import Trainer, evaluate

pytestmark = pytest.mark.processes
DIGITS = 1797  # images in scikit-learn's bundled digits


def _client(folder: Path) -> tuple[MlflowClient, str]:
    uri = f"sqlite:///{folder}/mlflow.db"
    return MlflowClient(uri), uri


def _children(client: MlflowClient, experiment_id: str, role: str = ROLE_TRIAL):
    """The child runs of ``role`` (the search's trials, or the final phase's runs), and the parent runs."""
    runs = client.search_runs([experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.data.tags[ROLE_TAG] == role]
    return children, [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def test_experiment_kind_data_sets_and_system_metrics(smoke_search):
    client, _ = _client(smoke_search)
    exp = client.get_experiment_by_name("smoke")
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND_TRAINING
    page = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?{UI_TRAINING_VIEW}"
    assert page in (smoke_search / "search.log").read_text()  # the address that opens the UI on the runs
    children, _ = _children(client, exp.experiment_id)
    finals, _ = _children(client, exp.experiment_id, ROLE_FINAL)
    assert len(children) == 3 and finals
    # A search trial never records the test split; a final run does. Each run's data sets and system metrics came
    # with its results from the trial's process (trainables.telemetry), which never opens MLflow itself.
    for child in children + finals:
        inputs = {
            i.tags[0].value: i.dataset for i in child.inputs.dataset_inputs if i.tags[0].key == DATASET_CONTEXT_TAG
        }
        splits = {TRAIN_SPLIT, VAL_SPLIT} | ({TEST_SPLIT} if child in finals else set())
        assert set(inputs) == splits
        rows = {split: json.loads(d.profile)["num_rows"] for split, d in inputs.items()}
        assert min(rows.values()) > 0 and (sum(rows.values()) == DIGITS) == (child in finals)
        assert {d.name for d in inputs.values()} == {"digits"}
        assert len({d.digest for d in inputs.values()}) == len(splits)
        last = int(child.data.metrics[M.EPOCH])
        for name in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"):
            assert [m.step for m in client.get_metric_history(child.info.run_id, name)] == list(range(1, last + 1))


def test_no_store_is_made_beside_the_working_folders_one(smoke_search):
    """With no MLFLOW_TRACKING_URI, the driver's store is ``mlflow.db`` in the working folder, and no trial process
    makes one of its own (in its working folder under Ray's session folder)."""
    started = (smoke_search / STARTED).stat().st_mtime
    sessions = [d for d in (Path(tempfile.gettempdir()) / "ray").glob("session_2*") if d.stat().st_mtime >= started]
    assert sessions, "the search's Ray session folder"
    stores = [*smoke_search.rglob("mlflow.db"), *(p for d in sessions for p in d.rglob("mlflow.db"))]
    assert stores == [smoke_search / "mlflow.db"], stores


def test_the_winner_is_registered_and_evaluates_to_its_accuracy(smoke_search, tmp_path, monkeypatch):
    """The champion is the final phase's winner's best run (by val): downloaded by its alias, its weights score that
    run's last val_acc on val and its test_acc on test."""
    client, uri = _client(smoke_search)
    version = client.get_model_version_by_alias("smoke", CHAMPION_ALIAS)
    exp = client.get_experiment_by_name("smoke")
    _, parents = _children(client, exp.experiment_id)
    parent, run = parents[0], client.get_run(version.run_id)
    assert run.data.tags[ROLE_TAG] == ROLE_FINAL and run.data.tags[FINAL_SOURCE_TAG] == parent.data.tags["final.winner"]
    assert parent.data.tags["registered_version"] == str(version.version)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as a user would: the registry is the tracking store's
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/smoke@{CHAMPION_ALIAS}", dst_path=str(tmp_path)))
    cfg = TrainConfig.from_dict(json.loads((folder / MODEL_CONFIG_FILE).read_text()))
    trainer = Trainer(cfg, torch.device("cpu"))  # the same data split (data.split_seed) and an untrained model
    report = t2t.load_pretrained(trainer.model, folder / MODEL_WEIGHTS_FILE)
    assert not report.missing and not report.unexpected and not report.skipped
    classes = trainer.data.num_classes
    val = evaluate(trainer.model, trainer.data.val, False, classes)[M.VAL_ACC]
    test = evaluate(trainer.model, trainer.data.test, False, classes, TEST_SPLIT)[M.TEST_ACC]
    assert val == pytest.approx(run.data.metrics[M.VAL_ACC], abs=1e-9)  # the latest: its last epoch's
    assert test == pytest.approx(run.data.metrics[M.TEST_ACC], abs=1e-9)

    # The same folder is an MLflow model: MLflow's PyTorch flavour loads it, and it scores the same.
    model = mlflow.pytorch.load_model(f"models:/smoke@{CHAMPION_ALIAS}")
    for batches, metric in ((trainer.data.val, M.VAL_ACC), (trainer.data.test, M.TEST_ACC)):
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
        assert correct / sum(len(y) for _, y in batches) == pytest.approx(run.data.metrics[metric], abs=1e-9)
    info = mlflow.models.get_model_info(f"models:/smoke@{CHAMPION_ALIAS}")
    size = cfg.data.img_size  # the digits: one channel
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1, size, size]


def test_mlflow_serves_the_champion_over_http(smoke_search, tmp_path):
    """``mlflow models serve -m models:/NAME@champion --env-manager local``, on loopback: class scores per image."""
    import requests

    port = free_port()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the venv active: its uvicorn
    env = {**os.environ, "MLFLOW_TRACKING_URI": _client(smoke_search)[1], "PATH": path}
    args = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/smoke@{CHAMPION_ALIAS}",
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    server = serve(args, tmp_path / "serve.log", f"http://127.0.0.1:{port}/ping", "mlflow models serve", env)
    try:
        images = torch.rand(3, 1, 32, 32).tolist()
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": images}, timeout=60)
        assert answer.status_code == 200, answer.text
        scores = answer.json()["predictions"]
        assert len(scores) == 3 and all(len(row) == 10 for row in scores)  # the ten digits' scores per image
    finally:
        kill_session(server)


def test_the_parent_run_carries_the_leaderboard(smoke_search):
    client, _ = _client(smoke_search)
    exp = client.get_experiment_by_name("smoke")
    _, parents = _children(client, exp.experiment_id)
    metrics = parents[0].data.metrics
    best = client.get_run(parents[0].data.tags["best_run_id"]).data.metrics
    assert metrics[M.PARAMS] == best[M.PARAMS] and metrics[M.MACS] == best[M.MACS]
    summary = json.loads((smoke_search / "ray_results" / "smoke" / SEARCH_SUMMARY).read_text())
    if summary["baseline_status"] == COMPLETED:  # a pruned baseline's number is truncated: no gain from it
        assert metrics[GAIN] == pytest.approx(metrics[M.BEST_VAL_ACC] - metrics["baseline_val_acc"])
    else:
        assert GAIN not in metrics
    winner = next(c for c in summary["final"]["candidates"] if c["source"] == summary["final"]["winner"])
    assert metrics["final_test_acc_mean"] == pytest.approx(winner["measured"]["mean"])
    assert parents[0].data.tags["final.verdict"]
    assert metrics["wall_time_s"] > 0
