"""Sustained load: a cell's windows (1 s each) as a series, its throttling onset and its
steady-state ratio. Pure functions over what the runner sent (harness.measure.summarize
calls them); the report draws the series (harness.report.sustained_view).

The onset is the first level change of the window medians upwards (slower) found by
harness.measure.steps' change points; the steady-state ratio is the median latency of
the last minute over that of the first 10 s (shorter runs: their last half over their
first 10 s), so 1.30 means 30 % slower once the device has settled. An onset is named
only when the steady state ended at least 5 % slower: a step up that did not last is the
host's noise, not throttling.
"""

from __future__ import annotations

import math
import statistics

from harness.measure.steps import detect_steps

FIRST_S = 10.0  # the cool start the steady state is compared with
SLOWER = 1.05  # an onset is named only when the steady state ended at least this much slower
LAST_S = 60.0  # the steady state: the last minute
MIN_SUSTAINED_S = 10.0  # shorter runs say nothing about heat


def window_series(raw: dict) -> dict | None:
    """The runner's sustained record with each window reduced to its figures:
    t_s, n (invokes in the window), kept (raw samples sent), median_us, mean_us, p90_us,
    center ("median"), freq_khz (per core, or None), temp_c (hottest zone, or None).

    A window from an aggregate-only runner (Android: one benchmark_model process per
    window) carries the tool's `aggregate` instead of samples: its median where the
    tool printed one (center "median"), else its mean (center "mean"); its p95 as
    p95_us and no p90. None when malformed (device output is untrusted)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("windows"), list):
        return None
    windows = []
    for w in raw["windows"]:
        figures = _window_figures(w) if isinstance(w, dict) else None
        if figures is None:
            return None
        windows.append(
            {"t_s": float(w.get("t_s") or 0.0)}
            | figures
            | {
                "freq_khz": _ints(w.get("freq_khz")),
                "temp_c": float(w["temp_c"]) if _finite(w.get("temp_c")) else None,
            }
        )
    missing = [str(m) for m in raw.get("missing") or []]
    out = {
        "duration_s": float(raw.get("duration_s") or 0.0),
        "window_s": float(raw.get("window_s") or 1.0),
        "windows": windows,
        "missing": missing,
        "cores": int(raw.get("cores") or 0),
        "zones": int(raw.get("zones") or 0),
    }
    for key in ("processes", "timed_fraction", "note"):  # aggregate-only runners say how
        if raw.get(key) is not None:
            out[key] = raw[key]
    return out | analyse(windows)


def _window_figures(w: dict) -> dict | None:
    xs = w.get("invoke_us")
    if isinstance(xs, list) and xs and all(_finite(x) for x in xs):
        xs = sorted(float(x) for x in xs)
        return {
            "n": int(w.get("n") or len(xs)),
            "kept": len(xs),
            "median_us": statistics.median(xs),
            "mean_us": statistics.fmean(xs),
            "p90_us": xs[min(len(xs) - 1, int(0.9 * len(xs)))],
            "center": "median",
        }
    a = w.get("aggregate")
    if not isinstance(a, dict) or not _finite(a.get("mean")) or not _finite(a.get("n")):
        return None
    if a["n"] < 1 or a["mean"] <= 0:
        return None
    median = a.get("median") if _finite(a.get("median")) else None
    return {
        "n": int(a["n"]),
        "kept": 0,
        "median_us": float(median if median is not None else a["mean"]),
        "mean_us": float(a["mean"]),
        "p90_us": None,  # the tool prints p5/median/p95 only
        "p95_us": float(a["p95"]) if _finite(a.get("p95")) else None,
        "center": "median" if median is not None else "mean",
    }


def analyse(windows: list[dict]) -> dict:
    """{"onset": {"t_s", "index", "before_us", "after_us", "change"} or None,
    "steady_ratio": last minute / first 10 s, or None with too few windows}."""
    medians = [w["median_us"] for w in windows]
    ratio = steady_ratio(windows)
    onset = None
    # a step up that did not last (the steady state no slower) is noise, not throttling
    steps = detect_steps(medians) if len(medians) >= 4 and (ratio or 0) >= SLOWER else []
    for step in steps:
        if step.after > step.before:  # slower from here on: throttling, not warming up
            onset = {
                "t_s": windows[step.index - 1]["t_s"],  # the end of the last window before
                "index": step.index,
                "before_us": step.before,
                "after_us": step.after,
                "change": step.change,
            }
            break
    return {"onset": onset, "steady_ratio": ratio}


def steady_ratio(windows: list[dict]) -> float | None:
    """Median of the last minute's window medians over the first 10 s's; for a run
    shorter than two minutes the last minute is its second half."""
    if len(windows) < 2:
        return None
    end = windows[-1]["t_s"]
    first = [w["median_us"] for w in windows if w["t_s"] <= FIRST_S]
    tail_from = max(end - LAST_S, end / 2)
    last = [w["median_us"] for w in windows if w["t_s"] > tail_from]
    if not first or not last:
        return None
    base = statistics.median(first)
    return statistics.median(last) / base if base > 0 else None


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _ints(v) -> list[int] | None:
    if not isinstance(v, list) or not v:
        return None
    return [int(x) if _finite(x) else None for x in v]
