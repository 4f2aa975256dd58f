"""The report's summaries on a hand-made experiment whose answers are known."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import summarize as S
from analysis.load import Experiment
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, PRUNED

# trial, status, best acc, macs, params, epochs, depth, lr
TRIALS = [
    ("a", COMPLETED, 0.95, 9e6, 3e5, 6, 4, 0.002),
    ("b", COMPLETED, 0.90, 4e6, 2e5, 6, 2, 0.003),
    ("c", PRUNED, 0.60, 5e6, 2.5e5, 2, 3, 0.0005),  # dominated by b
    ("d", PRUNED, 0.97, 20e6, 9e5, 4, 6, 0.002),
    ("e", DIVERGED, 0.10, 3e6, 1e5, 1, 1, 0.05),
]


def _experiment() -> Experiment:
    trials, history = [], []
    clock = 0.0
    for trial_id, status, acc, macs, params, epochs, depth, lr in TRIALS:
        trials.append(
            {
                "trial_id": trial_id,
                M.STATUS: status,
                M.MACS: macs,
                M.PARAMS: params,
                M.VAL_LOSS: 1 - acc,
                M.REASON: "loss became nan" if status == DIVERGED else None,
                "model.depth": depth,
                "optim.lr": lr,
            }
        )
        for epoch in range(1, epochs + 1):
            clock += 10.0
            history.append(
                {
                    "trial_id": trial_id,
                    M.EPOCH: epoch,
                    M.VAL_ACC: acc * epoch / epochs,
                    M.EPOCH_TIME_S: 10.0,
                    "time_s": clock,
                }
            )
    hist = pd.DataFrame(history)
    spans = hist.groupby("trial_id").agg(
        epochs=(M.EPOCH, "max"), trial_time_s=(M.EPOCH_TIME_S, "sum"), best_val_acc=(M.VAL_ACC, "max")
    )
    table = pd.DataFrame(trials).join(spans, on="trial_id")
    settings = {
        "space": {
            "model.depth": {"type": "int", "low": 1, "high": 6},
            "optim.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        },
        "search": {"scheduler": "asha", "grace_period": 2, "reduction_factor": 2, "gpus_per_trial": 0.5},
        "base": {"train": {"epochs": 6}},
    }
    return Experiment("hand-made", "test", table, hist, settings)


def test_leaderboard_orders_by_accuracy_and_shows_the_searched_parameters():
    board = S.leaderboard(_experiment(), k=3)
    assert board["trial_id"].tolist() == ["d", "a", "b"]
    assert {"model.depth", "optim.lr"} <= set(board.columns)


def test_best_config_is_nested_sections():
    assert S.best_config(_experiment()) == {"model": {"depth": 4}, "optim": {"lr": 0.002}}


def test_best_trial_prefers_completed_as_the_search_summary_does():
    exp = _experiment()
    assert S.leaderboard(exp, 1)["trial_id"].item() == "d"  # pruned at epoch 4 with 0.97: tops the board
    assert S.best_trial(exp)["trial_id"] == "a"  # but the recommendation is the best completed trial
    exp.trials = exp.trials[exp.trials[M.STATUS] != COMPLETED]
    assert S.best_trial(exp)["trial_id"] == "d"  # no completed trial: the best pruned one
    exp.trials = exp.trials[exp.trials[M.STATUS] == DIVERGED]
    assert S.best_trial(exp)["trial_id"] == "e"


def test_pareto_front_keeps_only_the_non_dominated():
    exp = _experiment()
    assert S.pareto_front(exp.trials, M.MACS)["trial_id"].tolist() == ["e", "b", "a", "d"]
    assert "c" not in S.pareto_front(exp.trials, M.PARAMS)["trial_id"].tolist()


def test_rung_counts_and_asha_rungs():
    exp = _experiment()
    table = S.rung_counts(exp).set_index("stopped_at_epoch")
    assert table.loc[2, PRUNED] == 1 and table.loc[4, PRUNED] == 1 and table.loc[6, COMPLETED] == 2
    assert table.loc[1, DIVERGED] == 1
    assert S.asha_rungs(exp) == [2, 4]


def test_cost_accounts_for_every_trial_second():
    c = S.cost(_experiment())
    assert c["trial_time_s"] == 10.0 * (6 + 6 + 2 + 4 + 1)
    assert c["pruned_trial_time_s"] == 10.0 * (2 + 4)
    assert c["time_to_best_s"] == 10.0 * (6 + 6 + 2 + 4)  # d's last epoch
    assert c["gpu_hours"] == pytest.approx(190 * 0.5 / 3600)


def test_failures_name_the_reason():
    bad = S.failures(_experiment())
    assert bad.to_dict("records") == [{"trial_id": "e", M.STATUS: DIVERGED, M.REASON: "loss became nan", "epochs": 1}]


def test_importance_uses_optuna_and_names_the_method():
    scores, method = S.importance(_experiment())
    assert set(scores) == {"model.depth", "optim.lr"}
    assert sum(scores.values()) == pytest.approx(1.0)
    assert method.startswith("fANOVA") and "4 trials (2 pruned" in method


def test_importance_needs_enough_trials():
    exp = _experiment()
    exp.trials = exp.trials.head(2)
    assert S.importance(exp) == ({}, "not computed: needs at least 3 completed or pruned trials, has 2")


def test_baseline_trial_is_marked_when_the_search_had_one():
    exp = _experiment()
    assert S.baseline_trial(exp) is None and "baseline" not in S.leaderboard(exp).columns
    exp.trials["baseline"] = exp.trials["trial_id"] == "b"
    assert S.baseline_trial(exp)["trial_id"] == "b"
    board = S.leaderboard(exp)
    assert board.loc[board["trial_id"] == "b", "baseline"].item() and board["baseline"].sum() == 1
    assert "baseline" not in S.searched_params(exp)
