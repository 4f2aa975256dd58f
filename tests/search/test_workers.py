"""A search whose trials each train on two processes (search.workers_per_trial, DDP over gloo): searched, stopped by
ASHA, retrained in the final phase and tracked like one-process trials. That a two-process trial trains as one
process does is tests/trainables/test_ranks.py's and test_trial_ranks.py's."""

from __future__ import annotations

import pytest
from ray.tune import ExperimentAnalysis

from contract.status import COMPLETED, PRUNED
from tests.search.stores import assert_agree, assert_final_agrees, finish, search

pytestmark = pytest.mark.processes
NAME = "workers"
# 4 trials of 4 epochs, two workers of 1 CPU each: one trial at a time on the local Ray's 2 CPUs; ASHA from epoch 1
ARGS = ["--smoke-test", "--name", NAME]
for _item in ("search.workers_per_trial=2", "search.cpus_per_trial=2", "search.num_trials=4", "base.train.epochs=4",
              "search.grace_period=1", "search.register_model=false", "search.report=false"):  # fmt: skip
    ARGS += ["--set", _item]


def test_two_process_trials_are_searched_stopped_and_retrained_like_any(tmp_path):
    assert finish(search(tmp_path, *ARGS), timeout_s=420) == 0, (tmp_path / "search.log").read_text()[-3000:]
    experiment = tmp_path / "ray_results" / NAME
    story = assert_agree(tmp_path, NAME)  # Tune, the study and MLflow: the same trials, statuses and epochs
    # one trial at a time, seeded (search.seed 0): ASHA stops the same trial at its second epoch every run
    assert len(story) == 4 and set(story.values()) == {COMPLETED, PRUNED}
    assert_final_agrees(experiment / "final", f"sqlite:///{tmp_path}/mlflow.db", NAME)
    for folder in (experiment, experiment / "final"):  # Tune reserved two 1-CPU bundles for every trial
        trials = ExperimentAnalysis(str(folder)).trials
        assert trials and all(t.placement_group_factory.bundles == [{"CPU": 1.0}] * 2 for t in trials)
