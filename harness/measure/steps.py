"""Change points in a series of per-run figures (e.g. nightly medians): pure functions.

Binary segmentation with an L1 cost (sum of absolute deviations from the segment
median), so one wild night moves the cost little and cannot split a level on its
own. A split is kept when it lowers the cost by more than a penalty that grows with
the noise and with the length of the series, beta * sigma * sqrt(n log n) (searching
more split points finds larger chance gains; beta = 1.5 keeps chance steps in pure
noise to a few percent at 6 points and none from 30, while finding 5-sigma steps),
and when the two levels differ by at least ``min_rel`` of the earlier one: a
statistically clear but practically irrelevant 0.1% shift is not a step.

Noise is the larger of
  * the run-to-run scatter: a robust (MAD) estimate from successive differences, which
    a genuine step barely moves, and
  * the within-run uncertainty of each figure when given (``noise``: e.g. the standard
    error of each run's median, from its confidence interval).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Step:
    """A level change: points from ``index`` on sit at ``after``, those before at ``before``."""

    index: int
    before: float
    after: float

    @property
    def change(self) -> float:
        """Relative change of the level (+0.12 = 12% higher)."""
        return (self.after - self.before) / self.before if self.before else math.inf

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "before": self.before,
            "after": self.after,
            "change": self.change,
        }


def detect_steps(
    values: Sequence[float],
    noise: Sequence[float] | None = None,
    *,
    min_rel: float = 0.02,
    min_size: int = 2,
    beta: float = 1.5,
) -> list[Step]:
    """The level changes of ``values``, in order; [] for a flat or too short series.

    ``min_size`` is the fewest points a level may have: with the default 2, a single
    odd run is never a step on its own (nor is a change in the very last run, yet).
    """
    y = np.asarray(values, dtype=np.float64)
    if len(y) < 2 * min_size or not np.all(np.isfinite(y)):
        return []
    sigma = noise_level(y, noise)
    if sigma == 0.0:
        sigma = float(np.finfo(np.float64).eps * max(1.0, float(np.abs(y).max())))
    penalty = beta * sigma * math.sqrt(len(y) * math.log(len(y)))
    cuts = _refine(y, sorted(_segment(y, 0, len(y), min_size, penalty, min_rel)), min_size)
    bounds = [0, *cuts, len(y)]
    levels = [float(np.median(y[a:b])) for a, b in zip(bounds, bounds[1:], strict=False)]
    return [Step(index=c, before=levels[i], after=levels[i + 1]) for i, c in enumerate(cuts)]


def noise_level(y: np.ndarray, noise: Sequence[float] | None = None) -> float:
    """Robust scale of the point-to-point noise of ``y`` (see the module doc)."""
    sigma = 0.0
    if len(y) >= 3:
        d = np.diff(y)
        sigma = _MAD_TO_SIGMA * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2)
    if noise is not None:
        n = np.asarray([v for v in noise if v is not None and np.isfinite(v)], dtype=np.float64)
        if len(n):
            sigma = max(sigma, float(np.median(n)))
    return sigma


def _segment(
    y: np.ndarray, a: int, b: int, min_size: int, penalty: float, min_rel: float
) -> list[int]:
    """Split points of y[a:b] (absolute indices), recursively."""
    best = _best_split(y[a:b], min_size)
    if best is None:
        return []
    k, gain = best
    left, right = y[a : a + k], y[a + k : b]
    lo, hi = float(np.median(left)), float(np.median(right))
    big_enough = abs(hi - lo) >= min_rel * abs(lo) if lo else hi != lo
    if gain <= penalty or not big_enough:
        return []
    cut = a + k
    return [
        *_segment(y, a, cut, min_size, penalty, min_rel),
        cut,
        *_segment(y, cut, b, min_size, penalty, min_rel),
    ]


def _refine(y: np.ndarray, cuts: list[int], min_size: int, rounds: int = 3) -> list[int]:
    """Move each cut to its best place between its neighbours (binary segmentation finds
    the first cut with every later level still mixed in, so it can land a point off)."""
    cuts = list(cuts)
    for _ in range(rounds):
        moved = False
        for i, _cut in enumerate(cuts):
            a = cuts[i - 1] if i else 0
            b = cuts[i + 1] if i + 1 < len(cuts) else len(y)
            best = _best_split(y[a:b], min_size)
            if best and a + best[0] != cuts[i]:
                cuts[i], moved = a + best[0], True
        if not moved:
            break
    return cuts


def _best_split(seg: np.ndarray, min_size: int) -> tuple[int, float] | None:
    """(k, cost reduction) of the best split seg[:k] | seg[k:], or None if none allowed."""
    n = len(seg)
    if n < 2 * min_size:
        return None
    whole = _l1(seg)
    best_k, best_cost = -1, math.inf
    for k in range(min_size, n - min_size + 1):
        cost = _l1(seg[:k]) + _l1(seg[k:])
        if cost < best_cost:
            best_k, best_cost = k, cost
    return best_k, whole - best_cost


def _l1(x: np.ndarray) -> float:
    return float(np.abs(x - np.median(x)).sum())
