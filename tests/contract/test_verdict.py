"""The final phase's verdict (contract.final) says what happened, truly, in each outcome; its numbers say which split
they are from, how many runs completed, and what their intervals cover. Rows are constructed: each run's per-image
hits on a 400-image test set, its accuracy their mean (tests.contract.final_rows)."""

from __future__ import annotations

import pytest

from contract.final import BASELINE, HITS, SEED, SOURCE, FinalResult, summarize
from contract.metrics import STATUS, TEST_ACC, VAL_ACC
from contract.status import COMPLETED, DIVERGED, FAILED, PRUNED
from tests.contract.final_rows import runs

FAILED_RETRAINS = "no final run of the baseline, trial base, completed with a number on test (3 failed)"


def test_the_searchs_pick_beating_the_baseline_is_said_so():
    r = summarize(runs("pick", 0.95, 0.95) + runs("base", 0.80, 0.75, baseline=True), baseline_status=COMPLETED)
    assert r.pick == r.winner == "pick" and r.gains["pick"].distinguishable
    assert r.verdict().startswith("the search's pick, trial pick, is better than the baseline on test (+")
    assert "over seeds and images)" in r.verdict() and r.verdict().endswith("the pick also won the final phase on val")


def test_the_baseline_winning_the_final_phase_is_said_so_with_the_picks_gain():
    """The search's best loses on retraining: the summary must not call it the baseline, and must give its gain,
    which is not conditioned on the final phase's val."""
    r = summarize(runs("best", 0.80, 0.80) + runs("base", 0.92, 0.925, baseline=True), baseline_status=PRUNED)
    assert r.winner == r.baseline == "base" and r.pick == "best"
    assert r.gains["best"].mean < 0 and r.gain is None  # the winner is the baseline: no winner's gain
    assert r.verdict() == (
        f"the search's pick, trial best, is worse than the baseline on test ({100 * r.gains['best'].mean:+.2f} points; "
        f"95% interval {100 * r.gains['best'].interval[0]:+.2f} to {100 * r.gains['best'].interval[1]:+.2f} over "
        "seeds and images); the baseline won the final phase on val: no configuration of the search beat it there"
    )
    assert "baseline's own" not in r.verdict()
    again = FinalResult.from_dict(r.to_dict())
    assert again.verdict() == r.verdict() and r.to_dict()["pick"] == "best" and "best" in r.to_dict()["gains"]
    assert r.metrics()["pick_gain_mean"] == r.gains["best"].mean and "final_gain_mean" not in r.metrics()


def test_the_searchs_best_being_the_baseline_is_said_so_with_its_best_other_configuration():
    r = summarize(runs("base", 0.90, 0.92, baseline=True) + runs("next", 0.50, 0.40), baseline_status=COMPLETED)
    assert r.winner == "base" and r.pick == "next" and r.gains["next"].distinguishable
    assert r.verdict().startswith(
        "the search's best configuration was the baseline's own (it found nothing better on val); its best other "
        "configuration, trial next, is worse than the baseline on test"
    )
    alone = summarize(runs("base", 0.90, 0.92, baseline=True), baseline_status=COMPLETED)
    assert alone.pick is None
    assert alone.verdict().startswith("the search's best configuration was the baseline's own (it found nothing "
                                      "better on val): no other configuration was retrained")  # fmt: skip


def test_a_pick_whose_runs_all_failed_is_not_called_the_baseline():
    rows = runs("best", 0.0, 0.0, ends=(FAILED,) * 3) + runs("base", 0.90, 0.92, baseline=True)
    r = summarize(rows, "test", PRUNED)
    assert r.failed == ["best"] and r.winner == "base" and r.runs["best"] == {FAILED: 3}
    assert r.verdict() == (
        "the search's pick, trial best: no final run of it completed with a number on test (3 failed); the baseline "
        "won the final phase on val: no configuration of the search beat it there"
    )
    assert FinalResult.from_dict(r.to_dict()).verdict() == r.verdict()  # as the summary file keeps it


def test_a_candidate_that_diverged_on_some_seeds_cannot_win_on_its_survivor():
    lucky = runs("lucky", 0.99, 0.97, ends=(COMPLETED, DIVERGED, DIVERGED))
    r = summarize(lucky + runs("steady", 0.90, 0.90) + runs("base", 0.85, 0.85, baseline=True), "test", COMPLETED)
    assert r.winner == "steady" and r.pick == "lucky"
    c = r.candidate("lucky")
    assert not r.complete("lucky") and r.runs["lucky"] == {COMPLETED: 1, DIVERGED: 2} and c.measured.n == 1
    assert r.flag("lucky") == "2 diverged of its 3 runs (left out of its numbers)" and r.flag("steady") is None
    assert r.metrics()["final_runs_diverged"] == 2 and r.tags()["final.runs"].startswith("lucky: 1 completed, 2 div")
    assert "fewer than 2 completed runs on a side" in r.verdict()
    assert r.compared == 2  # two candidates against the baseline: the summary says they are unadjusted
    alone = summarize(lucky + runs("base", 0.85, 0.85, baseline=True, ends=(COMPLETED, FAILED, FAILED)))
    assert alone.winner == "lucky"  # no candidate completed every run: the best of those with a run, flagged
    assert alone.verdict().endswith("no candidate completed every run: the winner has 2 diverged of its 3 runs "
                                    "(left out of its numbers)")  # fmt: skip


