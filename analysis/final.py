"""The final phase as plain data: its runs (``Experiment.final``) summed up by ``contract.final``, the one place
that computes its statistics, and the tables and phrases the report shows them with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Experiment
from analysis.summarize import baseline_trial, missing
from contract import metrics as M
from contract import ranking
from contract.final import MEASURED, SEED, SOURCE, FinalResult, summarize
from contract.status import COMPLETED


def rows(exp: Experiment) -> list[dict[str, Any]]:
    """The final runs as ``contract.final.summarize`` takes them: plain Python values, a missing number None (pandas
    holds it as NaN, which ``summarize`` would count as a measurement), in the order of their source in the search's
    ranking (``summarize`` breaks a tie on val for the candidate that came first; MLflow returns newest first)."""
    rank = {r["trial_id"]: i for i, r in enumerate(ranking.ranked(exp.trials.to_dict("records")))}
    out = []
    for record in exp.final.to_dict("records"):
        row = {k: None if missing(v) else (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
        if row[SOURCE] is not None and row[SEED] is not None:  # a run without them belongs to no candidate
            row[SEED] = int(row[SEED])
            out.append(row)
    return sorted(out, key=lambda r: (rank.get(r[SOURCE], len(rank)), r[SEED]))


def result(exp: Experiment) -> FinalResult | None:
    """The final phase's numbers; None where no final run was found."""
    if exp.final.empty:
        return None
    baseline = baseline_trial(exp)
    return summarize(rows(exp), exp.final_split, None if baseline is None else str(baseline[M.STATUS]))


def winner(exp: Experiment) -> str | None:
    """The final phase's winner (a search trial id), the configuration to recommend; None without a final phase."""
    res = result(exp)
    return res.winner if res is not None else None


def counted(exp: Experiment) -> pd.DataFrame:
    """The final runs that ``summarize`` counts: completed, with a number on the final split."""
    done = pd.DataFrame(rows(exp), columns=exp.final.columns)
    return done[(done[M.STATUS] == COMPLETED) & done[MEASURED[exp.final_split]].notna()]


def candidates_table(res: FinalResult) -> pd.DataFrame:
    """One row per candidate in the search's order (its pick first): its accuracy on the final split over its
    completed seeds, its mean last-epoch val_acc, and how its runs ended."""
    acc = MEASURED[res.split]
    table = []
    for source in res.ranked:
        c = res.candidate(source)
        row = {
            "candidate (search trial)": source,
            "role": ", ".join(res.roles(source)),
            "runs": res.ends(source),
        }
        if c is not None:
            row |= {
                "seeds": ", ".join(map(str, c.seeds)),
                f"{acc} mean": c.measured.mean,
                f"{acc} std": c.measured.std,
                "95% low (seeds)": c.measured.low,
                "95% high (seeds)": c.measured.high,
                f"{M.VAL_ACC} mean (last epoch)": c.val.mean,
            }
        table.append(row)
    return _numbers(pd.DataFrame(table))


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    """Columns of numbers as floats, a number that does not exist (no interval below 2 runs) NaN: shown empty."""
    for column in table.columns:
        values = table[column].dropna()
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            table[column] = table[column].astype(float)
    return table


def gains_table(res: FinalResult) -> pd.DataFrame:
    """One row per candidate compared with the baseline: the gain, its interval over seeds (the images fixed) and
    over seeds and images (where every run's per-image hits are known), in points."""

    def points(value: float | None) -> float | None:
        return None if value is None else 100 * value

    return pd.DataFrame([
        {
            "candidate - baseline": source,
            "gain (points)": points(g.mean),
            "95% low, seeds": points(g.low),
            "95% high, seeds": points(g.high),
            "95% low, seeds and images": points(g.paired_low),
            "95% high, seeds and images": points(g.paired_high),
        }
        for source, g in res.gains.items()
    ]).pipe(_numbers)  # fmt: skip


def fidelity_phrase(exp: Experiment, res: FinalResult) -> str:
    """ "test split, trained from scratch for N epochs, K seeds", from the runs themselves."""
    epochs = sorted({int(e) for e in counted(exp)["epochs"].dropna()})
    span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]} to {epochs[-1]}" if epochs else "an unknown number of"
    seeds = sorted({c.measured.n for c in res.candidates})
    per = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]} seeds (see each candidate's)"
    return f"{res.split} split, trained from scratch for {span} epochs, {per}"
