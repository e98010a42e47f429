"""Raw runner result -> CellRecord: statistics, accuracy and drift, computed on the host."""

from __future__ import annotations

import math

import numpy as np

from harness.cells import Cell, CellRecord, LatencyStats
from harness.measure.accuracy import output_drift
from harness.measure.metrics import MetricSpec, compute_metrics, default_metrics
from harness.measure.stats import aggregate_stats, latency_stats
from harness.measure.sustained import window_series
from harness.measure.together import together_summary

STATUSES = ("ok", "unsupported", "failed")


def summarize(
    cell: Cell,
    sha256: str,
    size_bytes: int,
    raw: dict,
    labels: np.ndarray | None,
    reference: np.ndarray | None,
    metrics: tuple[MetricSpec, ...] | None = None,
) -> CellRecord:
    """Build the stored record of one cell from what the device reported.

    `metrics` are the run's chosen metrics, primary first (None: top-1 where there are
    labels, as before metrics were chosen); `accuracy` is the primary one's value."""
    status, reason = raw.get("status"), raw.get("reason")
    if status not in STATUSES:
        status, reason = "failed", f"the device reported an unknown status {str(status)[:40]!r}"
    samples = _samples(raw)
    if samples is None:  # device output is untrusted: malformed numbers fail the cell
        status, reason = "failed", "malformed timing samples from the device"
        samples = {k: [] for k in ("invoke_us", "e2e_us", "warmup_us")}
    aggregate = raw.get("latency_aggregate")  # benchmark_model: aggregates, no samples
    latency = _latency(samples["invoke_us"], aggregate) if status == "ok" else None
    if status == "ok" and latency is None:
        status, reason = "failed", "runner reported no timed samples"
    outputs = (raw.get("eval") or {}).get("outputs")
    accuracy = drift = None
    values: list[dict] = []
    if status == "ok" and outputs is not None:
        # A runner may evaluate only the first n samples (--eval-limit): compare those.
        n = len(outputs)
        y = labels[:n] if labels is not None and 0 < n <= len(labels) else None
        ref = reference[:n] if reference is not None and len(reference) >= n else None
        if ref is not None and ref.shape == outputs.shape:
            drift = output_drift(outputs, ref).to_dict()
        chosen = default_metrics(labels is not None) if metrics is None else metrics
        values = [m.to_dict() for m in compute_metrics(chosen, outputs, y, ref)]
        accuracy = values[0]["value"] if values else None
    extra = {
        k: raw[k]
        for k in (
            "rounds",
            "round_sizes",
            "sync_point",
            "fully_accelerated",
            "adapter",
            "peak_rss_scope",
            "traceback",
            "runner",
            "delegation",
            "memory_mb",
            "affinity",
            "hazards",
            "op_profile",
            "eval_invocations",
            "accuracy_error",  # the accuracy pass failed; the timing above stands
            "energy",  # --energy: mJ per inference and what it rests on (measure.energy)
        )
        if raw.get(k) is not None
    }
    if status == "ok":
        extra |= _load(raw.get("load"))
        if raw.get("sustained") is not None:  # windows reduced to figures (raw: samples)
            series = window_series(raw["sustained"])
            if series is None:
                status, reason = "failed", "malformed sustained windows from the device"
                latency = None
            else:
                extra["sustained"] = series
        if raw.get("together") is not None:  # --together: alone beside under contention
            together = together_summary(raw["together"], samples["invoke_us"], latency)
            if together is None:
                status, reason = "failed", "malformed --together windows from the device"
                latency = None
            else:
                extra["together"] = together
    return CellRecord(
        cell=cell,
        status=status,
        reason=(str(reason)[:500] if reason else None),
        model_sha256=sha256,
        size_bytes=size_bytes,
        init_us=_num(raw.get("init_us")),
        first_us=_num(raw.get("first_us")),
        latency=latency,
        end_to_end=latency_stats(samples["e2e_us"]) if status == "ok" else None,
        peak_rss_kb=int(raw["peak_rss_kb"]) if isinstance(raw.get("peak_rss_kb"), int) else None,
        accuracy=accuracy,
        drift=drift,
        metrics=values,
        samples=samples,
        env=raw.get("env") or {},
        extra=extra,
    )


def _samples(raw: dict) -> dict[str, list[float]] | None:
    keys = ("invoke_us", "e2e_us", "warmup_us", "init_us_rounds", "first_us_rounds")
    out = {}
    for k in keys:
        values = raw.get(k) or []
        if not isinstance(values, list):
            return None
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError):
            return None
        if not all(math.isfinite(v) for v in floats):
            return None
        if floats or k in keys[:3]:  # per-round lists only when the cell ran in rounds
            out[k] = floats
    return out


def _load(load) -> dict:
    """A load cell's window (--concurrency) and its aggregate throughput: every sample
    the instances completed over the window's wall time. Device output is untrusted:
    a window without positive numbers gives no figure rather than a wrong one."""
    if not isinstance(load, dict):
        return {}
    samples, window = _num(load.get("samples")), _num(load.get("window_s"))
    kept = {
        k: load[k]
        for k in (
            "instances",
            "requests",
            "samples",
            "window_s",
            "windows",
            "per_instance",
            "rounds",  # each round's window: throughput compared on per-round rates
        )
        if load.get(k) is not None
    }
    if samples is None or window is None or samples <= 0 or window <= 0:
        return {"load": kept}
    return {"load": kept, "throughput_sps": samples / window}


def _num(v) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def _latency(samples: list[float], aggregate) -> LatencyStats | None:
    """Raw samples when there are any; else the aggregates the tool printed, as printed."""
    if samples or not isinstance(aggregate, dict):
        return latency_stats(samples)
    keys = ("n", "mean", "std", "min", "max")
    if not all(isinstance(aggregate.get(k), int | float) for k in keys):
        return None
    return aggregate_stats(
        **{k: aggregate[k] for k in keys},
        **{k: aggregate[k] for k in ("median", "p5", "p95") if aggregate.get(k) is not None},
    )
