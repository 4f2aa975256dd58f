"""A driver killed long after Tune's last experiment snapshot (search.experiment.resume): the trials started since are
orphans, the ones that ended since are settled by the study's record, and the resumed search tells one story
everywhere."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from contract import metrics as M
from contract.status import PRUNED
from search.study.searcher import RAY_TRIAL_ID, STOPPED_AT
from tests.processes import kill_session, wait_for
from tests.search.stores import assert_agree, epochs, finish, load_study, runs, search

pytestmark = pytest.mark.processes

ARGS = [
    "--smoke-test",
    "--name",
    "late",
    "--set",
    "search.num_trials=5",
    "--set",
    "search.max_concurrent=2",
    "--set",
    "base.train.epochs=4",
    "--set",
    "search.grace_period=1",
    "--set",
    "search.keep_checkpoints=10",  # no snapshot forced by checkpoints: only Tune's first one, before any trial ran
    "--set",
    "search.final.enabled=false",
]
NO_SNAPSHOT = {"TUNE_GLOBAL_CHECKPOINT_S": "100000"}


def test_a_driver_killed_after_trials_began_and_ended_since_the_snapshot_resumes_them_once(tmp_path):
    driver = search(tmp_path, *ARGS, env=NO_SNAPSHOT)
    experiment = tmp_path / "ray_results" / "late"

    def ended_and_running() -> bool:
        try:
            trials = load_study(experiment, "late").trials
        except Exception:  # not created yet
            return False
        ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        midway = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        return len(ended) >= 2 and bool(midway)

    try:
        wait_for(ended_and_running, 300, "two trials ended and one midway")
    finally:
        kill_session(driver)
    before = {t.user_attrs[RAY_TRIAL_ID]: t for t in load_study(experiment, "late").trials}

    resumed = search(tmp_path, *ARGS, "--resume", log="resume.log")
    assert finish(resumed) == 0, (tmp_path / "resume.log").read_text()
    assert "started after Tune's last snapshot" in (tmp_path / "resume.log").read_text()  # orphans were adopted

    study = load_study(experiment, "late")
    ray_ids = [t.user_attrs[RAY_TRIAL_ID] for t in study.trials]
    assert len(ray_ids) == len(set(ray_ids)) == 5  # each trial once: an orphan kept its id, none was asked anew
    for trial in study.trials:  # what the study recorded before the kill is what it says now
        old = before.get(trial.user_attrs[RAY_TRIAL_ID])
        if old is not None and old.state != TrialState.RUNNING:
            assert (trial.state, trial.user_attrs[M.STATUS]) == (old.state, old.user_attrs[M.STATUS])
    client, parents, children = runs(f"sqlite:///{tmp_path}/mlflow.db", "late")
    assert len(parents) == 1 and sorted(c.data.tags["trial_id"] for c in children) == sorted(ray_ids)
    by_run = {c.data.tags["trial_id"]: c for c in children}
    for trial in study.trials:  # a settled pruned trial stopped where the study says, in MLflow too
        if trial.user_attrs[M.STATUS] == PRUNED:
            stopped = trial.user_attrs[STOPPED_AT]
            assert epochs(client, by_run[trial.user_attrs[RAY_TRIAL_ID]]) == list(range(1, stopped + 1))
    assert_agree(tmp_path, "late")
