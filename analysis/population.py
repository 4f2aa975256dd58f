"""The report's section on a population (``search.mode`` pbt or pb2): the members' val_acc over epochs with each
copy marked, the family tree (who copied whom, when, and what changed), and the recommended schedule per mutable key.

A member's MLflow parameters are its starting configuration: one that copied another trains that one's architecture
and values from then on, so the sections that read a trial's parameters as what it trained (importance, parallel
coordinates, Pareto fronts) are left out of a population's report.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.load import Experiment
from contract import metrics as M

MODE, POPULATION_MODES = "search.mode", ("pbt", "pb2")  # the config's key, and its values that train a population


def is_population(exp: Experiment) -> bool:
    """Whether the experiment is a population-based search."""
    return exp.setting(MODE) in POPULATION_MODES


def population(exp: Experiment) -> tuple[str, list[pd.DataFrame], dict[str, Figure]]:
    """The section's text, tables and figures."""
    mode, size = exp.setting(MODE), len(exp.trials)
    interval = exp.setting("search.population.interval")
    text = (
        f"Population-based training ({mode}): {size} members trained together; every {interval} epoch(s) a member in "
        f"the bottom {exp.setting('search.population.quantile')} of the population copied a top member's weights and "
        f"configuration and changed its mutable values. {len(exp.copies)} copies. val_acc per epoch (val: the data "
        "the population was selected on; one seed): each member's epochs as it last trained them, a copy marked "
        "where it continued another's weights. A member's parameters in MLflow are its starting configuration; "
        "the copies below and its schedule.json say what it trained after."
    )
    tables, figures = [], {"population": curves(exp)}
    if not exp.copies.empty:
        tables.append(exp.copies.rename(columns={"trial_id": "member", "copied": "copied trial"}))
    if exp.schedule:
        text += (
            " The recommended schedule (schedule.json of the parent run; `python -m trainables.train --schedule` "
            "replays it; the final phase retrained it from scratch, see Final evaluation):"
        )
        tables.append(schedule_table(exp.schedule))
        figures["schedule"] = schedule_plot(exp.schedule)
    return text, tables, figures


def schedule_table(artifact: dict[str, Any]) -> pd.DataFrame:
    """One row per segment of a schedule.json: its epochs, whose run trained it, the run it copied, its values."""
    segments, epochs = artifact["segments"], artifact["epochs"]
    rows = []
    for i, s in enumerate(segments):
        end = segments[i + 1]["epoch"] if i + 1 < len(segments) else epochs
        span = f"{s['epoch'] + 1}" if end == s["epoch"] + 1 else f"{s['epoch'] + 1}-{end}"
        rows.append({"epochs": span, "trained by": s.get("owner"), "copied": s.get("from", ""),
                     **s.get("values", {})})  # fmt: skip
    return pd.DataFrame(rows)


def curves(exp: Experiment) -> Figure:
    """val_acc per epoch of every member, the copies as points where the copying member continued."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100, layout="constrained")
    ax.grid(alpha=0.3)
    for trial_id, h in exp.history.groupby("trial_id"):
        h = h.dropna(subset=[M.VAL_ACC])
        ax.plot(h[M.EPOCH], h[M.VAL_ACC], marker=".", lw=1.2, label=str(trial_id))
    at = exp.history.set_index(["trial_id", M.EPOCH])[M.VAL_ACC]
    marks = [(c.epoch, at.get((c.trial_id, c.epoch))) for c in exp.copies.itertuples()]
    marks = [(e, v) for e, v in marks if v is not None and v == v]
    if marks:
        ax.scatter(*zip(*marks, strict=True), marker="x", color="k", zorder=3, label="a copy (after this epoch)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_acc")
    ax.set_title("The population")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return fig


def schedule_plot(artifact: dict[str, Any]) -> Figure:
    """Each value of the schedule per epoch, one panel per key."""
    segments, epochs = artifact["segments"], artifact["epochs"]
    keys = list(segments[0].get("values", {}))
    fig, axes = plt.subplots(max(1, len(keys)), 1, figsize=(7, 1.6 + 1.4 * len(keys)), dpi=100, layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, key in zip(axes[:, 0], keys, strict=False):
        xs = [s["epoch"] for s in segments] + [epochs]
        ys = [s["values"][key] for s in segments]
        ax.stairs(ys, xs, baseline=None, lw=1.5)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel("epochs trained")
    axes[0, 0].set_title("The recommended schedule")
    return fig
