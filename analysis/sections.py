"""The report's content, format-free: a list of sections (text, tables, figures), every number from ``summarize``.

Each section is built by its own function, in the order the report shows them; the writers (``to_html``,
``to_markdown``) only lay them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from analysis import interactive, plots
from analysis import summarize as S
from analysis.load import Experiment
from contract import metrics as M
from contract.files import BEST_CONFIG


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # file stem -> matplotlib Figure (report.md's PNGs)
    interactive: dict[str, Any] = field(default_factory=dict)  # the same stems -> plotly Figure (report.html)
    code: str = ""  # YAML shown as a block


def build_sections(exp: Experiment) -> list[Section]:
    """The report's sections, in order."""
    params = S.searched_params(exp)
    sections = [overview(exp), best_configuration(exp), leaderboard(exp)]
    if exp.trials[M.BEST_VAL_ACC].notna().any():  # else every trial diverged before its first validation
        study = S.study(exp)
        sections.append(importance(exp, params, study))
        if params:
            sections.append(parallel_coordinates(exp, params, study))
        sections.append(learning_curves(exp))
        sections += [pareto(exp, measure, params) for measure in (M.MACS, M.PARAMS)]
    sections += [cost(exp), failures(exp)]
    return sections


def cell(value: Any) -> str:
    """A table cell as every format shows it: 4 significant digits, large numbers in full with separators."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def overview(exp: Experiment) -> Section:
    counts = S.status_counts(exp)
    trials = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    return Section("Overview", f"Source: {exp.source}. Trials: {trials}.")


def best_configuration(exp: Experiment) -> Section:
    best, config = S.best_trial(exp), S.best_config(exp)
    if best is None or config is None:
        return Section(
            "Best configuration",
            "No trial finished without diverging or failing: there is no configuration to recommend (see "
            "Failures and divergences; a diverging search often needs a lower base.optim.lr or base.optim.clip_grad).",
        )
    text = (
        f"Trial {best['trial_id']} ({best[M.STATUS]}): best val_acc {best[M.BEST_VAL_ACC]:.4f}, "
        f"{best[M.PARAMS] / 1e6:.2f}M parameters, {best[M.MACS] / 1e6:.1f} MMACs per image. Retrain it with "
        f"`python -m trainables.train --config {BEST_CONFIG}` (the file is beside this report)."
    )
    baseline = S.baseline_trial(exp)
    if baseline is not None and not pd.isna(baseline[M.BEST_VAL_ACC]):
        gain = 100 * (best[M.BEST_VAL_ACC] - baseline[M.BEST_VAL_ACC])
        text += (
            f" The baseline, trial {baseline['trial_id']} with the base config's own values ({baseline[M.STATUS]}), "
            f"reached {baseline[M.BEST_VAL_ACC]:.4f}: the search gained {gain:+.2f} points."
        )
    return Section("Best configuration", text, code=yaml.safe_dump(config, sort_keys=False))


def leaderboard(exp: Experiment) -> Section:
    return Section("Leaderboard", "Top trials by best val_acc (ties: fewer MACs).", [S.leaderboard(exp)])


def importance(exp: Experiment, params: list[str], study: Any) -> Section:
    scores, method = S.importance(exp)
    section = Section("Hyperparameter importance", f"Method: {method}.")
    if scores:
        section.tables.append(pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())}))
        section.figures["importance"] = plots.importance_bar(scores)
        section.interactive["importance"] = interactive.importance_bar(scores)
    top = list(scores)[:3] or params[:3]
    if top:
        section.figures["slices"] = plots.slices(exp, top)
        if study is not None:
            section.interactive["slices"] = interactive.slices(study, top)
    return section


def parallel_coordinates(exp: Experiment, params: list[str], study: Any) -> Section:
    section = Section("Parallel coordinates", figures={"parallel_coordinates": plots.parallel_coordinates(exp, params)})
    if study is not None:
        section.interactive["parallel_coordinates"] = interactive.parallel_coordinates(study, params)
    return section


def learning_curves(exp: Experiment) -> Section:
    rungs = S.asha_rungs(exp)
    text = (
        "val_acc per epoch; green completed, gray pruned, red diverged, black failed"
        + (f"; ASHA compared trials at epochs {rungs}" if rungs else "")
        + ". Trials stopped at each epoch:"
    )
    return Section(
        "Learning curves",
        text,
        [S.rung_counts(exp)],
        {"learning_curves": plots.learning_curves(exp, rungs)},
        interactive={"learning_curves": interactive.learning_curves(exp, rungs)},
    )


def pareto(exp: Experiment, measure: str, params: list[str]) -> Section:
    """The trials on the Pareto front of accuracy against ``measure`` (macs or params)."""
    front = S.pareto_front(exp.trials, measure)
    return Section(
        f"Pareto front: accuracy vs {measure}",
        f"Trials that no other trial beats on both best val_acc and {measure}.",
        [front[["trial_id", M.BEST_VAL_ACC, measure, *params]]],
        {f"pareto_{measure}": plots.pareto(exp.trials, front, measure)},
        interactive={f"pareto_{measure}": interactive.pareto(exp.trials, front, measure)},
    )


def cost(exp: Experiment) -> Section:
    c = S.cost(exp)
    minutes = {k: v / 60 for k, v in c.items() if k.endswith("_s")}
    text = (
        f"{minutes['trial_time_s']:.1f} trial-minutes in {c['trials']} trials over {minutes['wall_time_s']:.1f} "
        f"minutes; the best result came after {minutes['time_to_best_s']:.1f} minutes "
        f"({minutes['trial_time_to_best_s']:.1f} trial-minutes); {minutes['pruned_trial_time_s']:.1f} trial-minutes "
        "went to trials that were later pruned"
        + (f"; {c['gpu_hours']:.2f} GPU-hours." if c["gpu_hours"] else "; no GPU.")
    )
    return Section("Cost", text, [pd.DataFrame([c])])


def failures(exp: Experiment) -> Section:
    bad = S.failures(exp)
    return Section("Failures and divergences", "None." if bad.empty else "", [] if bad.empty else [bad])
