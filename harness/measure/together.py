"""--together: several models served at once, and what sharing the device costs each.

The device runner times each cell of a group twice per round, in one process: alone for
a window, then with every other model of its group on threads of their own for a window
of the same length (device_scripts/runner.py, time_concurrent). The record's latency is
its requests under contention; this module reduces the alone window beside them.

The slowdown a user reads is the median over rounds of (median under contention /
median alone), each ratio from one process at one moment: a round is the unit of
replication, so a slow round moves both of its medians and cancels in its ratio, where
a ratio of pooled medians would mix rounds that ran at different moments. The pooled
ratio is kept beside it."""

from __future__ import annotations

import math
import statistics

from harness.measure.stats import latency_stats


def together_summary(raw: dict, shared_us: list[float]) -> dict | None:
    """The stored `together` figures of one cell from the runner's pooled windows
    (harness.runners.python_runner.pool_together) and its samples under contention;
    None when the device's numbers are malformed (device output is untrusted)."""
    if not isinstance(raw, dict):
        return None
    counts = {k: _num(raw.get(k)) for k in ("requests", "window_s", "alone_requests")}
    counts["alone_window_s"] = _num(raw.get("alone_window_s"))
    alone = raw.get("alone_us")
    pairs = raw.get("round_medians")
    if any(v is None or v <= 0 for v in counts.values()) or not _floats(alone):
        return None
    if not isinstance(pairs, list) or not all(_floats(p) and len(p) == 2 for p in pairs):
        return None
    if not shared_us or not all(a > 0 and b > 0 for a, b in pairs):
        return None
    ratios = [b / a for a, b in pairs]
    alone_stats, shared_stats = latency_stats(alone), latency_stats(shared_us)
    rate = counts["requests"] / counts["window_s"]
    alone_rate = counts["alone_requests"] / counts["alone_window_s"]
    members = raw.get("members")
    return {
        "members": int(members) if isinstance(members, int) and members > 1 else None,
        "with": [str(m) for m in raw.get("with") or []],  # the other models of its group
        "requests": int(counts["requests"]),
        "window_s": counts["window_s"],
        "rate_rps": rate,
        "alone_requests": int(counts["alone_requests"]),
        "alone_window_s": counts["alone_window_s"],
        "alone_rate_rps": alone_rate,
        "alone_median_us": alone_stats.median,
        "alone_p99_us": alone_stats.p99,
        "median_us": shared_stats.median,
        "p99_us": shared_stats.p99,
        "slowdown": statistics.median(ratios),
        "slowdown_rounds": ratios,
        "slowdown_pooled": shared_stats.median / alone_stats.median,
        "rate_ratio": rate / alone_rate,
        "alone_samples": len(alone),
    }


def _floats(xs) -> bool:
    if not isinstance(xs, list) or not xs:
        return False
    return all(_num(x) is not None for x in xs)


def _num(v) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None
