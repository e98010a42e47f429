"""Latency statistics from raw samples: pure functions, no I/O.

Samples are never dropped: outliers (Tukey's fences) are counted and reported, and
every figure is computed on all samples. The confidence interval of the median is
distribution-free (order statistics with the normal approximation of the binomial),
because latency distributions are skewed and often multi-modal.

Some runners report aggregates only (Android's benchmark_model prints count, min, max,
mean and std, sometimes p5/median/p95): such a LatencyStats has `aggregate_only` set and
holds exactly what the tool printed; figures it did not print (p90, p99, the CI of the
median, outliers) are None, never invented. `center` is the figure to sort and plot by:
the median where known, else the mean.
"""

from __future__ import annotations

import math

import numpy as np

from harness.cells import LatencyStats

Z_95 = 1.959963984540054


def latency_stats(samples) -> LatencyStats | None:
    """Summarise samples; None for an empty series (a cell that did not run)."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    if n == 0:
        return None
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    lo, hi = median_ci(x)
    return LatencyStats(
        n=n,
        median=float(p50),
        p90=float(p90),
        p99=float(p99),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if n > 1 else 0.0,
        min=float(x[0]),
        max=float(x[-1]),
        ci_low=lo,
        ci_high=hi,
        outliers=count_outliers(x),
    )


def aggregate_stats(
    n: int,
    mean: float,
    std: float,
    min: float,
    max: float,
    median: float | None = None,
    p5: float | None = None,
    p95: float | None = None,
) -> LatencyStats:
    """A LatencyStats holding only what a tool reported (no raw samples behind it)."""
    return LatencyStats(
        n=int(n),
        median=None if median is None else float(median),
        p90=None,
        p99=None,
        mean=float(mean),
        std=float(std),
        min=float(min),
        max=float(max),
        ci_low=None,
        ci_high=None,
        outliers=None,
        aggregate_only=True,
        p5=None if p5 is None else float(p5),
        p95=None if p95 is None else float(p95),
    )


def median_ci(sorted_x: np.ndarray, z: float = Z_95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (sorted input)."""
    n = len(sorted_x)
    if n < 6:  # too few samples for the approximation: be honest, use the range
        return float(sorted_x[0]), float(sorted_x[-1])
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 1)
    hi = min(int(math.ceil(n / 2 + 1 + half)), n)
    return float(sorted_x[lo - 1]), float(sorted_x[hi - 1])


def count_outliers(x: np.ndarray, k: float = 1.5) -> int:
    """Samples outside Tukey's fences [Q1 - k*IQR, Q3 + k*IQR]."""
    if len(x) < 4:
        return 0
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    return int(np.count_nonzero((x < q1 - k * iqr) | (x > q3 + k * iqr)))
