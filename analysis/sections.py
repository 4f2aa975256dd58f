"""The report's content, format-free: a list of sections (text, tables, figures), every number from ``summarize``.

Each section is built by its own function, in the order the report shows them; the writers (``to_html``,
``to_markdown``) only lay them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from analysis import final as F
from analysis import interactive, plots
from analysis import summarize as S
from analysis.fidelity import Fidelity, at_one_epoch
from analysis.load import Experiment
from analysis.population import is_population, population
from contract import metrics as M
from contract.files import BEST_CONFIG
from contract.final import MEASURED, SEED, SOURCE, named
from contract.status import COMPLETED
from contract.tracking import TEST_SPLIT

# What a search-time number is, said wherever one is shown.
SEARCH_TIME = "val: the data the search selected on; best epoch; one seed"


@dataclass
class Section:
    """One section of the report: its title, text, tables and figures."""

    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # file stem -> matplotlib Figure (report.md's PNGs)
    interactive: dict[str, Any] = field(default_factory=dict)  # the same stems -> plotly Figure (report.html)
    code: str = ""  # YAML shown as a block


def build_sections(exp: Experiment) -> list[Section]:
    """The report's sections, in order: the final phase's test numbers first, then what the search saw."""
    params = S.searched_params(exp)
    if is_population(exp):  # its trials' parameters are where they started: no section reads them as what trained
        first = [final_evaluation(exp), overview(exp), leaderboard(exp), Section("Population", *population(exp))]
        return [*first, learning_curves(exp), cost(exp), failures(exp)]
    sections = [final_evaluation(exp), overview(exp), best_configuration(exp), leaderboard(exp)]
    if exp.trials[M.BEST_VAL_ACC].notna().any():  # else every trial diverged before its first validation
        fidelity = at_one_epoch(exp)
        study = S.study(exp, fidelity)
        sections.append(importance(exp, params, fidelity, study))
        if params:
            sections.append(parallel_coordinates(exp, params, fidelity, study))
        sections.append(learning_curves(exp))
        sections += [pareto(exp, measure, params) for measure in (M.MACS, M.PARAMS)]
    sections += [cost(exp), failures(exp)]
    return sections


def cell(value: Any) -> str:
    """A table cell as every format shows it: 4 significant digits, large numbers in full with separators; a
    number that does not exist (an interval from fewer than 2 runs) empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def final_evaluation(exp: Experiment) -> Section:
    """The final phase: each candidate's accuracy on the final split over its seeds, the search's pick and the
    winner against the baseline, and contract.final's verdict; or one line saying that none ran."""
    split = exp.final_split
    title = f"Final evaluation ({split} split)"
    res = F.result(exp)
    if res is None:
        where = "" if exp.parent_run_id else " (read from a Tune folder, which holds the search's trials only)"
        return Section(title, f"No final evaluation ran{where}: every number below is search-time val_acc, what "
                       "the search selected on, and so optimistic.")  # fmt: skip
    skipped = exp.final[~exp.final["run_id"].isin(F.counted(exp)["run_id"])]
    left_out = [skipped[["trial_id", SOURCE, SEED, M.STATUS, "epochs"]]] if len(skipped) else []
    if res.winner is None:
        return Section(title, f"{len(exp.final)} final runs: {res.verdict()}.", left_out)
    winner = res.candidate(res.winner)
    lines = [
        f"{_upper(F.fidelity_phrase(exp, res))}: the search's best completed configurations"
        f"{' and the baseline' if res.baseline else ''}, each retrained with new seeds and measured once on {split}. "
        "The winner is the candidate with the highest mean last-epoch val_acc over its seeds, among those whose runs "
        "all completed where there is one" + ("; never chosen on test." if split == TEST_SPLIT else "."),
    ]
    if split != TEST_SPLIT:
        lines.append("The data set has no test split: these are val numbers, the data that chose the search's pick "
                     "and the winner, so theirs are biased upward.")  # fmt: skip
    lines.append(f"Winner: {named(winner.source)}{' (the baseline)' if winner.baseline else ''}, {MEASURED[split]} "
                 f"{winner.measured.describe()}.")  # fmt: skip
    if winner.measured.images_error():
        lines.append(f"Each interval of an accuracy is over training seeds on fixed images; the images' own error "
                     f"at the winner's accuracy: {winner.measured.images_error()}.")  # fmt: skip
    if res.gains:
        gains = "; ".join(f"{named(s)}: {g.describe()}" for s, g in res.gains.items())
        lines.append(f"Gain over the baseline, {named(res.baseline)}: {gains}.")
    lines.append(f"{_upper(res.verdict())}.")
    if len(skipped):
        runs = f"{len(skipped)} final run" + (" is" if len(skipped) == 1 else "s are")
        lines.append(f"{runs} not counted (not completed, or without a number on {split}): listed below.")
    tables = [F.candidates_table(res), *([F.gains_table(res)] if res.gains else []), *left_out]
    return Section(title, " ".join(lines), tables)


