"""Figures of a report, drawn from the loaded tables and the summaries; each returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from analysis import summarize
from analysis.load import Experiment
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, FAILED, PRUNED, RUNNING

STATUS_COLORS = {
    COMPLETED: "tab:green",
    PRUNED: "tab:gray",
    DIVERGED: "tab:red",
    FAILED: "black",
    RUNNING: "tab:blue",
}
# Beside the axes: over them it would hide points, and matplotlib's "best" place costs seconds among 1,000 trials.
LEGEND = dict(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
# Every trial a figure does not highlight: thin, light and under the highlighted ones.
OTHER_COLOR, OTHER_ALPHA = "#b0b0b0", 0.35


def _figure(width: float = 7, height: float = 4) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(width, height), dpi=100, layout="constrained")
    ax.grid(alpha=0.3)
    return fig, ax


def _legend_by_status(ax: Axes, statuses: Iterable[str], extra: list | None = None) -> None:
    handles = [
        plt.Line2D([], [], color=STATUS_COLORS.get(s, "tab:blue"), marker="o", ls="", label=s)
        for s in sorted(set(statuses))
    ]
    ax.legend(handles=handles + (extra or []), **LEGEND)


def importance_bar(scores: dict[str, float], value: str) -> Figure:
    """``value``: what the importance explains, e.g. "val_acc at epoch 3"."""
    fig, ax = _figure(7, 0.5 + 0.4 * max(1, len(scores)))
    names = list(scores)[::-1]
    ax.barh(names, [scores[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance (share of the variance of {value})")
    ax.set_title("Hyperparameter importance")
    return fig


def _numeric(values: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Values as floats, with tick labels for a categorical parameter."""
    if values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
        return values.astype(float).to_numpy(), None
    labels = sorted(values.astype(str).unique())
    return values.astype(str).map(labels.index).astype(float).to_numpy(), labels


def slices(table: pd.DataFrame, params: list[str], space: dict, value: str) -> Figure:
    """``table``'s val_acc (trials at one fidelity, ``value`` names it) against each parameter, one panel each."""
    fig, axes = plt.subplots(
        1, max(1, len(params)), figsize=(3.2 * max(1, len(params)), 3.2), dpi=100, layout="constrained", squeeze=False
    )
    for ax, p in zip(axes[0], params, strict=False):
        rows = table.dropna(subset=[p])
        x, labels = _numeric(rows[p])
        ax.scatter(x, rows[M.VAL_ACC], c=[STATUS_COLORS.get(s, "tab:blue") for s in rows[M.STATUS]], s=25)
        if labels:
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        elif isinstance(space.get(p), dict) and space[p].get("log"):
            ax.set_xscale("log")
        ax.set_xlabel(p, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(value)
    _legend_by_status(axes[0][-1], table[M.STATUS])
    return fig


def parallel_coordinates(table: pd.DataFrame, params: list[str], value: str) -> Figure:
    """One line per trial of ``table`` (one fidelity) across the searched parameters (each scaled to [0, 1]),
    coloured by its val_acc, which ``value`` names."""
    axes_names = [*params, M.VAL_ACC]
    fig, ax = _figure(max(7, 1.3 * len(axes_names)), 4.5)
    columns = []
    for name in axes_names:
        x, _labels = _numeric(table[name].fillna("-") if name != M.VAL_ACC else table[name])
        low, high = np.nanmin(x), np.nanmax(x)
        columns.append((x - low) / (high - low) if high > low else np.full_like(x, 0.5))
    matrix, acc = np.vstack(columns).T, table[M.VAL_ACC].to_numpy(dtype=float)
    norm = plt.Normalize(np.nanmin(acc), np.nanmax(acc))
    order = np.argsort(acc)  # the best drawn last, on top
    lines = [np.column_stack([np.arange(len(axes_names)), matrix[i]]) for i in order]
    colors = plt.cm.viridis(norm(acc[order]))
    ax.add_collection(LineCollection(lines, colors=colors, lw=1.5, alpha=_line_alpha(len(lines))))
    if len(lines) > summarize.LEADING:  # the best few stand out of a crowd of lines
        ax.add_collection(
            LineCollection(lines[-summarize.LEADING :], colors=colors[-summarize.LEADING :], lw=2, alpha=0.9)
        )
    ax.autoscale_view()
    ax.set_xticks(range(len(axes_names)), [*params, value], rotation=25, fontsize=8, ha="right")
    ax.set_yticks([])
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=value)
    ax.set_title("Parallel coordinates (each axis scaled to its range)")
    return fig


