"""A search whose trials each train on two processes (search.workers_per_trial, DDP over gloo): searched, stopped by
ASHA, its driver killed and resumed, retrained in the final phase and tracked like one-process trials. That a
two-process trial trains as one process does is tests/trainables/test_ranks.py's and test_trial_ranks.py's."""

from __future__ import annotations

import re

import pytest
from ray.tune import ExperimentAnalysis

from contract.status import COMPLETED, PRUNED
from tests.processes import kill_session, wait_for
from tests.search.stores import assert_agree, assert_final_agrees, finish, search

pytestmark = pytest.mark.processes
NAME = "workers"
# 4 trials of 4 epochs, two workers of 1 CPU each: one trial at a time on the local Ray's 2 CPUs; ASHA from epoch 1
ARGS = ["--smoke-test", "--name", NAME]
for _item in ("search.workers_per_trial=2", "search.cpus_per_trial=2", "search.num_trials=4", "base.train.epochs=4",
              "search.grace_period=1", "search.register_model=false", "search.report=false"):  # fmt: skip
    ARGS += ["--set", _item]


def test_two_process_trials_are_searched_stopped_killed_resumed_and_retrained_like_any(tmp_path):
    experiment = tmp_path / "ray_results" / NAME
    driver = search(tmp_path, *ARGS)
    ended = re.compile(r"trial \w+ (completed|pruned) at epoch")

    def a_trial_ended() -> bool:
        return bool(ended.search((tmp_path / "search.log").read_text()))

    try:  # the driver is SIGKILLed (its Ray and every trial's processes with it) once a trial has ended
        wait_for(a_trial_ended, 300, "a trial's end")
    finally:
        kill_session(driver)
    resumed = search(tmp_path, "--name", NAME, "--resume", log="resume.log")
    assert finish(resumed, timeout_s=420) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    story = assert_agree(tmp_path, NAME)  # Tune, the study and MLflow: the same trials, statuses and epochs
    # one trial at a time, seeded (search.seed 0): ASHA stops the same trial at its second epoch every run
    assert len(story) == 4 and set(story.values()) == {COMPLETED, PRUNED}
    assert_final_agrees(experiment / "final", f"sqlite:///{tmp_path}/mlflow.db", NAME)
    for folder in (experiment, experiment / "final"):  # Tune reserved two 1-CPU bundles for every trial
        trials = ExperimentAnalysis(str(folder)).trials
        assert trials and all(t.placement_group_factory.bundles == [{"CPU": 1.0}] * 2 for t in trials)