def _upper(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def overview(exp: Experiment) -> Section:
    """Where the search was read from, its trials by status, and its final runs counted apart."""
    counts = S.status_counts(exp)
    trials = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    final = f" Final runs ({len(exp.final)}) are counted apart, in Final evaluation." if len(exp.final) else ""
    return Section("Overview", f"Source: {exp.source}. Search trials: {trials}.{final}")


def best_configuration(exp: Experiment) -> Section:
    """The winner's configuration and its gain over the baseline, as a ready ``best_config.yaml``."""
    best, config = S.best_trial(exp), S.best_config(exp, F.winner(exp))
    if best is None or config is None:
        return Section(
            "Best configuration",
            "No trial finished without diverging or failing: there is no configuration to recommend (see "
            "Failures and divergences; a diverging search often needs a lower base.optim.lr or base.optim.clip_grad).",
        )
    text = (
        f"The search's best trial, {best['trial_id']} ({best[M.STATUS]}): best val_acc {best[M.BEST_VAL_ACC]:.4f} "
        f"({SEARCH_TIME}), {best[M.PARAMS] / 1e6:.2f}M parameters, {best[M.MACS] / 1e6:.1f} MMACs per image. Retrain "
        f"the recommended configuration with `python -m trainables.train --config {BEST_CONFIG}` (the file is "
        "beside this report). " + _baseline_line(best, S.baseline_trial(exp))
    )
    res = F.result(exp)
    if res is not None and res.winner is not None and res.winner != best["trial_id"]:
        text += (
            f" The final evaluation's winner is another candidate, {named(res.winner)} (see Final evaluation): "
            f"{BEST_CONFIG} and the configuration below are its."
        )
    return Section("Best configuration", text.strip(), code=yaml.safe_dump(config, sort_keys=False))


def _baseline_line(best: pd.Series, baseline: pd.Series | None) -> str:
    """The search-time gain over the baseline, only where both completed (``summarize.search_gain``); else why not."""
    if baseline is None:
        return ""
    gain = S.search_gain(best, baseline)
    name = f"The baseline, trial {baseline['trial_id']} with the base config's own values"
    if gain is not None:
        return (f"{name}, completed with best val_acc {baseline[M.BEST_VAL_ACC]:.4f}: the search gained "
                f"{100 * gain:+.2f} points on val ({SEARCH_TIME} each: optimistic).")  # fmt: skip
    if baseline[M.STATUS] != COMPLETED:
        return (f"{name}, {baseline[M.STATUS]} at epoch {baseline['epochs']}: its number is not a finished one, so "
                "there is no search-time gain over it.")  # fmt: skip
    return f"{name}, completed; the best trial did not ({best[M.STATUS]}), so there is no search-time gain."


def leaderboard(exp: Experiment) -> Section:
    """The top trials by best val_acc, with the baseline marked."""
    text = (
        f"Top trials by best val_acc ({SEARCH_TIME}; a pruned trial's by the epoch it was stopped); ties: fewer MACs."
    )
    board = S.leaderboard(exp)
    if len(exp.trials) > len(board):
        text += f" The other {len(exp.trials) - len(board)} trials are in trials.csv (the report's csv format)."
    return Section("Leaderboard", text, [board])


def _importance_table(*results: S.Importance) -> pd.DataFrame:
    columns = {f"importance: {r.fidelity.label()}, {r.fidelity.trials} {who}": r.scores for r, who in
               zip(results, ("trials", "completed trials"), strict=False) if r.scores}  # fmt: skip
    return pd.DataFrame(columns).rename_axis("parameter").reset_index()


def importance(exp: Experiment, params: list[str], fidelity: Fidelity, study: Any) -> Section:
    """Hyperparameter importance (fANOVA) over all trials and over completed ones."""
    every = S.importance(exp)
    completed = S.importance(exp, completed_only=True, known=every)
    text = f"All trials: {every.note}. Completed trials only: {completed.note}."
    section = Section("Hyperparameter importance", text)
    shown = every if every.scores else completed
    if shown.scores:
        section.tables.append(_importance_table(every, completed))
        section.figures["importance"] = plots.importance_bar(shown.scores, shown.fidelity.label())
        section.interactive["importance"] = interactive.importance_bar(shown.scores, shown.fidelity.label())
    top = list(shown.scores)[:3] or params[:3]
    if top and not fidelity.table.empty:
        section.figures["slices"] = plots.slices(fidelity.table, top, exp.space, fidelity.label())
        if study is not None:
            section.interactive["slices"] = interactive.slices(study, top, fidelity.label())
    return section


def parallel_coordinates(exp: Experiment, params: list[str], fidelity: Fidelity, study: Any) -> Section:
    """Every trial at the fidelity in the PNG; in the HTML, one trace a trial, at most ``S.DRAWN_TRIALS`` of them."""
    text = f"Each trial's {fidelity.label()} ({fidelity.trials} trials, {SEARCH_TIME.split('; ')[0]})."
    drawn = S.plot_sample(fidelity, S.DRAWN_TRIALS)
    if drawn.trials < fidelity.trials:
        text += (f" The interactive plot draws {drawn.trials} of them: the {S.LEADING} best and others evenly spaced "
                 "in trial-id order; the image draws all.")  # fmt: skip
        study = S.study(exp, drawn)
    section = Section("Parallel coordinates", text)
    if fidelity.table.empty:
        return section
    section.figures["parallel_coordinates"] = plots.parallel_coordinates(fidelity.table, params, fidelity.label())
    if study is not None:
        section.interactive["parallel_coordinates"] = interactive.parallel_coordinates(study, params, fidelity.label())
    return section


def learning_curves(exp: Experiment) -> Section:
    """Every trial's val_acc per epoch, with ASHA's rungs and where trials stopped."""
    rungs, leading = S.asha_rungs(exp), S.leading_trials(exp)
    others = len(set(exp.history["trial_id"]) - set(leading))
    who = "the leaderboard's and the best" + (", the baseline dashed" if S.baseline_id(exp) in leading else "")
    shown = f"; the {len(leading)} leading trials ({who}) drawn so, the other {others} faint grey" if others else ""
    text = (
        "val_acc per epoch; green completed, gray pruned, red diverged, black failed"
        + shown
        + (f"; ASHA compared trials at epochs {rungs}" if rungs else "")
        + ". Trials stopped at each epoch:"
    )
    return Section(
        "Learning curves",
        text,
        [S.rung_counts(exp)],
        {"learning_curves": plots.learning_curves(exp, rungs, leading)},
        interactive={"learning_curves": interactive.learning_curves(exp, rungs, leading)},
    )


def pareto(exp: Experiment, measure: str, params: list[str]) -> Section:
    """The completed trials on the Pareto front of accuracy against ``measure`` (macs or params); pruned trials
    drawn apart as lower bounds."""
    completed, bounds = S.front_candidates(exp.trials, measure), S.lower_bounds(exp.trials, measure)
    front = S.pareto_front(exp.trials, measure)
    text = (
        f"Completed trials that no other completed trial beats on both best val_acc ({SEARCH_TIME}) and {measure}. "
        "Pruned trials are drawn apart, as lower bounds at the epoch they were stopped, and are never on the front; "
        "diverged and failed trials are not drawn."
    )
    title = f"Pareto front: accuracy vs {measure}"
    if completed.empty and bounds.empty:
        return Section(title, f"{text} No completed or pruned trial has a best val_acc and {measure}: nothing to draw.")
    return Section(
        title,
        text,
        [front[["trial_id", M.BEST_VAL_ACC, measure, *params]]],
        {f"pareto_{measure}": plots.pareto(completed, front, bounds, measure)},
        interactive={f"pareto_{measure}": interactive.pareto(completed, front, bounds, measure)},
    )


def cost(exp: Experiment) -> Section:
    """Trial time, time to the best result, time spent on trials later pruned, GPU-hours and how the GPUs were used."""
    c = S.cost(exp)
    minutes = {k: v / 60 for k, v in c.items() if k.endswith("_s")}
    text = (
        f"{minutes['trial_time_s']:.1f} trial-minutes in {c['trials']} trials over {minutes['wall_time_s']:.1f} "
        f"minutes; the best result came after {minutes['time_to_best_s']:.1f} minutes "
        f"({minutes['trial_time_to_best_s']:.1f} trial-minutes); {minutes['pruned_trial_time_s']:.1f} trial-minutes "
        "went to trials that were later pruned"
        + (f"; {c['gpu_hours']:.2f} GPU-hours." if c["gpu_hours"] else "; no GPU.")
    )
    tables = [pd.DataFrame([c])]
    if not math.isnan(c["gpu_utilization_percentage"]):
        text += (
            f" The GPUs were busy {c['gpu_utilization_percentage']:.0f}% of the trials' time (idle "
            f"{c['gpu_idle_share']:.0%}: data loading, evaluation, checkpoints); one GPU held at most "
            f"{c['gpu_memory_peak_megabytes']:.0f} MB (NVML, sampled every few seconds by each trial's process)."
        )
        tables.append(S.gpu_by_trial(exp))
    return Section("Cost", text, tables)


def failures(exp: Experiment) -> Section:
    """The trials that failed or diverged, with their reasons."""
    bad = S.failures(exp)
    return Section("Failures and divergences", "None." if bad.empty else "", [] if bad.empty else [bad])
