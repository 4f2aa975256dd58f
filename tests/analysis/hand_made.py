"""Hand-made experiments whose answers are known: the summaries' and the report's tests share them."""

from __future__ import annotations

from typing import Any

import pandas as pd

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
    ("f", COMPLETED, 0.85, 6e6, 2.2e5, 6, 3, 0.001),  # dominated by b
]
SETTINGS = {
    "space": {
        "model.depth": {"type": "int", "low": 1, "high": 6},
        "optim.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    },
    "search": {"scheduler": "asha", "grace_period": 2, "reduction_factor": 2, "gpus_per_trial": 0.5},
    "base": {"train": {"epochs": 6}},
}


def from_curves(trials: list[dict[str, Any]], curves: dict[str, list[float]], settings: dict[str, Any]) -> Experiment:
    """An experiment from one row per trial (trial_id, status, ...) and each trial's val_acc per epoch (epoch 1
    first); the trials run one after another, 10 s an epoch."""
    history, clock = [], 0.0
    for row in trials:
        for epoch, acc in enumerate(curves[row["trial_id"]], start=1):
            clock += 10.0
            point = {"trial_id": row["trial_id"], M.EPOCH: epoch, M.VAL_ACC: acc, M.EPOCH_TIME_S: 10.0}
            history.append({**point, "time_s": clock})
    hist = pd.DataFrame(history)
    spans = hist.groupby("trial_id").agg(
        epochs=(M.EPOCH, "max"), trial_time_s=(M.EPOCH_TIME_S, "sum"), best_val_acc=(M.VAL_ACC, "max")
    )
    return Experiment("hand-made", "test", pd.DataFrame(trials).join(spans, on="trial_id"), hist, settings)


def hand_made() -> Experiment:
    trials, curves = [], {}
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
        curves[trial_id] = [acc * epoch / epochs for epoch in range(1, epochs + 1)]
    return from_curves(trials, curves, SETTINGS)
