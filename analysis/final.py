"""The final phase as plain data: its runs (``Experiment.final``) summed up by ``contract.final``, the one place
that computes its statistics, and the tables and phrases the report shows them with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Experiment
from analysis.summarize import missing
from contract import metrics as M
from contract import ranking
from contract.final import SEED, SOURCE, Estimate, FinalResult, summarize
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
    return None if exp.final.empty else summarize(rows(exp))


def winner(exp: Experiment) -> str | None:
    """The final phase's winner (a search trial id), the configuration to recommend; None without a final phase."""
    res = result(exp)
    return res.winner if res is not None else None


def counted(exp: Experiment) -> pd.DataFrame:
    """The final runs that ``summarize`` counts: completed, with a test number."""
    done = pd.DataFrame(rows(exp), columns=exp.final.columns)
    return done[(done[M.STATUS] == COMPLETED) & done[M.TEST_ACC].notna()]


def candidates_table(res: FinalResult) -> pd.DataFrame:
    """One row per candidate, the winner first: its test accuracy over seeds and its mean last-epoch val_acc."""
    order = sorted(res.candidates, key=lambda c: c.source != res.winner)
    return pd.DataFrame(
        [
            {
                "candidate (search trial)": c.source,
                "baseline": c.baseline,
                "winner": c.source == res.winner,
                "seeds": ", ".join(map(str, c.seeds)),
                f"{M.TEST_ACC} mean": c.test.mean,
                f"{M.TEST_ACC} std": c.test.std,
                "95% low": c.test.low,
                "95% high": c.test.high,
                f"{M.VAL_ACC} mean (last epoch)": c.val.mean,
            }
            for c in order
        ]
    )


def fidelity_phrase(exp: Experiment, res: FinalResult) -> str:
    """ "test split, trained from scratch for N epochs, K seeds", from the runs themselves."""
    epochs = sorted({int(e) for e in counted(exp)["epochs"].dropna()})
    span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]} to {epochs[-1]}" if epochs else "an unknown number of"
    seeds = sorted({c.test.n for c in res.candidates})
    per = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]} seeds (see each candidate's)"
    return f"test split, trained from scratch for {span} epochs, {per}"


def estimate_phrase(e: Estimate) -> str:
    """``0.9123 ± 0.0050 (95% interval 0.9001 to 0.9245, 3 seeds)``; the spread only where there are 2 runs."""
    if e.std is None:
        return f"{e.mean:.4f} (1 seed: no spread)"
    return f"{e.mean:.4f} ± {e.std:.4f} (95% interval {e.low:.4f} to {e.high:.4f}, {e.n} seeds)"


def gain_phrase(res: FinalResult) -> str | None:
    """The winner's gain over the baseline in points of test accuracy, with Welch's interval."""
    if res.gain is None:
        return None
    g = res.gain
    interval = "no interval: fewer than 2 runs each" if g.low is None else f"95% interval {100 * g.low:+.2f} to "
    interval += "" if g.low is None else f"{100 * g.high:+.2f}, Welch"
    return f"{100 * g.mean:+.2f} points of test accuracy ({interval})"
