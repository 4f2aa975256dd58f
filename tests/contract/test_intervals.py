"""The final phase's statistics against scipy: Student's t, the accuracy interval on the logit scale, Welch's
interval of a gain, the paired per-image interval, Wilson's interval; and the hits' encoding (contract.hits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from contract.hits import decode, encode
from contract.intervals import Estimate, Gain, t95, wilson

TABLE_DF = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 60, 120)


def _table_df(df: float) -> int:
    """The table's row t95 reads for ``df``: the largest at most ``df`` (the reference rounds the same way)."""
    return max(k for k in TABLE_DF if k <= df)


@pytest.mark.parametrize("df", TABLE_DF)
def test_the_t_table_is_students_t(df):
    assert t95(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)


@pytest.mark.parametrize("df", [1.5, 2.7, 11, 13.9, 25, 45, 100, 119.9, 358, 10**6])
def test_between_rows_the_quantile_is_never_narrower(df):
    assert t95(df) >= stats.t.ppf(0.975, df)
    assert t95(df) == pytest.approx(stats.t.ppf(0.975, _table_df(df)), abs=6e-4)


def test_below_one_degree_of_freedom_there_is_no_interval():
    assert t95(0.5) == math.inf


@pytest.mark.parametrize(
    "values",
    [
        [0.91, 0.93, 0.92],
        [0.80, 0.95, 0.99, 1.0],  # near 1: a plain t interval runs past 1.0
        [0.10, 0.02, 0.0],
        [0.5, 0.6],
        [0.6, 0.999, 0.999, 0.999, 0.999, 0.999],  # one bad seed: the interval must still hold the mean
    ],
)
def test_an_accuracy_interval_is_students_t_on_the_logit_of_the_mean_inside_0_1(values):
    """The delta method: logit(mean) +- t * sem / (mean (1 - mean)), back through the logistic function."""
    e = Estimate.of(values, 359)
    mean = np.mean(values)
    half = stats.t.ppf(0.975, len(values) - 1) * stats.sem(values) / (mean * (1 - mean))
    expit = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    logit = math.log(mean / (1 - mean))
    # the table holds t to 3 decimals: within 5e-4 of the exact quantile's bounds
    assert e.low == pytest.approx(expit(logit - half), abs=5e-4)
    assert e.high == pytest.approx(expit(logit + half), abs=5e-4)
    assert 0 < e.low < e.mean < e.high < 1
    assert e.mean == pytest.approx(mean) and e.std == pytest.approx(np.std(values, ddof=1))
    assert e.describe().endswith(f"over {len(values)} training seeds, the same 359 images)")


def test_an_interval_that_a_plain_t_would_run_past_one_is_bounded():
    """Three seeds spread as in a default digits run: the plain t interval ends above 1.0, this one below."""
    values = [0.8329, 0.9415, 0.9861]
    mean, half = np.mean(values), stats.t.ppf(0.975, 2) * stats.sem(values)
    assert mean + half > 1  # the plain interval runs past 1.0
    e = Estimate.of(values, 359)
    assert e.high < 1 and e.low < e.mean < e.high


def test_no_spread_gives_no_interval_and_says_so():
    e = Estimate.of([0.9, 0.9, 0.9], 359)
    assert e.no_spread and e.low is None and e.high is None
    assert e.describe() == "0.9000 (no spread in 3 runs: every one scored the same)"
    one = Estimate.of([0.9])
    assert one.std is None and one.low is None and "1 run: spread unknown" in one.describe()


def test_wilson_is_scipys():
    for k, n in ((300, 359), (359, 359), (0, 50), (9990, 10000)):
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k / n, n) == pytest.approx((ci.low, ci.high), abs=2e-6)


