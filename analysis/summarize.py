"""What a report says, as plain data: every function takes the loaded tables and returns a DataFrame or dict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.fidelity import MIN_TRIALS, Fidelity, at_one_epoch
from analysis.load import Experiment
from analysis.population import is_population
from contract import metrics as M
from contract import ranking
from contract.status import COMPLETED, DIVERGED, ENDED, FAILED, PRUNED, RUNNING

LEADERBOARD_COLUMNS = ["trial_id", M.STATUS, M.BEST_VAL_ACC, M.VAL_LOSS, M.PARAMS, M.MACS, "epochs", "trial_time_s"]
# The rows of the leaderboard, and the trials a figure of every trial draws in colour: past a few dozen trials, lines
# of every trial in colour are one blot, and a table of every trial is what trials.csv is for.
LEADING = 10
# The most trials one importance is fitted on. Optuna's fANOVA (64 trees) grows faster than the trial count: on this
# project's 2-core machine 4 s at 145 trials, 15 s at 500, 93 s at 1,000 (11 parameters).
FIT_TRIALS = 300
# The most trials a plot of one trace per trial draws in report.html (Optuna's parallel coordinates: ~0.8 KB each).
DRAWN_TRIALS = 300


def searched_params(exp: Experiment) -> list[str]:
    """Configuration keys the search varied: the space's keys, else those that differ across trials."""
    keys = [k for k in exp.space if k in exp.trials.columns]
    if keys:
        return keys
    meta = {
        "trial_id",
        "run_id",
        M.STATUS,
        M.REASON,
        "baseline",
        M.PARAMS,
        M.MACS,
        M.VAL_ACC,
        M.VAL_LOSS,
        M.BEST_VAL_ACC,
        "epochs",
        "trial_time_s",
        "start_s",
        "end_s",
    }
    return [c for c in exp.trials.columns if c not in meta and exp.trials[c].astype(str).nunique() > 1]


def leaderboard(exp: Experiment, k: int = LEADING) -> pd.DataFrame:
    """Top-k trials by best val_acc (ties: fewer MACs), with the searched parameters."""
    cols = [c for c in LEADERBOARD_COLUMNS if c in exp.trials.columns] + searched_params(exp)
    if baseline_trial(exp) is not None:
        cols.insert(1, "baseline")
    ranked = exp.trials.sort_values([M.BEST_VAL_ACC, M.MACS], ascending=[False, True], na_position="last")
    return ranked[cols].head(k).reset_index(drop=True)


def leading_trials(exp: Experiment, k: int = LEADING) -> list[str]:
    """The trials a figure of every trial highlights: the leaderboard's top ``k``, the best trial and the baseline
    (each once, in that order); the figure draws the rest alike, faint."""
    ids = list(leaderboard(exp, k)["trial_id"])
    for row in (best_trial(exp), baseline_trial(exp)):
        if row is not None and row["trial_id"] not in ids:
            ids.append(row["trial_id"])
    return ids


def best_trial(exp: Experiment) -> pd.Series | None:
    """The trial to recommend, by the search's own rule (``contract.ranking``); None when no trial is a candidate
    (every one diverged or failed)."""
    rows = exp.trials.to_dict("records")
    best = ranking.best(rows)
    return None if best is None else exp.trials.iloc[rows.index(best)]


def baseline_trial(exp: Experiment) -> pd.Series | None:
    """The trial that trained the base config's own values (its run tagged ``contract.tracking.BASELINE_TAG``),
    if the search had one."""
    if "baseline" not in exp.trials.columns:
        return None
    rows = exp.trials[exp.trials["baseline"].fillna(False).astype(bool)]
    return rows.iloc[0] if len(rows) else None


def baseline_id(exp: Experiment) -> str | None:
    """The baseline trial's id, or None."""
    row = baseline_trial(exp)
    return None if row is None else str(row["trial_id"])


def search_gain(best: pd.Series, baseline: pd.Series | None) -> float | None:
    """best - baseline in best val_acc, only where both completed: a pruned trial's number is a lower bound at
    another fidelity, and a gain against it says how early ASHA stopped it, not what the search found."""
    if baseline is None or best[M.STATUS] != COMPLETED or baseline[M.STATUS] != COMPLETED:
        return None
    if missing(baseline[M.BEST_VAL_ACC]) or missing(best[M.BEST_VAL_ACC]):
        return None
    return float(best[M.BEST_VAL_ACC] - baseline[M.BEST_VAL_ACC])


