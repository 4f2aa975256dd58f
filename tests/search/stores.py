"""A search as its three stores tell it: Tune's experiment folder, the Optuna study and MLflow, and the check that
they tell the same story (the same trials with the same statuses, no run left RUNNING, every epoch once)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from contract import metrics as M
from contract.files import FINAL_EXPERIMENT
from contract.status import COMPLETED, INTERRUPTED, NOT_STARTED, trial_status
from contract.tracking import PARENT_RUN_TAG, ROLE_FINAL, ROLE_TAG, ROLE_TRIAL, TRIAL_ID_TAG
from search.study.searcher import RAY_TRIAL_ID
from search.study.storage import open_storage, study_location
from tests.processes import kill_session, migrated_store, spawn

ROOT = Path(__file__).resolve().parents[2]
TEST_PREFIX = M.TEST_ACC.split("_")[0] + "_"  # test_acc, test_loss, test_acc5
RESUMABLE = "resumable"  # a trial that a --resume continues (Tune: unfinished; study: RUNNING; MLflow: interrupted)


def search(folder: Path, *args: str, log: str = "search.log", env: dict | None = None):
    """``python -m search.run ARGS`` in ``folder`` as a subprocess in its own session (stop it with ``finish``)."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    if "MLFLOW_TRACKING_URI" not in env:
        env["MLFLOW_TRACKING_URI"] = migrated_store(folder)
    return spawn([sys.executable, "-m", "search.run", *args], folder / log, cwd=folder, env=env)


def finish(proc, timeout_s: float = 300) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    finally:
        kill_session(proc)


def runs(uri: str, name: str, role: str = ROLE_TRIAL):
    """The client, the parent runs and the child runs of ``role`` (the search's trials, or the final phase's) of
    MLflow experiment ``name``."""
    client = MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return (
        client,
        [r for r in found if PARENT_RUN_TAG not in r.data.tags],
        [r for r in found if PARENT_RUN_TAG in r.data.tags and r.data.tags.get(ROLE_TAG, ROLE_TRIAL) == role],
    )


def epochs(client, run) -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, M.VAL_ACC)]


def tune_story(experiment: Path) -> dict[str, str]:
    """Trial id -> status, for the trials that reported at least one result, from Tune's own state."""
    from ray.tune import ExperimentAnalysis

    story = {}
    for trial in ExperimentAnalysis(str(experiment.resolve())).trials:
        lines = _result_lines(experiment / f"trial_{trial.trial_id}" / "result.json")
        last = json.loads(lines[-1]) if lines else None
        if last is None and trial.status != "ERROR":
            continue  # never reported: not started, or stopped before its first epoch (then resumable)
        if trial.status in ("TERMINATED", "ERROR"):
            story[trial.trial_id] = trial_status(last, error=trial.status == "ERROR")
        else:
            story[trial.trial_id] = RESUMABLE
    return story


def _result_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def load_study(location: str | Path, name: str) -> optuna.Study:
    """The study at ``location``: a search's results folder (its journal), a journal file or an RDB URL."""
    location = study_location(Path(location)) if Path(str(location)).is_dir() else str(location)
    return optuna.load_study(study_name=name, storage=open_storage(location))


def study_story(storage: str | Path, name: str) -> dict[str, str]:
    study = load_study(storage, name)
    story = {}
    for trial in study.trials:
        ray_id = trial.user_attrs.get(RAY_TRIAL_ID)
        if ray_id is None or trial.user_attrs.get(M.STATUS) == NOT_STARTED:
            continue
        if trial.state == TrialState.RUNNING:
            if trial.intermediate_values:
                story[ray_id] = RESUMABLE
        else:
            story[ray_id] = trial.user_attrs[M.STATUS]
    return story


def mlflow_story(uri: str, name: str, role: str = ROLE_TRIAL) -> dict[str, str]:
    client, _, children = runs(uri, name, role)
    assert all(c.info.status != "RUNNING" for c in children), [c.data.tags for c in children]
    story = {}
    for child in children:
        status = child.data.tags[M.STATUS]
        if status == NOT_STARTED:
            continue
        if status != INTERRUPTED:
            story[child.data.tags[TRIAL_ID_TAG]] = status
        elif epochs(client, child):  # interrupted before its first epoch: no trial the other stores count yet
            story[child.data.tags[TRIAL_ID_TAG]] = RESUMABLE
    return story


def assert_agree(folder: Path, name: str, study_storage: str | None = None, uri: str | None = None) -> dict[str, str]:
    """Tune, the study and MLflow name the same trials with the same statuses; each trial's epochs are logged
    once each, from 1 up, in MLflow and in Tune's result.json. Returns the story."""
    experiment = folder / "ray_results" / name
    uri = uri or f"sqlite:///{folder}/mlflow.db"
    tune = tune_story(experiment)
    study = study_story(study_storage or experiment, name)
    mlflow = mlflow_story(uri, name)
    assert tune == study == mlflow, {"tune": tune, "study": study, "mlflow": mlflow}
    client, _, children = runs(uri, name)
    for child in children:
        steps = epochs(client, child)
        assert steps == list(range(1, len(steps) + 1)), (child.data.tags[TRIAL_ID_TAG], steps)
    for child in children:  # the test split is the final phase's alone
        assert not any(k.startswith(TEST_PREFIX) for k in child.data.metrics), child.data.metrics
    for result in experiment.glob("trial_*/result.json"):
        steps = [json.loads(line)[M.EPOCH] for line in result.read_text().splitlines() if line.strip()]
        assert steps == sorted(set(steps)), f"{result}: {steps}"
    if (experiment / FINAL_EXPERIMENT).is_dir():
        assert_final_agrees(experiment / FINAL_EXPERIMENT, uri, name)
    return tune


def assert_final_agrees(final: Path, uri: str, name: str) -> None:
    """The final phase: Tune's final experiment and MLflow's final runs name the same trials with the same
    statuses, each epoch once, and a finished run has its test numbers once, at its last epoch."""
    from ray.tune import ExperimentAnalysis

    tune = {}
    for trial in ExperimentAnalysis(str(final.resolve())).trials:
        last = trial.last_result if trial.last_result and M.EPOCH in trial.last_result else None
        if trial.status in ("TERMINATED", "ERROR"):
            tune[trial.trial_id] = trial_status(last or {}, error=trial.status == "ERROR")
        elif last is not None:
            tune[trial.trial_id] = RESUMABLE
    mlflow = mlflow_story(uri, name, ROLE_FINAL)
    assert tune == mlflow, {"tune": tune, "mlflow": mlflow}
    client, _, finals = runs(uri, name, ROLE_FINAL)
    for run in finals:
        steps = epochs(client, run)
        assert steps == list(range(1, len(steps) + 1)), steps
        tests = [m.step for m in client.get_metric_history(run.info.run_id, M.TEST_ACC)]
        assert tests == ([steps[-1]] if run.data.tags[M.STATUS] == COMPLETED else []), (tests, steps)