def test_a_gain_over_seeds_is_welchs():
    a, b = [0.91, 0.93, 0.92, 0.95], [0.88, 0.90, 0.86]
    g = Gain.between(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    se = (np.mean(a) - np.mean(b)) / ref.statistic
    half = stats.t.ppf(0.975, _table_df(ref.df)) * se
    assert g.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert (g.low, g.high) == pytest.approx((g.mean - half, g.mean + half), abs=1e-4)
    ci = ref.confidence_interval(0.95)  # scipy's exact df: ours is as wide or wider
    assert g.low <= ci.low and g.high >= ci.high
    assert g.paired_low is None and g.interval == (g.low, g.high) and g.distinguishable


def test_equal_numbers_on_every_seed_are_no_certainty():
    """Every seed scores the same on both sides, one test image apart. No seed interval; with
    the per-image hits, the images' own error decides: one image of 359 cannot tell the two apart."""
    base = np.ones(359, dtype=bool)
    base[:30] = False
    better = base.copy()
    better[0] = True  # one image more
    g = Gain.between([better.mean()] * 3, [base.mean()] * 3)
    assert g.low is None and g.interval is None and not g.distinguishable
    assert "no spread over seeds on either side" in g.describe()
    paired = Gain.between([better.mean()] * 3, [base.mean()] * 3, [better] * 3, [base] * 3)
    assert paired.interval is not None and paired.interval[0] < 0 < paired.interval[1]


def test_the_paired_interval_is_the_paired_t_test_where_the_seeds_agree():
    """Each side's runs score the same (no seed variance) on different images: what is left is the paired per-image
    difference, scipy's one-sample t interval on it (our df is the table's 120 row: a little wider)."""
    rng = np.random.default_rng(1)
    n = 359
    a = [rng.random(n) < 0.9 for _ in range(2)]
    a[1] = np.roll(a[0], 5)  # the same accuracy, other images
    b = [rng.random(n) < 0.85 for _ in range(2)]
    b[1] = np.roll(b[0], 7)
    g = Gain.between([h.mean() for h in a], [h.mean() for h in b], a, b)
    d = np.mean(a, axis=0) - np.mean(b, axis=0)
    se = stats.sem(d)
    assert (g.paired_low, g.paired_high) == pytest.approx((d.mean() - 1.980 * se, d.mean() + 1.980 * se), abs=1e-9)
    ci = stats.ttest_1samp(d, 0).confidence_interval(0.95)
    assert g.paired_low <= ci.low and g.paired_high >= ci.high
    assert g.paired_high - g.paired_low == pytest.approx(ci.high - ci.low, rel=0.01)
    assert g.items == n and g.low is None  # no seed spread: no Welch interval


def test_the_paired_interval_adds_the_images_to_the_seeds():
    """Seeds and images together: each side's seed variance plus the per-image variance, at Welch's quantile, so it
    is never narrower than Welch's interval over seeds alone."""
    rng = np.random.default_rng(2)
    n = 500
    a = [rng.random(n) < p for p in (0.90, 0.92, 0.88)]
    b = [rng.random(n) < p for p in (0.85, 0.86)]
    acc_a, acc_b = [h.mean() for h in a], [h.mean() for h in b]
    g = Gain.between(acc_a, acc_b, a, b)
    welch = stats.ttest_ind(acc_a, acc_b, equal_var=False)
    va, vb = np.var(acc_a, ddof=1) / 3, np.var(acc_b, ddof=1) / 2
    vd = np.var(np.mean(a, axis=0) - np.mean(b, axis=0), ddof=1) / n
    half = stats.t.ppf(0.975, _table_df(welch.df)) * math.sqrt(va + vb + vd)
    assert (g.paired_low, g.paired_high) == pytest.approx((g.mean - half, g.mean + half), abs=1e-3)
    assert g.paired_low < g.low and g.paired_high > g.high and g.interval == (g.paired_low, g.paired_high)
    assert g.over == "over seeds and images"


def test_an_interval_of_zero_width_read_back_is_no_interval():
    """A summary written where no run had any spread kept low == high == mean: that is no certainty."""
    g = Gain.from_dict({"mean": 0.0025, "low": 0.0025, "high": 0.0025})
    assert g.interval is None and not g.distinguishable


def test_fewer_than_two_runs_a_side_give_no_interval():
    g = Gain.between([0.9], [0.8, 0.82])
    assert g.low is None and g.interval is None and not g.distinguishable and g.runs == (1, 2)
    assert "fewer than 2 runs on a side" in g.describe()


@pytest.mark.parametrize("n", [1, 7, 8, 359, 10_000])
def test_hits_survive_their_encoding_with_their_images(n):
    rng = np.random.default_rng(n)
    hits, labels = rng.random(n) < 0.5, rng.integers(0, 10, n).tolist()
    text = encode(hits, labels)
    images, decoded = decode(text)
    assert np.array_equal(decoded, hits.astype(np.uint8)) and images == decode(encode([], labels))[0]
    assert images != decode(encode([], labels[::-1]))[0] or labels == labels[::-1]  # another order, other images
    assert len(text) < n / 5 + 30  # packed: a character per 6 images
