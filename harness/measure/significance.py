"""The Hodges-Lehmann shift of two latency series: a pooled-sample diagnostic, pure.

`hodges_lehmann_ratio`: the typical relative shift from x to y, exp(median over all
pairs of log y_j - log x_i) - 1, the estimator that belongs to the Mann-Whitney test.
Unlike the change of the median it stays put when samples bunch into modes. The median
of the n*m pairwise differences is found by bisection on their value with a sorted
count per step, never materialising the pairs. scipy.stats has no such estimator; every
test harness runs (Mann-Whitney, Welch, Yuen, t quantiles) comes from scipy.stats.

It is a diagnostic only: pooled samples are not independent evidence about the next
run (see harness.measure.rounds), so no verdict rests on it.
"""

from __future__ import annotations

import math

import numpy as np

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
