"""The Hodges-Lehmann diagnostic against brute force, and the round-level intervals
against scipy.stats (the oracle) and against constructed rounds with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.stats import mstats

from harness.measure.intervals import (
    latency_verdict,
    one_sample,
    paired_shift,
    rounds_to_resolve,
    trimmed_interval,
    two_run_shift,
    winsorized_std,
)
from harness.measure.significance import hodges_lehmann_ratio


@pytest.mark.parametrize("n,m", [(1, 1), (2, 3), (7, 7), (150, 151), (400, 300)])
def test_hodges_lehmann_equals_the_median_of_all_pairs(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    x, y = rng.lognormal(0, 0.3, n), rng.lognormal(0.1, 0.3, m).round(2)
    brute = np.expm1(np.median(np.log(y)[:, None] - np.log(x)[None, :]))
    assert hodges_lehmann_ratio(x, y) == pytest.approx(brute, rel=1e-9, abs=1e-12)


def test_hodges_lehmann_is_the_scale_factor_and_survives_zeros():
    x = np.random.default_rng(1).lognormal(0, 0.5, 20_000)  # thinned to quantiles
    assert hodges_lehmann_ratio(x, 1.25 * x) == pytest.approx(0.25, abs=1e-3)
    assert hodges_lehmann_ratio([5, 5, 5], [5, 5, 5]) == 0.0
    # a zero latency (a coarse timer) falls back to the additive shift over median(x)
    assert hodges_lehmann_ratio([0, 1, 2], [1, 2, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        hodges_lehmann_ratio([], [1.0])


@pytest.mark.parametrize("n", [3, 5, 10, 23])
def test_trimmed_interval_untrimmed_is_students_t(n):
    x = np.random.default_rng(n).normal(0, 0.05, n)
    center, lo, hi, df = trimmed_interval(x, 0.01, trim=0.0)
    ci = stats.ttest_1samp(x, 0).confidence_interval(0.99)
    assert (center, lo, hi) == pytest.approx((x.mean(), ci.low, ci.high), rel=1e-9)
    assert df == n - 1


@pytest.mark.parametrize("n", [5, 10, 23])
def test_trimmed_interval_matches_yuen_when_the_other_side_is_exact(n):
    # Yuen's two-sample interval against a constant series is the one-sample trimmed one
    x = np.random.default_rng(n).lognormal(0, 0.1, n)
    c, lo, hi, df = trimmed_interval(x, 0.05)
    res = stats.ttest_ind(x, np.zeros(n), equal_var=False, trim=0.2)
    ci = res.confidence_interval(0.95)
    assert (c, lo, hi, df) == pytest.approx((stats.trim_mean(x, 0.2), ci.low, ci.high, res.df))
    w = np.asarray(mstats.winsorize(x, limits=(0.2, 0.2)))
    assert winsorized_std(x) == pytest.approx(w.std(ddof=1))


def test_two_run_shift_is_scipys_yuen_on_the_logs():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 0.04, 10), rng.normal(0.1, 0.04, 8)
    iv = two_run_shift(a, b, 0.01)
    res = stats.ttest_ind(b, a, equal_var=False, trim=0.2)
    ci = res.confidence_interval(0.99)
    assert iv.ci_low == pytest.approx(math.expm1(ci.low))
    assert iv.ci_high == pytest.approx(math.expm1(ci.high))
    assert iv.p_value == pytest.approx(res.pvalue)
    assert iv.estimate == pytest.approx(
        math.expm1(stats.trim_mean(b, 0.2) - stats.trim_mean(a, 0.2))
    )


def rounds(seed: int, k: int, level: float = 0.0, sigma: float = 0.04) -> np.ndarray:
    """k log round centres: a level plus between-round noise."""
    return level + np.random.default_rng(seed).normal(0, sigma, k)


def test_a_pure_round_effect_is_not_a_regression():
    # the candidate's rounds include two 60 %-slow rounds (the other core was busy):
    # the typical round did not move, so no verdict may say slower
    base = rounds(1, 10)
    cand = rounds(2, 10)
    cand[[3, 7]] += math.log(1.6)
    iv = two_run_shift(base, cand, 0.01)
    assert latency_verdict(iv, 0.05) != "slower"
    assert abs(iv.estimate) < 0.05


def test_a_shift_under_round_noise_is_inconclusive_at_3_rounds_and_slower_at_30():
    shift = math.log(1.10)
    few = two_run_shift(rounds(4, 3), rounds(5, 3, shift), 0.01)
    assert latency_verdict(few, 0.05) == "inconclusive"
    n = rounds_to_resolve(few, 0.05)
    assert n is not None and n > 3
    many = two_run_shift(rounds(6, 30), rounds(7, 30, shift), 0.01)
    assert latency_verdict(many, 0.05) == "slower"
    assert many.ci_low > 0 and many.estimate == pytest.approx(0.10, abs=0.03)


def test_equivalence_needs_the_whole_interval_inside_the_threshold():
    tight = two_run_shift(rounds(8, 12, sigma=0.01), rounds(9, 12, sigma=0.01), 0.01)
    assert latency_verdict(tight, 0.05) == "same"
    loose = two_run_shift(rounds(8, 4, sigma=0.08), rounds(9, 4, sigma=0.08), 0.01)
    assert latency_verdict(loose, 0.05) == "inconclusive"


def test_faster_and_one_round_per_side():
    fast = two_run_shift(rounds(10, 10), rounds(11, 10, math.log(0.8)), 0.01)
    assert latency_verdict(fast, 0.05) == "faster"
    one = two_run_shift([0.0], [0.5], 0.01)
    assert not one.informative and latency_verdict(one, 0.05) == "inconclusive"


def test_paired_rounds_cancel_what_the_round_shares():
    # both models ran in the same rounds; the rounds' levels swing 30 %, the ratio is 1.1
    rng = np.random.default_rng(12)
    level = rng.normal(0, 0.3, 6)
    a = level + rng.normal(0, 0.005, 6)
    b = level + math.log(1.1) + rng.normal(0, 0.005, 6)
    assert latency_verdict(paired_shift(a, b, 0.01), 0.05) == "slower"
    assert latency_verdict(two_run_shift(a, b, 0.01), 0.05) == "inconclusive"


def test_one_sample_precision_narrows_with_rounds():
    wide = one_sample(rounds(13, 4), 0.05)
    narrow = one_sample(rounds(13, 40), 0.05)
    assert narrow.half_width < wide.half_width
    assert narrow.ci_low < 0 < narrow.ci_high


def test_expected_precision_is_one_samples_half_width_at_the_same_spread():
    from harness.measure.intervals import expected_precision

    x = rounds(14, 12)
    assert expected_precision(x, 12, 0.05) == pytest.approx(one_sample(x, 0.05).half_width)
    assert expected_precision(x, 24, 0.05) < expected_precision(x, 12, 0.05)
    assert expected_precision(x[:1], 2, 0.05) == math.inf
