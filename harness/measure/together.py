"""--together: several models served at once, and what sharing the device costs each.

Each round times every cell of a group twice: alone for a window, then with every other
model of its group for a window of the same length. The Python runner does both in one
process, one thread per model (device_scripts/runner.py, time_concurrent) and keeps
every request; on Android each window is a benchmark_model process per model
(runners/benchmark_model, run_together) and only the tool's aggregates exist. The
record's latency is its requests under contention; this module reduces the alone
window beside them.

The slowdown a user reads is the median over rounds of (median under contention /
median alone), each ratio from one process at one moment: a round is the unit of
replication, so a slow round moves both of its medians and cancels in its ratio, where
a ratio of pooled medians would mix rounds that ran at different moments. The pooled
ratio is kept beside it."""

from __future__ import annotations

import math
import statistics

from harness.cells import LatencyStats
from harness.measure.stats import aggregate_stats, latency_stats


def together_summary(
    raw: dict, shared_us: list[float], shared: LatencyStats | None = None
) -> dict | None:
    """The stored `together` figures of one cell from the runner's pooled windows
    (python_runner.pool_together: samples alone; benchmark_model's
    pool_together_rounds: the tool's aggregates) and its latency under contention
    (`shared_us`, or `shared` for an aggregate-only cell); None when the device's
    numbers are malformed (device output is untrusted)."""
    if not isinstance(raw, dict):
        return None
    counts = {k: _num(raw.get(k)) for k in ("requests", "window_s", "alone_requests")}
    counts["alone_window_s"] = _num(raw.get("alone_window_s"))
    pairs = raw.get("round_medians")
    if any(v is None or v <= 0 for v in counts.values()):
        return None
    if not isinstance(pairs, list) or not pairs:
        return None
    if not all(_floats(p) and len(p) == 2 and min(p) > 0 for p in pairs):
        return None
    if _floats(raw.get("alone_us")) and shared_us:
        alone_stats, shared_stats = latency_stats(raw["alone_us"]), latency_stats(shared_us)
        center, alone_n = "median", len(raw["alone_us"])
        alone_center, shared_center = alone_stats.median, shared_stats.median
    elif shared is not None and (alone_stats := _aggregate(raw.get("alone_aggregate"))):
        # medians do not pool: the figure shown is the median over rounds of each round's
        # centre (the tool's median where printed, else its mean), as the slowdown is
        shared_stats, alone_n = shared, None
        center = "median" if raw.get("center") == "median" else "mean"
        alone_center = statistics.median(a for a, _ in pairs)
        shared_center = statistics.median(b for _, b in pairs)
    else:
        return None
    ratios = [b / a for a, b in pairs]
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
        # "median": of raw samples; "mean": benchmark_model printed aggregates only
        # (a round's centre is its median where the tool printed one, else its mean)
        "center": center,
        "alone_median_us": alone_center,
        "alone_p99_us": alone_stats.p99,
        "median_us": shared_center,
        "p99_us": shared_stats.p99,
        "alone_mean_us": alone_stats.mean,
        "mean_us": shared_stats.mean,
        "slowdown": statistics.median(ratios),
        "slowdown_rounds": ratios,
        # all samples (aggregate-only: all runs' means) together over alone: it mixes
        # rounds that ran at different moments
        "slowdown_pooled": (
            shared_center / alone_center
            if center == "median" and alone_n
            else shared_stats.mean / alone_stats.mean
        ),
        "rate_ratio": rate / alone_rate,
        "alone_samples": alone_n,
    }


def _aggregate(agg) -> LatencyStats | None:
    """benchmark_model's pooled aggregate as stats (None when malformed)."""
    keys = ("n", "mean", "std", "min", "max")
    if not isinstance(agg, dict) or not all(_num(agg.get(k)) is not None for k in keys):
        return None
    if agg["n"] <= 0 or agg["mean"] <= 0:
        return None
    optional = {k: agg[k] for k in ("median", "p5", "p95") if _num(agg.get(k)) is not None}
    return aggregate_stats(**{k: agg[k] for k in keys}, **optional)


def _floats(xs) -> bool:
    if not isinstance(xs, list) or not xs:
        return False
    return all(_num(x) is not None for x in xs)


def _num(v) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None
