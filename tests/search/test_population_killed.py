"""A population-based search whose driver is SIGKILLed once members have started copying, then resumed: Tune and
MLflow tell the same story, every member's run ends, its last epochs are those its weights' schedule says, and the
final phase runs on the schedules the members' checkpoints hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contract import metrics as M
from contract import schedule as S
from contract.files import SCHEDULE_FILE, SEARCH_SUMMARY
from contract.status import COMPLETED
from contract.tracking import TRIAL_ID_TAG
from tests.processes import kill_session, wait_for
from tests.search.stores import assert_final_agrees, finish, mlflow_story, runs, search, tune_story

pytestmark = pytest.mark.processes

NAME = "pkilled"
# no registered champion and no report: read in the smoke search's and tests/search/test_population.py
ARGS = ["--smoke-test", "--set", "search.mode=pbt", "--name", NAME, "--set", "search.register_model=false",
        "--set", "search.report=false"]  # fmt: skip


def _reported(experiment: Path) -> int:
    """Results written to the members' result.json files so far."""
    return sum(len(p.read_text().splitlines()) for p in experiment.glob("trial_*/result.json"))


def test_a_killed_population_resumes_and_the_stores_agree(tmp_path: Path):
    experiment = tmp_path / "ray_results" / NAME
    driver = search(tmp_path, *ARGS)
    try:  # members in their second epoch: each has perturbed once, some have copied another
        wait_for(lambda: _reported(experiment) >= 5, 300, "five results of the population")
    finally:
        kill_session(driver)
    assert finish(search(tmp_path, *ARGS, "--resume", log="resume.log")) == 0, (tmp_path / "resume.log").read_text()

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tune, mlflow = tune_story(experiment), mlflow_story(uri, NAME)
    assert tune == mlflow and sorted(tune.values()) == [COMPLETED] * 4, {"tune": tune, "mlflow": mlflow}
    client, _, members = runs(uri, NAME)
    for run in members:
        trial_id = run.data.tags[TRIAL_ID_TAG]
        path = client.download_artifacts(run.info.run_id, SCHEDULE_FILE, str(tmp_path / trial_id))
        schedule = S.from_artifact(json.loads(Path(path).read_text()))
        last = max((experiment / f"trial_{trial_id}").glob("checkpoint_*"), key=lambda p: p.stat().st_mtime)
        assert torch.load(last / "checkpoint.pt", weights_only=True)["schedule"] == schedule
        latest = {}
        for m in sorted(client.get_metric_history(run.info.run_id, M.VAL_ACC), key=lambda m: m.timestamp):
            latest[m.step] = m.value
        assert sorted(latest) == [1, 2, 3], (trial_id, latest)
        lr = {}
        for m in sorted(client.get_metric_history(run.info.run_id, "hp/optim.lr"), key=lambda m: m.timestamp):
            lr[m.step] = m.value
        start = schedule[-1]["epoch"]  # the epochs since its last copy: this member's, with the schedule's values
        assert [lr[e] for e in range(start + 1, 4)] == pytest.approx(
            [S.value(S.config_at(schedule, e), "optim.lr") for e in range(start + 1, 4)]
        )
    for result in experiment.glob("trial_*/result.json"):
        steps = [json.loads(line)[M.EPOCH] for line in result.read_text().splitlines() if line.strip()]
        assert steps == sorted(set(steps)), f"{result}: {steps}"
    assert_final_agrees(experiment / "final", uri, NAME)
    summary = json.loads((experiment / SEARCH_SUMMARY).read_text())
    assert summary["final"]["baseline"] == "base_config" and summary["trials_completed"] == 4
