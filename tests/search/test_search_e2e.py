"""``python -m search.run`` end to end, as a user runs it: a real local Ray, Optuna study and MLflow store.

Each search runs as a subprocess in its own session (so a test can SIGKILL the driver), stopped by PID.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, PRUNED
from contract.tracking import BASELINE_TAG
from search.study.searcher import BASELINE, RAY_TRIAL_ID
from tests.conftest import run_search
from tests.search.stores import epochs, finish, load_study, runs, search

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parents[2]


def _search(tmp_path: Path, *args: str, log: str = "search.log"):
    return search(tmp_path, *args, log=log)


def _runs(tmp_path: Path, name: str):
    return runs(f"sqlite:///{tmp_path}/mlflow.db", name)


def _study(tmp_path: Path, name: str) -> optuna.Study:
    return load_study(tmp_path / "ray_results" / name, name)


def test_smoke_search_end_to_end(smoke_search):
    tmp_path = smoke_search
    log = (tmp_path / "search.log").read_text()
    assert "search 'smoke' done" in log and "retrain the winner: python -m trainables.train --config" in log
    notices = ("Token authentication is enabled", "Started a local Ray instance", "Configuration for experiment",
               "View detailed results here", "Creating initial MLflow database tables", "A new study created",
               "Downloading artifacts", "Wrote the latest version")  # fmt: skip
    assert [n for n in notices if n in log] == []  # the libraries' notices only with --verbose

    client, parents, children = _runs(tmp_path, "smoke")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags[M.STATUS] == COMPLETED
    assert parent.data.tags["version.ray"].startswith("2.60")
    study = _study(tmp_path, "smoke")
    trial_ids = {t.user_attrs[RAY_TRIAL_ID] for t in study.trials}
    assert len(children) == len(trial_ids) == 3
    baseline = [t.user_attrs[RAY_TRIAL_ID] for t in study.trials if t.user_attrs.get(BASELINE)]
    tagged = [c.data.tags["trial_id"] for c in children if c.data.tags.get(BASELINE_TAG) == "true"]
    assert len(baseline) == 1 and tagged == baseline  # the base config's own trial, marked in MLflow
    assert f"baseline trial {baseline[0]} (the base config's values" in log
    assert ("points on val" in log) != ("no gain to measure against" in log)  # the latter for a pruned baseline
    assert {c.data.tags["trial_id"] for c in children} == trial_ids
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.tags[M.STATUS] in (COMPLETED, PRUNED)
        steps = epochs(client, child)
        assert steps == list(range(1, len(steps) + 1)) and steps
    assert parent.data.metrics["trials_completed"] + parent.data.metrics["trials_pruned"] == 3
    best = parent.data.tags["best_run_id"]
    assert [a.path for a in client.list_artifacts(best, "model")] == ["model/config.json", "model/model.pt"]
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/trials.csv", "report/best_config.yaml"} <= report
    assert "report:   " in log and (tmp_path / "ray_results" / "smoke" / "report" / "report.html").is_file()
    with closing(sqlite3.connect(tmp_path / "mlflow.db")) as db:  # search.run writes its SQLite store ahead
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # the same name again without --resume is refused and changes nothing
    assert run_search(tmp_path, "--smoke-test", "--name", "smoke", log="again.log") == 2
    assert "already exists" in (tmp_path / "again.log").read_text()
    assert len(_runs(tmp_path, "smoke")[1]) == 1


def test_asha_stops_are_pruned_and_the_budget_refuses_before_training(tmp_path):
    # Sequential trials, a good and a hopeless learning rate, two model sizes of which one is over budget.
    args = [
        "--smoke-test",
        "--name",
        "asha",
        "--set",
        "search.num_trials=5",
        "--set",
        "search.max_concurrent=1",
        "--set",
        "search.sampler=random",
        "--set",
        "search.seed=5",
        "--set",
        "base.train.epochs=4",
        "--set",
        "base.optim.warmup_epochs=0",
        "--set",
        "base.optim.min_lr=0",
        "--set",
        "search.grace_period=1",
        "--set",
        "search.reduction_factor=2",
        "--set",
        "search.max_params=60000",
        "--set",
        "space.optim.lr={type: choice, values: [0.004, 1.0e-7]}",
        "--set",
        "space.model.embed_dim={type: choice, values: [32, 96]}",
        "--set",
        "search.final.enabled=false",  # the search phase's stops are tested; the final phase is in test_final.py
        "--set",
        "search.register_model=false",  # the champion and the report: the smoke search's tests
        "--set",
        "search.report=false",
    ]
    assert finish(_search(tmp_path, *args)) == 0, (tmp_path / "search.log").read_text()
    study = _study(tmp_path, "asha")
    client, _, children = _runs(tmp_path, "asha")
    by_trial = {c.data.tags["trial_id"]: c for c in children}

    refused = [t for t in study.trials if t.user_attrs.get(M.STATUS) == "refused"]
    assert refused, "seed 5 proposes embed_dim 96 (over 60k parameters) at least once"
    for trial in refused:
        assert trial.state == TrialState.PRUNED and trial.constraints["params"] > 0
        assert RAY_TRIAL_ID not in trial.user_attrs and not trial.intermediate_values  # never trained

    ran = [t for t in study.trials if RAY_TRIAL_ID in t.user_attrs]
    assert len(ran) == 5 == len(children)
    pruned = [t for t in ran if t.state == TrialState.PRUNED]
    assert pruned, "seed 5 runs two learning trials (lr 0.004), then hopeless ones (lr 1e-7) that ASHA stops"
    for trial in pruned:
        child = by_trial[trial.user_attrs[RAY_TRIAL_ID]]
        assert child.data.tags[M.STATUS] == PRUNED
        stopped = trial.user_attrs["stopped_at_epoch"]
        assert stopped < 4 and sorted(trial.intermediate_values) == list(range(1, stopped + 1))
        assert epochs(client, child) == list(range(1, stopped + 1))
    for trial in ran:
        if trial.state == TrialState.COMPLETE:
            assert by_trial[trial.user_attrs[RAY_TRIAL_ID]].data.tags[M.STATUS] == COMPLETED
            assert sorted(trial.intermediate_values) == [1, 2, 3, 4]


def test_diverging_trials_are_recorded_not_crashes(tmp_path):
    import torch

    import t2t

    weights = t2t.create_model("t2t_vit_test", num_classes=10, in_chans=1).state_dict()
    weights["head.weight"].fill_(float("nan"))  # every step's loss is NaN
    torch.save(weights, tmp_path / "nan.pt")
    args = ["--smoke-test", "--name", "nan", "--set", f"base.model.pretrained={tmp_path}/nan.pt"]
    args += [f"--set=space.model.{key}={value}" for key, value in (("embed_dim", 32), ("depth", 2), ("token_dim", 16))]
    # the smoke space still varies the learning rate and drop_path_rate: three different trials, one architecture
    assert finish(_search(tmp_path, *args)) == 1  # nothing finished: not a success
    assert "no trial finished without diverging" in (tmp_path / "search.log").read_text()
    _, parents, children = _runs(tmp_path, "nan")
    assert parents[0].info.status == "FINISHED" and len(children) == 3
    for child in children:
        assert child.info.status == "FAILED" and child.data.tags[M.STATUS] == DIVERGED
        assert "loss became nan" in child.data.tags[M.REASON]
        assert M.VAL_ACC not in child.data.metrics  # nothing was measured: no 0.0 for the scheduler to rank
    assert all(t.state == TrialState.FAIL for t in _study(tmp_path, "nan").trials)
    assert (tmp_path / "ray_results" / "nan" / "report" / "report.md").is_file()
