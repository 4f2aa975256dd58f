"""The search's ASHA on a resume: a trial the study saw end is ended as the study recorded
(search.plugins.scheduler)."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from contract import metrics as M
from contract.status import COMPLETED, PRUNED
from search.plugins.scheduler import SettledASHA, settle


@pytest.fixture
def asha():
    scheduler = SettledASHA(time_attr=M.EPOCH, max_t=4, grace_period=1, reduction_factor=2)
    scheduler.set_search_properties(M.VAL_ACC, "max")
    yield scheduler
    settle({})


def _trial(asha, trial_id: str) -> Trial:
    trial = Trial("train", config={}, trial_id=trial_id, stub=True)
    asha.on_trial_add(None, trial)
    return trial


def _decide(asha, trial: Trial, epoch: int, acc: float) -> str:
    return asha.on_trial_result(None, trial, {M.EPOCH: epoch, M.VAL_ACC: acc})


def test_asha_alone_stops_the_worse_trial_at_the_first_rung(asha):
    good, bad = _trial(asha, "good"), _trial(asha, "bad")
    assert _decide(asha, good, 1, 0.9) == TrialScheduler.CONTINUE
    assert _decide(asha, bad, 1, 0.1) == TrialScheduler.STOP


def test_a_trial_the_study_saw_complete_is_never_stopped_early(asha):
    settle({"bad": (COMPLETED, 4)})
    good, bad = _trial(asha, "good"), _trial(asha, "bad")
    _decide(asha, good, 1, 0.9)
    assert [_decide(asha, bad, epoch, 0.1) for epoch in (1, 2, 3)] == [TrialScheduler.CONTINUE] * 3


def test_a_trial_the_study_saw_pruned_stops_at_that_epoch(asha):
    settle({"late": (PRUNED, 3)})
    late = _trial(asha, "late")
    assert [_decide(asha, late, epoch, 0.9) for epoch in (1, 2, 3)] == ["CONTINUE", "CONTINUE", "STOP"]
