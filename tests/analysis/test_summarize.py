"""The report's summaries on a hand-made experiment whose answers are known."""

from __future__ import annotations

import math

import pytest

from analysis import sections
from analysis import summarize as S
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, PRUNED
from tests.analysis.hand_made import hand_made


def test_leaderboard_orders_by_accuracy_and_shows_the_searched_parameters():
    board = S.leaderboard(hand_made(), k=3)
    assert board["trial_id"].tolist() == ["d", "a", "b"]
    assert {"model.depth", "optim.lr"} <= set(board.columns)


def test_best_config_is_nested_sections():
    assert S.best_config(hand_made()) == {"model": {"depth": 4}, "optim": {"lr": 0.002}}


def test_best_trial_prefers_completed_as_the_search_summary_does():
    exp = hand_made()
    assert S.leaderboard(exp, 1)["trial_id"].item() == "d"  # pruned at epoch 4 with 0.97: tops the board
    assert S.best_trial(exp)["trial_id"] == "a"  # but the recommendation is the best completed trial
    exp.trials = exp.trials[exp.trials[M.STATUS] != COMPLETED]
    assert S.best_trial(exp)["trial_id"] == "d"  # no completed trial: the best pruned one
    exp.trials = exp.trials[exp.trials[M.STATUS] == DIVERGED]
    assert S.best_trial(exp) is None  # a diverged trial is never recommended
    assert S.best_config(exp) is None


def test_pareto_front_keeps_only_the_non_dominated_completed_trials():
    exp = hand_made()
    # d (pruned, 0.97) and e (diverged, 0.10 at 3 MMACs) would each be on a front of every trial
    assert S.pareto_front(exp.trials, M.MACS)["trial_id"].tolist() == ["b", "a"]
    assert S.pareto_front(exp.trials, M.PARAMS)["trial_id"].tolist() == ["b", "a"]  # f is dominated by b


def test_lower_bounds_are_the_pruned_trials_labelled_by_their_epoch():
    bounds = S.lower_bounds(hand_made().trials, M.MACS)
    assert bounds[["trial_id", "bound"]].values.tolist() == [
        ["c", "pruned: lower bound at epoch 2"],
        ["d", "pruned: lower bound at epoch 4"],
    ]


def test_rung_counts_and_asha_rungs():
    exp = hand_made()
    table = S.rung_counts(exp).set_index("stopped_at_epoch")
    assert table.loc[2, PRUNED] == 1 and table.loc[4, PRUNED] == 1 and table.loc[6, COMPLETED] == 3
    assert table.loc[1, DIVERGED] == 1
    assert S.asha_rungs(exp) == [2, 4]


def test_cost_accounts_for_every_trial_second():
    c = S.cost(hand_made())
    assert c["trial_time_s"] == 10.0 * (6 + 6 + 2 + 4 + 1 + 6)
    assert c["pruned_trial_time_s"] == 10.0 * (2 + 4)
    assert c["time_to_best_s"] == 10.0 * (6 + 6 + 2 + 4)  # d's last epoch
    assert c["gpu_hours"] == pytest.approx(250 * 0.5 / 3600)


def test_gpu_use_is_weighted_by_epoch_time_per_trial_and_in_total():
    exp = hand_made()
    assert math.isnan(S.cost(exp)["gpu_utilization_percentage"]) and S.gpu_by_trial(exp).empty  # never measured
    hist = exp.history
    hist[M.GPU_UTILIZATION] = hist["trial_id"].map({"a": 80.0, "b": 40.0})  # the others: not measured
    hist[M.GPU_MEMORY_PEAK] = hist["trial_id"].map({"a": 900.0, "b": 1500.0})
    hist.loc[hist["trial_id"] == "b", M.EPOCH_TIME_S] = 30.0  # b's epochs took three times a's
    c = S.cost(exp)
    assert c["gpu_utilization_percentage"] == pytest.approx((80 * 60 + 40 * 180) / 240)
    assert c["gpu_idle_share"] == pytest.approx(1 - c["gpu_utilization_percentage"] / 100)
    assert c["gpu_memory_peak_megabytes"] == 1500.0
    by_trial = S.gpu_by_trial(exp).set_index("trial_id")
    assert list(by_trial.index) == ["a", "b"] and by_trial.loc["b", "gpu_hours"] == pytest.approx(180 * 0.5 / 3600)
    assert by_trial.loc["a", "gpu_idle_share"] == pytest.approx(0.2)
    text = sections.cost(exp).text
    assert "busy 50% of the trials' time (idle 50%" in text and "at most 1500 MB" in text


def test_failures_name_the_reason():
    bad = S.failures(hand_made())
    assert bad.to_dict("records") == [{"trial_id": "e", M.STATUS: DIVERGED, M.REASON: "loss became nan", "epochs": 1}]


def test_importance_uses_optuna_at_one_epoch_and_names_it():
    imp = S.importance(hand_made())
    assert set(imp.scores) == {"model.depth", "optim.lr"}
    assert sum(imp.scores.values()) == pytest.approx(1.0)
    assert (imp.fidelity.epoch, imp.fidelity.trials) == (2, 5)  # a, b, c, d, f reached epoch 2; e diverged at 1
    assert imp.note.startswith("fANOVA")
    assert "val_acc at epoch 2 of 5 trials, 2 of them pruned at or after it" in imp.note


def test_importance_needs_enough_trials():
    exp = hand_made()
    exp.trials = exp.trials.head(2)
    imp = S.importance(exp)
    assert imp.scores == {} and imp.note == "not computed: needs 5 trials with a val_acc at one epoch, has 2"
    completed = S.importance(hand_made(), completed_only=True)  # a, b, f
    assert completed.scores == {}
    assert completed.note == "not computed: needs 5 completed trials with a val_acc at one epoch, has 3"


def test_baseline_trial_is_marked_when_the_search_had_one():
    exp = hand_made()
    assert S.baseline_trial(exp) is None and "baseline" not in S.leaderboard(exp).columns
    exp.trials["baseline"] = exp.trials["trial_id"] == "b"
    assert S.baseline_trial(exp)["trial_id"] == "b"
    board = S.leaderboard(exp)
    assert board.loc[board["trial_id"] == "b", "baseline"].item() and board["baseline"].sum() == 1
    assert "baseline" not in S.searched_params(exp)
