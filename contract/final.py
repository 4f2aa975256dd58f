"""The final phase's numbers, computed one way for the search's summary and for the report.

After the search, each candidate (the best completed configurations, and the baseline) is retrained from scratch
with several seeds and measured once on the test split. One row per such run goes in; out come each candidate's
test accuracy over its seeds (mean, standard deviation, 95% interval), the winner and its gain over the baseline.

The winner is chosen on validation numbers (each candidate's mean last-epoch val_acc over its seeds; the baseline
competes too), never on test: the test numbers are only reported, so they stay an unbiased estimate of what the
winner does on new data.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from contract.metrics import STATUS, TEST_ACC, VAL_ACC
from contract.status import COMPLETED

SOURCE, SEED, BASELINE = "source", "seed", "baseline"  # a row's keys besides status, val_acc and test_acc

# Two-sided 95% quantiles of Student's t by degrees of freedom; between rows the smaller df is used (wider).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip


def t95(df: float) -> float:
    """Student's t at 95% (two-sided) for ``df`` degrees of freedom: rounded down to the table (wider, the
    safe side); infinite below 1."""
    if df < 1:
        return math.inf
    return _T95[max(k for k in _T95 if k <= df)] if df <= 120 else 1.960


@dataclass(frozen=True)
class Estimate:
    """A mean over runs with its spread: ``std`` of the runs; ``low``/``high`` the 95% interval of the mean
    (None with fewer than 2 runs)."""

    mean: float
    std: float | None
    n: int
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: list[float]) -> Estimate:
        """Mean, standard deviation and the 95% interval of ``values`` (no spread from fewer than 2)."""
        mean = statistics.fmean(values)
        if len(values) < 2:
            return cls(mean, None, len(values), None, None)
        std = statistics.stdev(values)
        half = t95(len(values) - 1) * std / math.sqrt(len(values))
        return cls(mean, std, len(values), mean - half, mean + half)


@dataclass(frozen=True)
class Gain:
    """winner - baseline in mean test accuracy, with Welch's 95% interval (None with fewer than 2 runs each)."""

    mean: float
    low: float | None
    high: float | None

    @classmethod
    def between(cls, a: list[float], b: list[float]) -> Gain:
        """The difference of the means of ``a`` and ``b`` and Welch's 95% interval (none from fewer than 2 each)."""
        mean = statistics.fmean(a) - statistics.fmean(b)
        if len(a) < 2 or len(b) < 2:
            return cls(mean, None, None)
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        se = math.sqrt(va + vb)
        if se == 0:
            return cls(mean, mean, mean)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        return cls(mean, mean - t95(df) * se, mean + t95(df) * se)

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0: the runs tell the two apart."""
        return self.low is not None and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Candidate:
    """One retrained configuration: its source trial, whether it is the baseline, its seeds and numbers."""

    source: str  # the search trial whose configuration was retrained
    baseline: bool
    seeds: list[int]
    test: Estimate
    val: Estimate  # last-epoch val_acc: what chooses the winner


@dataclass
class FinalResult:
    """The final phase: its candidates, the winner (best mean val), the baseline and the winner's gain."""

    candidates: list[Candidate] = field(default_factory=list)
    winner: str | None = None  # a candidate's source
    baseline: str | None = None
    gain: Gain | None = None  # None when there is no baseline, or the winner is the baseline
    failed: list[str] = field(default_factory=list)  # sources none of whose runs completed with a test number
    ranked: list[str] = field(default_factory=list)  # every source in the rows' order: the search's best first

    def candidate(self, source: str | None) -> Candidate | None:
        """The candidate retrained from ``source``, or None."""
        return next((c for c in self.candidates if c.source == source), None)

    def verdict(self, split: str = "test") -> str:
        """One sentence on winner against baseline, for the printed summary and the report; ``split``: what the
        final runs were measured on (val for an image folder without a test split)."""
        if self.winner is None:
            return "no candidate finished its final runs"
        if self.baseline is None:
            return "no baseline was retrained (search.baseline off): nothing to compare the winner with"
        if self.winner == self.baseline:
            best = self.ranked[0] if self.ranked else self.baseline
            if best == self.baseline:
                return "the search's best configuration is the baseline's own"
            if best in self.failed:
                return "every final run of the search's best failed: the baseline won by default"
            return "the baseline won the final phase: the search's best did not hold up on retraining"
        if self.gain.low is None:
            return "too few final runs to tell the winner from the baseline (2 seeds each at least)"
        if self.gain.distinguishable:
            better = "better" if self.gain.mean > 0 else "worse"
            return f"the winner is {better} than the baseline on {split} (the gain's 95% interval excludes 0)"
        return f"the winner cannot be told apart from the baseline on {split} (the gain's 95% interval includes 0)"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for ``search_summary.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FinalResult:
        """The result ``to_dict`` wrote (keys an earlier version did not write are empty)."""
        candidates = [
            Candidate(**{**c, "test": Estimate(**c["test"]), "val": Estimate(**c["val"])}) for c in values["candidates"]
        ]
        gain = Gain(**values["gain"]) if values.get("gain") else None
        found = [list(values.get(key, [])) for key in ("failed", "ranked")]
        return cls(candidates, values.get("winner"), values.get("baseline"), gain, *found)

    def metrics(self) -> dict[str, float]:
        """The parent run's metrics of the final phase: the winner's and the baseline's test accuracy, the gain."""
        out: dict[str, float] = {}
        for prefix, source in (("final_", self.winner), ("baseline_", self.baseline)):
            c = self.candidate(source)
            if c is not None:
                values = {"mean": c.test.mean, "std": c.test.std, "low": c.test.low, "high": c.test.high}
                out |= {f"{prefix}{TEST_ACC}_{k}": v for k, v in values.items() if v is not None}
        if self.gain is not None:
            values = {"mean": self.gain.mean, "low": self.gain.low, "high": self.gain.high}
            out |= {f"final_gain_{k}": v for k, v in values.items() if v is not None}
        return out


def summarize(rows: Iterable[Mapping[str, Any]]) -> FinalResult:
    """The final phase from one row per run: ``source``, ``seed``, ``baseline``, ``status``, ``val_acc`` (last
    epoch) and ``test_acc``. Only completed runs with a test number count."""
    rows = list(rows)
    done = [r for r in rows if r.get(STATUS) == COMPLETED and r.get(TEST_ACC) is not None]
    sources = list(dict.fromkeys(r[SOURCE] for r in done))  # in the order the runs came
    groups = {s: sorted((r for r in done if r[SOURCE] == s), key=lambda r: r[SEED]) for s in sources}
    candidates = [
        Candidate(
            source=s,
            baseline=any(r.get(BASELINE) for r in g),
            seeds=[int(r[SEED]) for r in g],
            test=Estimate.of([float(r[TEST_ACC]) for r in g]),
            val=Estimate.of([float(r[VAL_ACC]) for r in g]),
        )
        for s, g in groups.items()
    ]
    ranked = list(dict.fromkeys(r[SOURCE] for r in rows))
    result = FinalResult(candidates, failed=[s for s in ranked if s not in groups], ranked=ranked)
    baseline = next((c for c in candidates if c.baseline), None)
    if not candidates:
        return result
    winner = max(candidates, key=lambda c: c.val.mean)  # max keeps the first of equals: the search's better-ranked
    result.winner, result.baseline = winner.source, baseline.source if baseline else None
    if baseline is not None and winner is not baseline:
        result.gain = Gain.between(
            [float(r[TEST_ACC]) for r in groups[winner.source]], [float(r[TEST_ACC]) for r in groups[baseline.source]]
        )
    return result