def best_config(exp: Experiment, trial_id: str | None = None) -> dict[str, Any] | None:
    """A trial's configuration as nested sections (base config + its sampled values): trial ``trial_id``'s (the
    final phase's winner), else the search's best trial's; None when there is no trial to recommend."""
    chosen = exp.trials[exp.trials["trial_id"] == trial_id] if trial_id is not None else None
    row = chosen.iloc[0] if chosen is not None and len(chosen) else best_trial(exp)
    if row is None:
        return None
    nested: dict[str, Any] = {}
    for key, value in row.items():
        section, _, rest = str(key).partition(".")
        if section in ("model", "data", "optim", "train") and rest and not missing(value):
            node = nested.setdefault(section, {})
            *parents, leaf = rest.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = _plain(value)
    return nested


def _distributions(exp: Experiment, usable: pd.DataFrame, params: list[str]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    distributions = {}
    for p in params:
        values = usable[p].dropna()
        spec = exp.space.get(p) if isinstance(exp.space.get(p), dict) else {}
        numeric = spec.get("type") in ("int", "float") or (
            values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all() and values.nunique() > 2
        )
        if numeric and len(values):
            low, high = float(spec.get("low", values.min())), float(spec.get("high", values.max()))
            if low < high:
                distributions[p] = FloatDistribution(low, high, log=bool(spec.get("log")) and low > 0)
                continue
        distributions[p] = CategoricalDistribution(sorted({_plain(v) for v in values}, key=str))
    return distributions


def study(exp: Experiment, fidelity: Fidelity):
    """The trials at one fidelity as an in-memory Optuna study (value: val_acc at ``fidelity.epoch``; user attrs:
    the trial id and status), for Optuna's importance evaluators and plots; None without searched parameters or
    trials at that fidelity."""
    import optuna
    from optuna.distributions import FloatDistribution

    params, usable = searched_params(exp), fidelity.table
    if usable.empty or not params:
        return None
    distributions = _distributions(exp, usable, params)
    out = optuna.create_study(direction="maximize")
    for _, row in usable.iterrows():
        present = {
            p: (float(row[p]) if isinstance(distributions[p], FloatDistribution) else _plain(row[p]))
            for p in params
            if not missing(row[p])
        }
        attrs = {"trial_id": str(row["trial_id"]), M.STATUS: str(row[M.STATUS])}
        out.add_trial(
            optuna.trial.create_trial(
                params=present,
                distributions={p: distributions[p] for p in present},
                value=float(row[M.VAL_ACC]),
                user_attrs=attrs,
            )
        )
    return out


@dataclass(frozen=True)
class Importance:
    """Hyperparameter importance: shares by parameter, where they were computed, and how."""

    scores: dict[str, float]  # parameter -> share, largest first; empty when not computed
    fidelity: Fidelity  # the trials and the epoch it was computed at
    note: str  # the method and the data, or why it was not computed


def importance(exp: Experiment, completed_only: bool = False, known: Importance | None = None) -> Importance:
    """Hyperparameter importance with Optuna's fANOVA evaluator on every trial's (or every completed trial's)
    val_acc at one epoch (``analysis.fidelity``): never a pruned trial's truncated number beside a finished one.
    ``known``: an importance already computed, whose scores are taken as they are where it was fitted on the same
    trials at the same epoch (at scale, the epoch most trials reached is often one only completed trials reached)."""
    import optuna

    fid = at_one_epoch(exp, completed_only)
    who = "completed trials" if completed_only else "trials"
    if fid.trials < MIN_TRIALS or not searched_params(exp):
        return Importance(
            {}, fid, f"not computed: needs {MIN_TRIALS} {who} with a val_acc at one epoch, has {fid.trials}"
        )
    fitted = fit_sample(fid, FIT_TRIALS)
    if known is not None and known.scores and _same_trials(known.fidelity, fid):
        scores = known.scores
    else:
        try:
            scores = optuna.importance.get_param_importances(
                study(exp, fitted), evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
        except (RuntimeError, ValueError) as e:
            return Importance({}, fid, f"not computed: {e}")
    later = "" if completed_only else f", {fid.later_pruned} of them pruned at or after it"
    sample = "" if fitted.trials == fid.trials else (
        f" (fitted on {fitted.trials} of them, evenly spaced in trial-id order: fANOVA's cost grows faster than the "
        "trials)"
    )  # fmt: skip
    note = (
        f"fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0) on {fid.label()} of {fid.trials} {who}"
        f"{later}: the highest epoch that at least {MIN_TRIALS} {who} reached{sample}"
    )
    return Importance(dict(scores), fid, note)


def fit_sample(fid: Fidelity, most: int) -> Fidelity:
    """The trials an importance is fitted on: all of them up to ``most``, else ``most`` of them evenly spaced in
    trial-id order (early and late trials alike; the same every time)."""
    if fid.trials <= most:
        return fid
    ordered = fid.table.sort_values("trial_id").reset_index(drop=True)
    picked = np.unique(np.linspace(0, len(ordered) - 1, most).round().astype(int))
    return Fidelity(fid.epoch, ordered.iloc[picked].reset_index(drop=True))


def plot_sample(fid: Fidelity, most: int) -> Fidelity:
    """The trials a plot of one trace per trial draws: all of them up to ``most``, else the ``LEADING`` best by
    val_acc and the rest of ``most`` evenly spaced in trial-id order (``fit_sample``)."""
    if fid.trials <= most:
        return fid
    best = fid.table.nlargest(LEADING, M.VAL_ACC)
    rest = fit_sample(Fidelity(fid.epoch, fid.table.drop(best.index)), most - len(best))
    return Fidelity(fid.epoch, pd.concat([best, rest.table]).reset_index(drop=True))


def _same_trials(a: Fidelity, b: Fidelity) -> bool:
    return a.epoch == b.epoch and set(a.table["trial_id"]) == set(b.table["trial_id"])


def rung_counts(exp: Experiment) -> pd.DataFrame:
    """How many trials stopped at each epoch, by status (ASHA's rungs show as the stopping epochs)."""
    table = exp.trials.pivot_table(index="epochs", columns=M.STATUS, values="trial_id", aggfunc="count", fill_value=0)
    table.columns.name = None
    return table.reset_index().rename(columns={"epochs": "stopped_at_epoch"})


def asha_rungs(exp: Experiment) -> list[int]:
    """The epochs where ASHA compared trials, from the search settings (empty without ASHA, as in a population,
    whose search.scheduler is the study mode's and unused)."""
    if exp.setting("search.scheduler", "asha") != "asha" or is_population(exp):
        return []
    grace = exp.setting("search.grace_period")
    factor = exp.setting("search.reduction_factor")
    max_t = exp.setting("base.train.epochs") or int(exp.trials["epochs"].max())
    if not grace or not factor:
        return []
    rungs, r = [], float(grace)
    while r < max_t:
        rungs.append(int(r))
        r *= factor
    return rungs


def front_candidates(trials: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The trials a Pareto front is made of: completed ones, with a best val_acc and ``cost``. A pruned trial's
    accuracy is a lower bound at another fidelity, never a point of the front."""
    return trials[trials[M.STATUS] == COMPLETED].dropna(subset=[M.BEST_VAL_ACC, cost])


def pareto_front(trials: pd.DataFrame, cost: str = M.MACS) -> pd.DataFrame:
    """The completed trials that no other completed trial beats on both best val_acc (higher) and ``cost``
    (lower), by cost."""
    data = front_candidates(trials, cost)
    acc, c = data[M.BEST_VAL_ACC].to_numpy(), data[cost].to_numpy()
    keep = [not np.any((acc >= acc[i]) & (c <= c[i]) & ((acc > acc[i]) | (c < c[i]))) for i in range(len(data))]
    return data[np.array(keep, dtype=bool)].sort_values(cost).reset_index(drop=True)  # a list [] would pick columns


def lower_bounds(trials: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Trials stopped early or still running, with a best val_acc and ``cost``: lower bounds of what their
    configuration would reach, drawn apart from the front (``bound`` labels each by its status and epoch)."""
    data = trials[trials[M.STATUS].isin([PRUNED, RUNNING])].dropna(subset=[M.BEST_VAL_ACC, cost]).copy()
    data["bound"] = [f"{s}: lower bound at epoch {int(e)}" for s, e in zip(data[M.STATUS], data["epochs"], strict=True)]
    return data.sort_values(["epochs", cost]).reset_index(drop=True)


def cost(exp: Experiment) -> dict[str, float]:
    """Trial time in total, until the best result, and in trials that were later pruned; GPU hours if GPUs ran,
    with what the trials' processes measured of their GPUs (NaN where none did)."""
    hist, trials = exp.history, exp.trials
    total = float(hist[M.EPOCH_TIME_S].sum())
    validated = hist.dropna(subset=[M.VAL_ACC])
    best_s = float(validated.loc[validated[M.VAL_ACC].idxmax(), "time_s"]) if len(validated) else float("nan")
    until_best = float(hist.loc[hist["time_s"] <= best_s, M.EPOCH_TIME_S].sum())
    pruned_ids = set(trials.loc[trials[M.STATUS] == PRUNED, "trial_id"])
    gpus = float(exp.setting("search.gpus_per_trial", 0) or 0)
    return {
        "trials": len(trials),
        "trial_time_s": total,
        "wall_time_s": float(hist["time_s"].max()),
        "time_to_best_s": best_s,
        "trial_time_to_best_s": until_best,
        "pruned_trial_time_s": float(hist.loc[hist["trial_id"].isin(pruned_ids), M.EPOCH_TIME_S].sum()),
        "gpu_hours": total * gpus / 3600,
        **gpu_use(hist),
    }


GPU_COLUMNS = [M.GPU_UTILIZATION, M.GPU_MEMORY_PEAK]


def gpu_use(hist: pd.DataFrame) -> dict[str, float]:
    """Over the epochs of ``hist``: the GPUs' mean utilisation (weighted by epoch time), the share of time they sat
    idle (data loading, evaluation, checkpoints), the most memory one GPU held; NaN where no epoch measured them."""
    hist = hist.reindex(columns=[*hist.columns.difference(GPU_COLUMNS), *GPU_COLUMNS])  # NaN where never measured
    measured = hist.dropna(subset=[M.GPU_UTILIZATION, M.EPOCH_TIME_S])
    seconds = measured[M.EPOCH_TIME_S].sum()
    busy = float((measured[M.GPU_UTILIZATION] * measured[M.EPOCH_TIME_S]).sum() / seconds) if seconds else math.nan
    return {
        "gpu_utilization_percentage": busy,
        "gpu_idle_share": 1 - busy / 100,
        "gpu_memory_peak_megabytes": float(hist[M.GPU_MEMORY_PEAK].max()),
    }


def gpu_by_trial(exp: Experiment) -> pd.DataFrame:
    """Per trial that measured its GPUs: GPU-hours, mean utilisation, idle share, peak memory."""
    gpus = float(exp.setting("search.gpus_per_trial", 0) or 0)
    rows = []
    for trial_id, hist in exp.history.groupby("trial_id", sort=False):
        use = gpu_use(hist)
        if not math.isnan(use["gpu_utilization_percentage"]):
            rows.append({"trial_id": trial_id, "gpu_hours": hist[M.EPOCH_TIME_S].sum() * gpus / 3600, **use})
    return pd.DataFrame(rows)


def failures(exp: Experiment) -> pd.DataFrame:
    """The trials that diverged or failed, with the reason."""
    bad = exp.trials[exp.trials[M.STATUS].isin([FAILED, DIVERGED])]
    return bad[["trial_id", M.STATUS, M.REASON, "epochs"]].reset_index(drop=True)


def status_counts(exp: Experiment) -> dict[str, int]:
    """Trials by status (every ended status, and running)."""
    return {s: int((exp.trials[M.STATUS] == s).sum()) for s in (*ENDED, RUNNING)}


def missing(value: Any) -> bool:
    """Whether a value is absent: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones (YAML, JSON and Optuna want plain values)."""
    return value.item() if isinstance(value, np.generic) else value
