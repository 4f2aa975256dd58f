"""One fidelity for every trial compared: each trial's val_acc at the same epoch, read from the histories.

A trial that ASHA stopped at epoch 3 and one that trained 10 epochs are not measured alike: put side by side, their
numbers mostly say which trials the scheduler stopped. What the report fits (importance) and plots (slices, parallel
coordinates) is therefore each trial's val_acc at one epoch: the highest epoch that at least ``MIN_TRIALS`` of the
trials have a val_acc for. A trial that stopped later, or diverged or failed afterwards, was measured there like the
others, so it counts; a trial that stopped earlier has no number at that fidelity and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.load import Experiment
from contract import metrics as M
from contract.status import COMPLETED, PRUNED

# Optuna's fANOVA fits a random forest of the value on the parameters and splits the variance among them. With fewer
# than 5 trials the split says which parameter happens to separate one or two trials, not what matters; the report
# gives the count beside the epoch so a reader can judge it against the number of parameters.
MIN_TRIALS = 5


@dataclass(frozen=True)
class Fidelity:
    """The trials at one epoch: ``table`` is their rows of ``exp.trials`` with ``val_acc`` replaced by the value
    at ``epoch`` (None: no epoch that enough trials reached)."""

    epoch: int | None
    table: pd.DataFrame

    @property
    def trials(self) -> int:
        """How many trials have a val_acc at the epoch."""
        return len(self.table)

    @property
    def later_pruned(self) -> int:
        """Of the trials counted, those the scheduler stopped (at this epoch or a later one)."""
        return int((self.table[M.STATUS] == PRUNED).sum())

    def label(self) -> str:
        """What the compared number is, for a section's text."""
        return f"val_acc at epoch {self.epoch}"


def highest_common_epoch(history: pd.DataFrame, min_trials: int) -> int | None:
    """The highest epoch at which at least ``min_trials`` trials of ``history`` have a val_acc."""
    measured = history.dropna(subset=[M.VAL_ACC])
    counts = measured.groupby(M.EPOCH)["trial_id"].nunique()
    reached = counts[counts >= max(1, min_trials)]
    return int(reached.index.max()) if len(reached) else None


def at_one_epoch(exp: Experiment, completed_only: bool = False, min_trials: int = MIN_TRIALS) -> Fidelity:
    """The trials (all of them, or the completed ones) at the highest epoch that ``min_trials`` of them reached;
    where fewer trials have any val_acc, the highest epoch all of those reached (the plots still show one fidelity,
    the importance needs ``MIN_TRIALS``)."""
    trials = exp.trials[exp.trials[M.STATUS] == COMPLETED] if completed_only else exp.trials
    history = exp.history[exp.history["trial_id"].isin(trials["trial_id"])]
    measured = history.dropna(subset=[M.VAL_ACC])
    epoch = highest_common_epoch(history, min(min_trials, measured["trial_id"].nunique()))
    if epoch is None:
        return Fidelity(None, trials.iloc[:0])
    values = measured[measured[M.EPOCH] == epoch].drop_duplicates("trial_id").set_index("trial_id")[M.VAL_ACC]
    table = trials[trials["trial_id"].isin(values.index)].copy()
    table[M.VAL_ACC] = table["trial_id"].map(values)
    return Fidelity(epoch, table.reset_index(drop=True))