def _line_alpha(lines: int) -> float:
    """Opaque enough to read a few lines, light enough that a thousand show where they crowd."""
    return float(np.clip(40 / max(1, lines), 0.08, 0.8))


def learning_curves(exp: Experiment, rungs: list[int], leading: list[str]) -> Figure:
    """val_acc per epoch: the ``leading`` trials (``summarize.leading_trials``) in their status's colour, the
    baseline dashed, every other trial one faint grey line under them (one legend entry)."""
    fig, ax = _figure(7, 4)
    status = exp.trials.set_index("trial_id")[M.STATUS]
    baseline = summarize.baseline_id(exp)
    curves = {trial_id: h.dropna(subset=[M.VAL_ACC]) for trial_id, h in exp.history.groupby("trial_id")}
    others = [h for trial_id, h in curves.items() if trial_id not in leading]
    if others:
        lines = [np.column_stack([h[M.EPOCH], h[M.VAL_ACC]]) for h in others]
        ax.add_collection(LineCollection(lines, colors=OTHER_COLOR, linewidths=0.6, alpha=OTHER_ALPHA, zorder=1))
        ax.autoscale_view()
    for trial_id in leading:
        h, s = curves.get(trial_id), status.get(trial_id, RUNNING)
        if h is not None:
            ax.plot(h[M.EPOCH], h[M.VAL_ACC], color=STATUS_COLORS.get(s, "tab:blue"), alpha=0.9, marker=".", lw=1.2,
                    ls="--" if trial_id == baseline else "-", zorder=2)  # fmt: skip
    for r in rungs:
        ax.axvline(r, color="tab:orange", ls="--", lw=1)
    ax.set_xlabel("epoch" + (f" (dashed: ASHA rungs {rungs})" if rungs else ""))
    ax.set_ylabel("val_acc")
    ax.set_title("Learning curves")
    extra = [plt.Line2D([], [], color="k", ls="--", label="baseline")] if baseline in leading else []
    if others:
        extra.append(plt.Line2D([], [], color=OTHER_COLOR, alpha=0.8, label=f"other {len(others)} trials"))
    _legend_by_status(ax, [status.get(t, RUNNING) for t in leading if t in curves], extra)
    return fig


def pareto(completed: pd.DataFrame, front: pd.DataFrame, bounds: pd.DataFrame, cost: str) -> Figure:
    """The completed trials against ``cost``, ``front`` circled; ``bounds`` (``summarize.lower_bounds``) apart, as
    open triangles labelled by the epoch they were stopped at, never joined to the front."""
    fig, ax = _figure(6, 4)
    ax.scatter(completed[cost], completed[M.BEST_VAL_ACC], color=STATUS_COLORS[COMPLETED], s=25, label=COMPLETED)
    ax.step(front[cost], front[M.BEST_VAL_ACC], where="post", color="tab:purple", lw=1.5, label="Pareto front")
    ax.scatter(front[cost], front[M.BEST_VAL_ACC], facecolors="none", edgecolors="tab:purple", s=80)
    for label, group in bounds.groupby("bound", sort=False):
        ax.scatter(group[cost], group[M.BEST_VAL_ACC], marker="v", facecolors="none", s=40, label=label,
                   edgecolors=STATUS_COLORS.get(group[M.STATUS].iloc[0], "tab:blue"))  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(cost + (" per image" if cost == M.MACS else ""))
    ax.set_ylabel("best val_acc")
    ax.set_title(f"Accuracy vs {cost}")
    ax.legend(**LEGEND)
    return fig
