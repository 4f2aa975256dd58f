"""The final phase's intervals: an accuracy over training seeds, and the gain of one configuration over another.

Each final run is one training seed measured on one fixed set of images (the test split, or val where there is
none). Two sources of noise stand between those numbers and what a configuration does on new data:
- the seeds: another seed trains another model (the spread between runs);
- the images: another test set of the same size scores the same model differently (one image of 359 is 0.28 points).

``Estimate`` is a configuration's accuracy over its seeds, on the fixed images; its interval is Student's t around
the logit of the mean (the delta method), so it holds the mean and stays inside [0, 1]. ``Gain`` is the difference
of two configurations: Welch's interval over the seeds (the fixed images), and, where each run's per-image hits on
the same images are known (``contract.hits``), the interval over seeds and images: the variance of the paired
per-image differences added to the seeds', with the seeds' degrees of freedom, so it is never the narrower one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, fields
from typing import Any

# Two-sided 95% quantiles of Student's t by degrees of freedom; between rows the smaller df is used (wider).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip
Z95 = 1.959964  # the normal distribution's two-sided 95% quantile


def t95(df: float) -> float:
    """Student's t at 95% (two-sided) for ``df`` degrees of freedom: rounded down to the table (wider, the
    safe side); infinite below 1."""
    if df < 1:
        return math.inf
    return _T95[max(k for k in _T95 if k <= df)]


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def wilson(p: float, items: int) -> tuple[float, float]:
    """The 95% Wilson interval of an accuracy ``p`` measured on ``items`` images: where the accuracy on every image
    like these lies, as far as that many images can tell (a finite sample's own error); inside [0, 1]."""
    z2 = Z95**2
    centre = (p + z2 / (2 * items)) / (1 + z2 / items)
    half = Z95 * math.sqrt(p * (1 - p) / items + z2 / (4 * items**2)) / (1 + z2 / items)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Estimate:
    """An accuracy over ``n`` runs (one training seed each, the same ``items`` images): the mean, the runs'
    standard deviation, and the 95% interval of the mean over seeds (Student's t around the logit of the mean: it
    holds the mean and stays inside (0, 1)). ``std`` is None below 2 runs; ``low``/``high`` are None below 2 runs
    and where every run scored the same (no spread: nothing to build an interval from)."""

    mean: float
    std: float | None
    n: int
    low: float | None
    high: float | None
    items: int | None = None  # images each run was measured on, where known

    @classmethod
    def of(cls, values: list[float], items: int | None = None) -> Estimate:
        """The estimate of ``values`` (accuracies in [0, 1]), each measured on ``items`` images."""
        mean = statistics.fmean(values)
        if len(values) < 2:
            return cls(mean, None, len(values), None, None, items)
        std = statistics.stdev(values)
        if std == 0:
            return cls(mean, std, len(values), None, None, items)
        # Values that differ put their mean strictly inside (0, 1): its logit is finite.
        centre = math.log(mean / (1 - mean))
        half = t95(len(values) - 1) * std / math.sqrt(len(values)) / (mean * (1 - mean))
        return cls(mean, std, len(values), _expit(centre - half), _expit(centre + half), items)

    @property
    def no_spread(self) -> bool:
        """At least 2 runs, all with the same number."""
        return self.std == 0

    def covers(self) -> str:
        """What the interval is over: ``over 3 training seeds, the same 359 images``."""
        images = f"the same {self.items:,} images" if self.items else "the same images"
        return f"over {self.n} training seed{'s' if self.n != 1 else ''}, {images}"

    def describe(self) -> str:
        """``0.9123 ± 0.0050 (95% interval 0.9001 to 0.9245 over 3 training seeds, the same 359 images)``."""
        if self.std is None:
            return f"{self.mean:.4f} ({self.n} run: spread unknown)"
        if self.no_spread:
            return f"{self.mean:.4f} (no spread in {self.n} runs: every one scored the same)"
        return f"{self.mean:.4f} ± {self.std:.4f} (95% interval {self.low:.4f} to {self.high:.4f} {self.covers()})"

    def images_error(self) -> str | None:
        """What the images alone leave open at this accuracy (None where their number is unknown)."""
        if not self.items:
            return None
        low, high = wilson(self.mean, self.items)
        return (
            f"{low:.4f} to {high:.4f} (95% Wilson interval at {self.items:,} images, for the accuracy on every image "
            f"like these; one image is {100 / self.items:.2f} points)"
        )


@dataclass(frozen=True)
class Gain:
    """``a - b`` in mean accuracy. ``low``/``high``: Welch's 95% interval over the training seeds, on the fixed
    images (None below 2 runs a side, or with no spread on either side). ``paired_low``/``paired_high``: the
    interval that adds the images' own sampling error (None without every run's per-image hits)."""

    mean: float
    low: float | None = None
    high: float | None = None
    paired_low: float | None = None
    paired_high: float | None = None
    items: int | None = None
    runs: tuple[int, int] = (0, 0)  # runs of a and of b

    @classmethod
    def between(cls, a: list[float], b: list[float], hits_a: list | None = None, hits_b: list | None = None) -> Gain:
        """The gain of ``a``'s runs over ``b``'s; ``hits_*``: each run's per-image hits (0/1, the same images in
        the same order), or None."""
        mean = statistics.fmean(a) - statistics.fmean(b)
        gain = {"mean": mean, "runs": (len(a), len(b))}
        if len(a) < 2 or len(b) < 2:
            return cls(**gain)
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        df = None
        if va + vb > 0:
            df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
            half = t95(df) * math.sqrt(va + vb)
            gain |= {"low": mean - half, "high": mean + half}
        if hits_a and hits_b and _same_length(hits_a + hits_b):
            gain |= _paired(mean, hits_a, hits_b, va + vb, df)
        return cls(**gain)

    def describe(self) -> str:
        """``+2.10 points (95% interval over seeds, the images fixed: +0.52 to +3.68; over seeds and images: ...)``."""
        if self.low is not None:
            said = [f"95% interval over seeds, the images fixed: {100 * self.low:+.2f} to {100 * self.high:+.2f}"]
        elif min(self.runs) >= 2:
            said = ["no spread over seeds on either side"]
        else:
            said = ["fewer than 2 runs on a side: no interval"]
        if self.paired_low is not None:
            said.append(f"over seeds and images: {100 * self.paired_low:+.2f} to {100 * self.paired_high:+.2f}")
        return f"{100 * self.mean:+.2f} points ({'; '.join(said)})"

    @property
    def interval(self) -> tuple[float, float] | None:
        """What a verdict reads: over seeds and images where the hits are known (never the narrower), else over
        seeds alone; None without either."""
        if self.paired_low is not None:
            return self.paired_low, self.paired_high
        return (self.low, self.high) if self.low is not None else None

    @property
    def over(self) -> str:
        """What ``interval`` covers."""
        return "over seeds and images" if self.paired_low is not None else "over seeds only, the images fixed"

    @property
    def distinguishable(self) -> bool:
        """That interval excludes 0: the runs tell the two apart."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Gain:
        """The gain ``dataclasses.asdict`` wrote. An interval of zero width (written where no run had any spread)
        is no interval."""
        known = {f.name for f in fields(cls)}
        gain = {k: v for k, v in values.items() if k in known}
        if "runs" in gain:
            gain["runs"] = tuple(gain["runs"])
        for low, high in (("low", "high"), ("paired_low", "paired_high")):
            if gain.get(low) is not None and gain.get(low) == gain.get(high):
                gain[low] = gain[high] = None
        return cls(**gain)


def _same_length(hits: list) -> bool:
    return len({len(h) for h in hits}) == 1 and len(hits[0]) > 1


def _paired(mean: float, hits_a: list, hits_b: list, seeds_var: float, seeds_df: float | None) -> dict[str, float]:
    """Seeds and images together: the variance of the mean per-image difference (the same images scored by both
    sides, so each image's difficulty cancels) added to the seeds' variance. The quantile is Welch's (the seeds'
    degrees of freedom), or the images' (n - 1) where the seeds have no spread: more variance at the same quantile,
    so never narrower than Welch's. (The per-image term also holds some seed noise: the interval errs wide.)"""
    per_image = zip(zip(*hits_a, strict=True), zip(*hits_b, strict=True), strict=True)  # _same_length checked
    d = [sum(a) / len(hits_a) - sum(b) / len(hits_b) for a, b in per_image]
    n = len(d)
    total = seeds_var + statistics.variance(d) / n
    if total == 0:  # every image's difference is the same on every run
        return {"items": n}
    half = t95(seeds_df if seeds_df is not None else n - 1) * math.sqrt(total)
    return {"paired_low": mean - half, "paired_high": mean + half, "items": n}
