"""The report's figures as interactive plotly figures, for report.html: hover names the trial, drag zooms.

Where Optuna already draws the plot from a study (slices, parallel coordinates), it is Optuna's own
``optuna.visualization``, on the study that ``summarize.study`` rebuilds from the trials; the rest are drawn here
from the same tables as the PNGs of ``plots``. Each function returns a ``plotly.graph_objects.Figure``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from analysis import summarize
from analysis.load import Experiment
from analysis.plots import OTHER_ALPHA, OTHER_COLOR, STATUS_COLORS
from contract import metrics as M
from contract.status import COMPLETED, RUNNING

_COLORS = {"tab:green": "#2ca02c", "tab:gray": "#7f7f7f", "tab:red": "#d62728", "black": "#000000"}
HEIGHT = 420


def _color(status: str) -> str:
    return _COLORS.get(STATUS_COLORS.get(status, ""), "#1f77b4")


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height, template="plotly_white",
                      margin=dict(l=60, r=20, t=50, b=50), hovermode="closest")  # fmt: skip
    return fig


def importance_bar(scores: dict[str, float], value: str) -> go.Figure:
    """A horizontal bar per parameter, the largest share on top."""
    names = list(scores)[::-1]
    bar = go.Bar(x=[scores[n] for n in names], y=names, orientation="h",
                 hovertemplate="%{y}: %{x:.3f}<extra></extra>")  # fmt: skip
    return _layout(go.Figure(bar), "Hyperparameter importance", f"importance (share of the variance of {value})", "",
                   height=120 + 40 * max(1, len(scores)))  # fmt: skip


def slices(study, params: list[str], value: str) -> go.Figure:
    """Optuna's slice plot of the study at one fidelity (``value`` names it); hover shows the trial's values."""
    from optuna.visualization import plot_slice

    return plot_slice(study, params=params, target_name=value)


def parallel_coordinates(study, params: list[str], value: str) -> go.Figure:
    """Optuna's own parallel-coordinates plot of ``study``'s trials over ``params``."""
    from optuna.visualization import plot_parallel_coordinate

    return plot_parallel_coordinate(study, params=params, target_name=value)


def learning_curves(exp: Experiment, rungs: list[int], leading: list[str]) -> go.Figure:
    """val_acc per epoch: one line per ``leading`` trial coloured by its status (the baseline dashed), every other
    trial in one faint grey trace (one legend entry) under them; hover: trial, status, epoch, val_acc."""
    fig = go.Figure()
    status = exp.trials.set_index("trial_id")[M.STATUS].astype(str)
    baseline = summarize.baseline_id(exp)
    curves = dict(tuple(exp.history.groupby("trial_id")))
    others = [trial_id for trial_id in curves if trial_id not in leading]
    if others:
        fig.add_trace(_others(curves, others, status))
    for trial_id in [t for t in leading if t in curves]:
        h, s = curves[trial_id], status.get(trial_id, RUNNING)
        fig.add_trace(go.Scatter(
            x=h[M.EPOCH], y=h[M.VAL_ACC].round(5), mode="lines+markers", name=f"{trial_id} ({s})",
            line=dict(color=_color(s), width=1.5, dash="dash" if trial_id == baseline else "solid"),
            marker=dict(size=5), legendgroup=s,
            hovertemplate=f"trial {trial_id} ({s})<br>epoch %{{x}}<br>val_acc %{{y:.4f}}<extra></extra>",
        ))  # fmt: skip
    for r in rungs:
        fig.add_vline(x=r, line_dash="dash", line_color="#ff7f0e", annotation_text=f"rung {r}")
    return _layout(fig, "Learning curves", "epoch", "val_acc")


def _others(curves: dict[str, pd.DataFrame], others: list[str], status: pd.Series) -> go.Scatter:
    """The trials not highlighted as one trace, their lines apart (a gap between trials): one legend entry, and a
    page that stays small however many trials there are."""
    x, y, who = [], [], []
    for trial_id in others:
        h = curves[trial_id]
        x += [*h[M.EPOCH], None]
        y += [*h[M.VAL_ACC].round(4), None]
        who += [f"{trial_id} ({status.get(trial_id, RUNNING)})"] * len(h) + [""]
    return go.Scatter(x=x, y=y, text=who, mode="lines", name=f"other {len(others)} trials", connectgaps=False,
                      line=dict(color=OTHER_COLOR, width=1), opacity=OTHER_ALPHA,
                      hovertemplate="trial %{text}<br>epoch %{x}<br>val_acc %{y:.4f}<extra></extra>")  # fmt: skip


def _points(data: pd.DataFrame, cost: str, name: str, marker: dict) -> go.Scatter:
    """Trials as markers; hover names the trial, its status and the epochs it trained."""
    return go.Scatter(
        x=data[cost], y=data[M.BEST_VAL_ACC].round(5), mode="markers", name=name, marker=marker,
        customdata=data[["trial_id", M.STATUS, "epochs"]].astype(str).to_numpy(),
        hovertemplate=f"trial %{{customdata[0]}} (%{{customdata[1]}}, %{{customdata[2]}} epochs)<br>{cost} "
        "%{x:,.0f}<br>best val_acc %{y:.4f}<extra></extra>",
    )  # fmt: skip


def pareto(completed: pd.DataFrame, front: pd.DataFrame, bounds: pd.DataFrame, cost: str) -> go.Figure:
    """The completed trials' best val_acc against ``cost`` (log axis), the front as a step line over them; the
    trials stopped early apart, as open triangles, one legend entry per epoch they were stopped at."""
    fig = go.Figure(_points(completed, cost, COMPLETED, dict(color=_color(COMPLETED), size=9, opacity=0.8)))
    fig.add_trace(go.Scatter(x=front[cost], y=front[M.BEST_VAL_ACC], mode="lines", line_shape="hv",
                             name="Pareto front", line=dict(color="#9467bd"), hoverinfo="skip"))  # fmt: skip
    for label, group in bounds.groupby("bound", sort=False):
        marker = dict(color=_color(group[M.STATUS].iloc[0]), size=9, symbol="triangle-down-open")
        fig.add_trace(_points(group, cost, label, marker))
    fig.update_xaxes(type="log")
    return _layout(fig, f"Accuracy vs {cost}", cost + (" per image" if cost == M.MACS else ""), "best val_acc")