def test_equal_numbers_on_every_seed_are_not_called_better():
    """Every seed scores the same on both sides: no seed interval. Without the per-image hits nothing can tell the
    two apart; with them, the images' own error does."""
    rows = [
        {SOURCE: s, SEED: seed, BASELINE: s == "base", STATUS: COMPLETED, VAL_ACC: v, TEST_ACC: t}
        for s, v, t in (("pick", 0.9, 0.9025), ("base", 0.8, 0.9)) for seed in (1, 2, 3)
    ]  # fmt: skip
    r = summarize(rows, baseline_status=COMPLETED)
    assert r.gains["pick"].interval is None and "excludes" not in r.verdict() and "better" not in r.verdict()
    assert "cannot be told apart from the baseline on test (+0.25 points; no spread over seeds on either side" in (
        r.verdict()
    )


@pytest.mark.parametrize(
    ("baseline_status", "rows_of_baseline", "reason"),
    [
        (None, [], "no baseline was retrained (search.baseline off)"),
        (DIVERGED, [], "the baseline diverged in the search, so it was not retrained"),
        (FAILED, [], "the baseline failed in the search, so it was not retrained"),
        (COMPLETED, runs("base", 0, 0, True, ends=(FAILED,) * 3), FAILED_RETRAINS),
    ],
)
def test_a_missing_baseline_gives_its_true_reason(baseline_status, rows_of_baseline, reason):
    r = summarize(runs("pick", 0.9, 0.9) + rows_of_baseline, baseline_status=baseline_status)
    assert r.verdict() == f"{reason}: nothing to compare the winner, trial pick, with"
    assert not r.gains


def test_no_completed_run_at_all_is_said_so():
    r = summarize(runs("pick", 0.9, 0.9, ends=(FAILED,) * 3))
    assert r.winner is None and r.verdict() == "no final run completed with a number on test: nothing was measured"
    no_number = summarize([{**row, "status": COMPLETED, TEST_ACC: None} for row in runs("p", 0.9, 0.9)])
    assert no_number.verdict() == r.verdict() and no_number.ends("p") == "3 completed"


def test_a_baseline_with_no_completed_run_keeps_its_role():
    r = summarize(runs("base", 0.9, 0.9, True, ends=(FAILED,) * 3) + runs("p", 0.8, 0.8, ends=(FAILED,) * 3))
    assert r.baseline == "base" and r.pick == "p" and r.roles("base") == ["baseline"]


def test_a_candidate_above_the_baseline_that_could_not_win_is_named():
    lucky = runs("lucky", 0.99, 0.97, ends=(COMPLETED, DIVERGED, DIVERGED))
    r = summarize(lucky + runs("base", 0.85, 0.85, baseline=True), "test", COMPLETED)
    assert r.winner == "base"
    assert r.verdict().endswith(
        "the baseline won the final phase on val among the candidates whose runs all "
        "completed (trial lucky scored higher on val, but not every run of it completed)"
    )


def test_runs_on_other_images_are_not_paired():
    """Hits of another split (another digest of the images) are not compared image by image."""
    rows = runs("p", 0.95, 0.95) + runs("base", 0.8, 0.75, baseline=True)
    for row in rows[3:]:
        count, _, bits = row[HITS].split(":")
        row[HITS] = f"{count}:{'0' * 16}:{bits}"
    g = summarize(rows).gains["p"]
    assert g.paired_low is None and g.items is None and g.low is not None


def test_a_winner_chosen_among_several_has_an_optimistic_gain_and_says_so():
    rows = runs("pick", 0.90, 0.90) + runs("second", 0.95, 0.93) + runs("base", 0.8, 0.8, baseline=True)
    r = summarize(rows, "test", COMPLETED)
    assert r.winner == "second" and r.pick == "pick" and r.compared == 2
    assert "chosen on val among 3 candidates, its gain is optimistic, the pick's is not" in r.verdict()


def test_val_numbers_are_named_val_everywhere():
    """An image folder without test/: the final runs have no test_acc; their last val is what they are measured by."""
    rows = [{k: v for k, v in row.items() if k != TEST_ACC} for row in runs("pick", 0.9, 0.9)]
    rows += [{k: v for k, v in row.items() if k != TEST_ACC} for row in runs("base", 0.8, 0.8, baseline=True)]
    r = summarize(rows, "val", COMPLETED)
    assert r.split == "val" and r.candidate("pick").measured.mean == pytest.approx(0.9 + 0.002)
    assert " on val " in r.verdict() and "test" not in r.verdict()
    assert not [k for k in r.metrics() if "test" in k] and "final_val_acc_mean" in r.metrics()
    assert r.tags()["final.split"] == "val" and "test" not in str(r.tags())


def test_a_summary_written_before_the_split_and_the_pick_reads_back():
    """search_summary.json of an earlier version: ``test`` estimates and one winner's ``gain``."""
    old = {
        "candidates": [
            {"source": "a", "baseline": False, "seeds": [1, 2], "test": {"mean": 0.9, "std": 0.01, "n": 2,
             "low": 0.8, "high": 1.0}, "val": {"mean": 0.9, "std": 0.0, "n": 2, "low": 0.9, "high": 0.9}},
            {"source": "b", "baseline": True, "seeds": [1, 2], "test": {"mean": 0.8, "std": 0.01, "n": 2,
             "low": 0.7, "high": 0.9}, "val": {"mean": 0.8, "std": 0.0, "n": 2, "low": 0.8, "high": 0.8}},
        ],
        "winner": "a", "baseline": "b", "gain": {"mean": 0.1, "low": 0.05, "high": 0.15},
        "failed": [], "ranked": ["a", "b"],
    }  # fmt: skip
    r = FinalResult.from_dict(old)
    assert r.split == "test" and r.candidate("a").measured.mean == 0.9 and r.gain.mean == 0.1
    assert r.verdict().startswith("the search's pick, trial a, is better than the baseline on test (+10.00 points")
