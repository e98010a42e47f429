"""The hand-written tests against scipy, and the O(resamples) bootstrap against the loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.measure.significance import (
    bootstrap_median_ratio,
    hodges_lehmann_ratio,
    mann_whitney_u,
    regularized_beta,
    student_t_quantile,
    welch_t_test,
)


@pytest.mark.parametrize("seed", range(12))
def test_mann_whitney_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(5, 300, size=2)
    shift = rng.choice([0.0, 0.02, 0.1])
    x = rng.lognormal(3, 0.3, n1)
    y = rng.lognormal(3 + shift, 0.3, n2)
    if seed % 2:  # heavy ties, as with a coarse timer
        x, y = np.round(x), np.round(y)
    ours = mann_whitney_u(x, y)
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_mann_whitney_many_ties_and_all_equal():
    x = [1, 1, 1, 2, 2, 3] * 5
    y = [2, 2, 3, 3, 3, 4] * 5
    ref = stats.mannwhitneyu(x, y, method="asymptotic")
    assert mann_whitney_u(x, y).p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert mann_whitney_u([5.0] * 10, [5.0] * 7).p_value == 1.0
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


@pytest.mark.parametrize(
    "m1,s1,n1,m2,s2,n2",
    [
        (10, 2, 5, 12, 3, 7),
        (100, 1, 50, 100.5, 1.5, 50),
        (4.0, 0.1, 1000, 4.4, 0.9, 30),
        (30, 5, 2, 31, 5, 2),
        (1e3, 10, 200000, 1e3 + 0.05, 10, 200000),
    ],
)
def test_welch_matches_scipy(m1, s1, n1, m2, s2, n2):
    ours = welch_t_test(m1, s1, n1, m2, s2, n2)
    ref = stats.ttest_ind_from_stats(m2, s2, n2, m1, s1, n1, equal_var=False)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    # lgamma cancellation costs digits at huge df; 1e-7 is far beyond what a verdict needs
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-7)


def test_welch_zero_variance_and_too_few():
    assert welch_t_test(5, 0, 10, 5, 0, 10).p_value == 1.0
    assert welch_t_test(5, 0, 10, 6, 0, 10).p_value == 0.0
    with pytest.raises(ValueError):
        welch_t_test(5, 1, 1, 6, 1, 10)


@pytest.mark.parametrize("df", [1, 2.5, 7.3, 30, 1e4])
@pytest.mark.parametrize("p", [0.005, 0.025, 0.5, 0.9, 0.995])
def test_t_quantile_matches_scipy(p, df):
    assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8, abs=1e-9)


@pytest.mark.parametrize("a,b,x", [(0.5, 0.5, 0.3), (3, 0.5, 0.99), (50, 0.5, 0.7), (2, 9, 0.1)])
def test_regularized_beta_matches_scipy(a, b, x):
    from scipy.special import betainc

    assert regularized_beta(a, b, x) == pytest.approx(betainc(a, b, x), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 4, 7, 100, 101])
def test_bootstrap_equals_resampling_loop_in_distribution(n):
    """The order-statistic bootstrap and the textbook resample-and-median loop agree:
    Kolmogorov distance between the two empirical distributions (40k draws each)."""
    rng = np.random.default_rng(n)
    x = rng.lognormal(3, 0.5, n)
    y = rng.lognormal(3.1, 0.5, n)
    fast = bootstrap_median_ratio(x, y, 40_000, np.random.default_rng(1))
    loop_rng = np.random.default_rng(2)
    bx = np.median(x[loop_rng.integers(0, n, (40_000, n))], axis=1)
    by = np.median(y[loop_rng.integers(0, n, (40_000, n))], axis=1)
    slow = by / bx - 1
    grid = np.unique(np.concatenate([fast, slow]))
    cdf_fast = np.searchsorted(np.sort(fast), grid, side="right") / len(fast)
    cdf_slow = np.searchsorted(np.sort(slow), grid, side="right") / len(slow)
    assert np.abs(cdf_fast - cdf_slow).max() < 0.015  # KS 1 % critical value: ~0.0115


def test_bootstrap_ci_covers_true_shift_in_most_trials():
    """Nominal 95 % percentile CI of a 10 % median shift: covered in >= 88 % of 200 trials."""
    rng = np.random.default_rng(1234)
    covered = 0
    for _ in range(200):
        x = rng.lognormal(3, 0.4, 150)
        y = rng.lognormal(3 + np.log(1.1), 0.4, 150)  # true median ratio: exactly 1.1
        boots = bootstrap_median_ratio(x, y, 2000, rng)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        covered += lo <= 0.1 <= hi
    assert covered >= 176


def test_bootstrap_is_reproducible_with_a_seed():
    x, y = np.arange(1.0, 51.0), np.arange(2.0, 52.0)
    a = bootstrap_median_ratio(x, y, 500, np.random.default_rng(7))
    b = bootstrap_median_ratio(x, y, 500, np.random.default_rng(7))
    assert np.array_equal(a, b)


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
