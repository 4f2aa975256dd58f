"""The final phase's one sentence (contract.final.FinalResult.verdict) says what happened in each outcome."""

from __future__ import annotations

from contract.final import BASELINE, SEED, SOURCE, FinalResult, summarize
from contract.metrics import STATUS, TEST_ACC, VAL_ACC
from contract.status import COMPLETED, FAILED


def _rows(source: str, val: float, test: float, baseline: bool = False, status: str = COMPLETED) -> list[dict]:
    return [
        {SOURCE: source, SEED: seed, BASELINE: baseline, STATUS: status, VAL_ACC: val + seed / 100, TEST_ACC: test}
        for seed in (1, 2, 3)
    ]


def test_the_baseline_beating_the_searchs_best_on_retraining_is_said_so():
    result = summarize(_rows("best", 0.80, 0.85) + _rows("base", 0.90, 0.92, baseline=True))
    assert result.winner == result.baseline == "base"
    assert result.verdict() == "the baseline won the final phase: the search's best did not hold up on retraining"


def test_the_searchs_best_being_the_baseline_is_said_so():
    result = summarize(_rows("base", 0.90, 0.92, baseline=True))
    assert result.verdict() == "the search's best configuration is the baseline's own"
    second = summarize(_rows("base", 0.90, 0.92, baseline=True) + _rows("next", 0.80, 0.85))  # top_k 2
    assert second.winner == "base" and second.verdict() == "the search's best configuration is the baseline's own"


def test_a_best_whose_runs_all_failed_is_not_called_the_baseline():
    result = summarize(_rows("best", 0.0, 0.0, status=FAILED) + _rows("base", 0.90, 0.92, baseline=True))
    assert result.failed == ["best"] and result.winner == "base"
    assert result.verdict() == "every final run of the search's best failed: the baseline won by default"
    assert FinalResult.from_dict(result.to_dict()).verdict() == result.verdict()  # as the summary file keeps it
