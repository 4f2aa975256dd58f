"""A search whose driver is SIGKILLed twice and resumed twice, read by every test of what a kill must not lose.

The first driver is killed long after Tune's last experiment snapshot (search.experiment.resume): trials began and
ended since, one is midway. Its resume finishes the search phase and is killed in turn while a final run is midway;
the second resume finishes the final phase. One chain of three drivers serves the tests below, each of which reads
the evidence kept at every kill (what MLflow and the study held then) and the stores at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from optuna.trial import TrialState

from contract import metrics as M
from contract.files import FINAL_EXPERIMENT, SEARCH_SUMMARY
from contract.status import COMPLETED, PRUNED
from contract.tracking import FINAL_SEED_TAG, FINAL_SOURCE_TAG, ROLE_FINAL
from search.study.searcher import RAY_TRIAL_ID, STOPPED_AT
from tests.processes import kill_session, wait_for
from tests.search.stores import assert_agree, epochs, finish, load_study, runs, search

pytestmark = pytest.mark.processes

NAME, EPOCHS, TRIALS = "killed", 4, 5
ARGS = [
    "--smoke-test", "--name", NAME,
    "--set", f"search.num_trials={TRIALS}",
    "--set", "search.max_concurrent=2",
    "--set", f"base.train.epochs={EPOCHS}",
    "--set", "search.grace_period=1",
    "--set", "search.keep_checkpoints=10",  # no snapshot forced by checkpoints: only Tune's first, before any trial
    "--set", "search.register_model=false", "--set", "search.report=false",  # read in the smoke search's tests
]  # fmt: skip
NO_SNAPSHOT = {"TUNE_GLOBAL_CHECKPOINT_S": "100000"}  # the first driver's Tune never snapshots again


@dataclass
class Killed:
    folder: Path
    study_at_first_kill: dict  # Ray trial id -> the study's trial when the first driver died
    open_runs_at_first_kill: int  # trial runs MLflow held RUNNING then
    open_finals_at_second_kill: int  # final runs MLflow held RUNNING when the second driver died

    @property
    def experiment(self) -> Path:
        return self.folder / "ray_results" / NAME

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.folder}/mlflow.db"

    def log(self, name: str) -> str:
        return (self.folder / name).read_text()


def _kill_when(driver, condition, timeout_s: float, what: str) -> None:
    try:
        wait_for(condition, timeout_s, what)
    finally:
        kill_session(driver)  # SIGKILL: no cleanup in the driver, the Ray it started goes too


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Killed:
    folder = tmp_path_factory.mktemp("killed")
    experiment = folder / "ray_results" / NAME

    def ended_and_running() -> bool:
        try:
            trials = load_study(experiment, NAME).trials
        except Exception:  # not created yet
            return False
        ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        midway = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        return len(ended) >= 2 and bool(midway)

    def a_final_run_is_midway() -> bool:
        return any(r.read_text().strip() for r in (experiment / FINAL_EXPERIMENT).glob("final_*/result.json"))

    _kill_when(search(folder, *ARGS, env=NO_SNAPSHOT), ended_and_running, 300, "two trials ended and one midway")
    study = {t.user_attrs[RAY_TRIAL_ID]: t for t in load_study(experiment, NAME).trials}
    open_runs = sum(c.info.status == "RUNNING" for c in runs(f"sqlite:///{folder}/mlflow.db", NAME)[2])

    _kill_when(search(folder, *ARGS, "--resume", log="resume.log"), a_final_run_is_midway, 300, "a final run")
    open_finals = sum(r.info.status == "RUNNING" for r in runs(f"sqlite:///{folder}/mlflow.db", NAME, ROLE_FINAL)[2])

    code = finish(search(folder, *ARGS, "--resume", log="resume2.log"))
    assert code == 0, (folder / "resume2.log").read_text()[-3000:]
    return Killed(folder, study, open_runs, open_finals)


def test_a_killed_driver_leaves_runs_open_and_the_resume_closes_them_adding_none(killed):
    assert killed.open_runs_at_first_kill >= 1  # the kill left a trial's run RUNNING...
    client, parents, children = runs(killed.uri, NAME)  # ...the resumes closed it, and added none
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    study = load_study(killed.experiment, NAME)
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(t.user_attrs[RAY_TRIAL_ID] for t in study.trials)
    by_run = {c.data.tags["trial_id"]: c for c in children}
    for trial in study.trials:  # every epoch once, up to where the trial ended: nothing lost, nothing logged twice
        child = by_run[trial.user_attrs[RAY_TRIAL_ID]]
        assert child.info.status == "FINISHED" and child.data.tags[M.STATUS] == trial.user_attrs[M.STATUS]
        last = trial.user_attrs[STOPPED_AT] if trial.user_attrs[M.STATUS] == PRUNED else EPOCHS
        assert epochs(client, child) == list(range(1, last + 1))
    assert_agree(killed.folder, NAME)  # Tune's own history has no repeats either, and the three stores agree


def test_trials_begun_and_ended_since_the_snapshot_are_resumed_once(killed):
    assert "started after Tune's last snapshot" in killed.log("resume.log")  # orphans were adopted
    study = load_study(killed.experiment, NAME)
    ray_ids = [t.user_attrs[RAY_TRIAL_ID] for t in study.trials]
    assert len(ray_ids) == len(set(ray_ids)) == TRIALS  # each trial once: an orphan kept its id, none was asked anew
    for trial in study.trials:  # what the study recorded before the kill is what it says now
        old = killed.study_at_first_kill.get(trial.user_attrs[RAY_TRIAL_ID])
        if old is not None and old.state != TrialState.RUNNING:
            assert (trial.state, trial.user_attrs[M.STATUS]) == (old.state, old.user_attrs[M.STATUS])
    ended = [t for t in killed.study_at_first_kill.values() if t.state != TrialState.RUNNING]
    assert len(ended) >= 2  # the kill came after trials ended that Tune's snapshot had not seen


def test_a_driver_killed_in_the_final_phase_resumes_it_without_duplicates(killed):
    assert killed.open_finals_at_second_kill >= 1
    client, parents, finals = runs(killed.uri, NAME, ROLE_FINAL)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    sources = {r.data.tags[FINAL_SOURCE_TAG] for r in finals}
    pairs = [(r.data.tags[FINAL_SOURCE_TAG], r.data.tags[FINAL_SEED_TAG]) for r in finals]
    assert len(pairs) == len(set(pairs)) == 2 * len(sources)  # each configuration and seed once
    for run in finals:
        assert run.info.status == "FINISHED" and run.data.tags[M.STATUS] == COMPLETED
        assert epochs(client, run) == list(range(1, EPOCHS + 1))
    trials = {c.data.tags["trial_id"] for c in runs(killed.uri, NAME)[2]}
    assert sources <= trials  # the resumed search's choice, among its own trials
    summary = json.loads((killed.experiment / SEARCH_SUMMARY).read_text())
    assert summary["final"]["winner"] in sources
