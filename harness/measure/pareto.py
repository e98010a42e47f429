"""Pareto front of latency (lower is better) vs a quality score (higher is better:
callers orient a lower-is-better metric by negating it)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float | None]]) -> list[bool]:
    """For (latency, accuracy) points, True where no other point dominates.

    A point dominates another when it is no slower and no less accurate, and strictly
    better in one. Points without accuracy compete on latency alone.
    """
    flags = []
    for i, (lat, acc) in enumerate(points):
        a = -math.inf if acc is None else acc
        dominated = False
        for j, (lat2, acc2) in enumerate(points):
            if i == j:
                continue
            a2 = -math.inf if acc2 is None else acc2
            if lat2 <= lat and a2 >= a and (lat2 < lat or a2 > a):
                dominated = True
                break
        flags.append(not dominated)
    return flags
