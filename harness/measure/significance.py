"""Significance tests and a bootstrap for comparing two latency series: pure, numpy only.

- `mann_whitney_u`: two-sided Mann-Whitney U with the normal approximation, the tie
  correction of the variance and a continuity correction of 0.5 (what
  scipy.stats.mannwhitneyu(method="asymptotic") computes).
- `welch_t_test`: Welch's unequal-variance t-test from mean/std/count only, for
  aggregate-only series (Android's benchmark_model reports no raw samples). The
  Student t tail comes from the regularised incomplete beta function.
- `bootstrap_median_ratio`: the bootstrap distribution of median(y*)/median(x*) - 1,
  with x* and y* resampled independently. It is exact and O(resamples), not
  O(resamples x n): the median of a resample with replacement is an order statistic of
  n uniform draws mapped through the empirical quantile function, and the k-th order
  statistic of n uniforms is Beta(k, n - k + 1) distributed (for an even n the next
  one follows as u + (1 - u) * Beta(1, n - k)). Same distribution as the textbook
  loop, without ever materialising the resamples.
- `hodges_lehmann_ratio`: the typical relative shift from x to y, exp(median over all
  pairs of log y_j - log x_i) - 1: the estimator that belongs to the Mann-Whitney test.
  Unlike the change of the median it stays put when samples bunch into modes. The
  median of the n*m pairwise differences is found by bisection on their value with a
  sorted count per step, never materialising the pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Significance:
    """A two-sided test: its statistic (U for x, or Welch's t) and p-value."""

    statistic: float
    p_value: float
    df: float | None = None  # Welch's degrees of freedom; None for Mann-Whitney


def mann_whitney_u(x, y) -> Significance:
    """Two-sided Mann-Whitney U test of x against y (normal approximation)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u needs two non-empty samples")
    ranks, tie_counts = _average_ranks(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    n = n1 + n2
    ties = float(np.sum(tie_counts.astype(np.float64) ** 3 - tie_counts))
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:  # every value equal: no evidence of any difference
        return Significance(u1, 1.0)
    z = (max(u1, u2) - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    return Significance(u1, min(1.0, max(0.0, 2 * normal_sf(z))))


def _average_ranks(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of each tie group."""
    order = np.argsort(v, kind="mergesort")
    s = v[order]
    first = np.r_[True, s[1:] != s[:-1]]
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, len(s)])
    ranks = np.empty(len(v))
    ranks[order] = (starts + (counts + 1) / 2)[np.cumsum(first) - 1]
    return ranks, counts


def welch_t_test(
    mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int
) -> Significance:
    """Welch's two-sided t-test from summary statistics (std with ddof=1)."""
    if n1 < 2 or n2 < 2:
        raise ValueError("welch_t_test needs at least 2 samples per side")
    v1, v2 = std1**2 / n1, std2**2 / n2
    se2 = v1 + v2
    if se2 <= 0:
        same = mean1 == mean2
        return Significance(
            0.0 if same else math.copysign(math.inf, mean2 - mean1),
            1.0 if same else 0.0,
            float(n1 + n2 - 2),
        )
    t = (mean2 - mean1) / math.sqrt(se2)
    df = se2**2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    return Significance(t, student_t_two_sided_p(t, df), df)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z, accurate in the far tail."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def normal_quantile(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    if df > 1e7:  # the t is a normal here, and the beta fraction converges slowly
        return min(1.0, 2 * normal_sf(abs(t)))
    return regularized_beta(df / 2, 0.5, df / (df + t * t))


def student_t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on the two-sided tail; 1e-10 relative)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    target = 2 * min(p, 1 - p)
    lo, hi = 0.0, 1.0
    while student_t_two_sided_p(hi, df) > target:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if student_t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-10 * hi:
            break
    t = (lo + hi) / 2
    return t if p > 0.5 else -t


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by Lentz's continued fraction (Numerical Recipes, betai)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300

    def nz(v: float) -> float:
        return v if abs(v) > tiny else tiny

    c, d = 1.0, 1 / nz(1 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, 100_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 / nz(1 + num * d)
            c = nz(1 + num / c)
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def bootstrap_median_ratio(x, y, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`resamples` draws of median(y*) / median(x*) - 1 (x*, y* bootstrap resamples)."""
    mx = _bootstrap_medians(np.sort(np.asarray(x, dtype=np.float64)), resamples, rng)
    my = _bootstrap_medians(np.sort(np.asarray(y, dtype=np.float64)), resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        return my / mx - 1


def _bootstrap_medians(sorted_x: np.ndarray, resamples: int, rng: np.random.Generator):
    n = len(sorted_x)
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    k = (n + 1) // 2  # the lower median's rank
    u = rng.beta(k, n - k + 1, resamples)
    lower = sorted_x[_quantile_index(u, n)]
    if n % 2:
        return lower
    u_next = u + (1 - u) * rng.beta(1, n - k, resamples)
    return (lower + sorted_x[_quantile_index(u_next, n)]) / 2


def _quantile_index(u: np.ndarray, n: int) -> np.ndarray:
    """Index into the sorted sample of the empirical quantile function at u."""
    return np.minimum((u * n).astype(np.int64), n - 1)


_HL_POINTS = 4000  # larger samples are thinned to this many quantiles (error << 1e-3)


def hodges_lehmann_ratio(x, y) -> float:
    """exp(median_{i,j}(log y_j - log x_i)) - 1; additive over median(x) if any value <= 0."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    y = np.sort(np.asarray(y, dtype=np.float64))
    if len(x) == 0 or len(y) == 0:
        raise ValueError("hodges_lehmann_ratio needs two non-empty samples")
    x, y = _thin(x), _thin(y)
    if x[0] > 0 and y[0] > 0:
        return math.expm1(_median_pairwise_difference(np.log(x), np.log(y)))
    scale = float(np.median(x))
    shift = _median_pairwise_difference(x, y)
    return shift / scale if scale > 0 else math.nan


def _thin(sorted_v: np.ndarray) -> np.ndarray:
    n = len(sorted_v)
    if n <= _HL_POINTS:
        return sorted_v
    return sorted_v[((np.arange(_HL_POINTS) + 0.5) * n / _HL_POINTS).astype(np.int64)]


def _median_pairwise_difference(x: np.ndarray, y: np.ndarray) -> float:
    """Median of {y_j - x_i}, both sorted: the mean of the two middle order statistics."""
    total = len(x) * len(y)
    low = _pairwise_order_statistic(x, y, (total + 1) // 2)
    high = low if total % 2 else _pairwise_order_statistic(x, y, total // 2 + 1)
    return (low + high) / 2


def _pairwise_order_statistic(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of {y_j - x_i}: smallest d with #{y_j - x_i <= d} >= k."""

    def at_most(d: float) -> int:
        # y_j - x_i <= d  <=>  x_i >= y_j - d
        below = np.searchsorted(x, y - d, side="left")
        return len(x) * len(y) - int(below.sum(dtype=np.int64))

    lo, hi = float(y[0] - x[-1]), float(y[-1] - x[0])
    for _ in range(200):
        if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
            break
        mid = (lo + hi) / 2
        if at_most(mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi
