"""The `--json` run document: a stable contract that users' scripts rely on.

Schema 1 fields are never renamed or removed; new fields may be added.
"""

from __future__ import annotations

from harness.cells import CellRecord
from harness.measure.metrics import record_primary
from harness.measure.pareto import pareto_front
from harness.measure.rounds import precision, round_summaries

DOCUMENT_SCHEMA = 1
_LATENCY_KEYS = (
    "median",
    "p90",
    "p99",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n",
    "min",
    "max",
    "outliers",
    "aggregate_only",
    "p5",
    "p95",
)


def run_document(run_id: str, records: list[CellRecord], run_status: str | None = None) -> dict:
    """{"schema", "run_id", "cells": [...]} with Pareto flags per device."""
    pareto = pareto_flags(records)
    return {
        "schema": DOCUMENT_SCHEMA,
        "run_id": run_id,
        "status": run_status,
        "cells": [cell_document(r, pareto.get(id(r), False)) for r in records],
    }


def cell_document(r: CellRecord, on_front: bool) -> dict:
    c = r.cell
    latency = {"init": r.init_us, "first": r.first_us}
    latency |= {k: getattr(r.latency, k) if r.latency else None for k in _LATENCY_KEYS}
    return {
        "device": c.device,
        "model": c.model,
        "variant": c.variant,
        "delegate": c.delegate,
        "threads": c.threads,
        "batch": c.batch,
        "concurrency": c.concurrency,
        "status": r.status,
        "reason": r.reason,
        "latency_us": latency,
        "end_to_end_us": {
            "median": r.end_to_end.median if r.end_to_end else None,
            "p90": r.end_to_end.p90 if r.end_to_end else None,
        },
        # one request's latency over its samples; samples/s (a load cell: measured over
        # its window with every instance busy; else batch over the median)
        "per_sample_us": r.per_sample_us,
        "throughput_sps": r.throughput_sps,
        # --energy (Android): mJ per inference above idle, the whole device; `meaningful`
        # false on a charging device (see harness.measure.energy)
        "energy": r.extra.get("energy"),
        "peak_rss_mb": round(r.peak_rss_kb / 1024, 3) if r.peak_rss_kb else None,
        "accuracy": r.accuracy,
        "metrics": list(r.metrics),  # chosen metrics, primary first (accuracy = its value)
        "drift": r.drift or {"max_abs": None, "mean_abs": None, "top1_agreement": None},
        "model_sha256": r.model_sha256,
        "size_bytes": r.size_bytes,
        "pareto": on_front,
        "rounds": len(round_summaries(r)) if r.status == "ok" else 0,
        "precision": precision(r) if r.status == "ok" else None,
        "extra": r.extra,
    }


def pareto_flags(records: list[CellRecord]) -> dict[int, bool]:
    """id(record) -> on the latency/accuracy front of its device (ok cells only).

    One front per device, batch and concurrency: a batch of 8 takes longer per request
    than a batch of 1 and is not worse for it, so only like is weighed against like."""
    flags: dict[int, bool] = {}
    for group in dict.fromkeys(_front_of(r) for r in records):
        ok = [r for r in records if _front_of(r) == group and r.status == "ok" and r.latency]
        for r, f in zip(ok, pareto_front([(r.latency.center, _score(r)) for r in ok]), strict=True):
            flags[id(r)] = f
    return flags


def _front_of(r: CellRecord) -> tuple:
    return (r.cell.device, r.cell.batch, r.cell.concurrency)


def _score(r: CellRecord) -> float | None:
    """The primary metric oriented so that higher is better (rmse: its negative)."""
    m = record_primary(r)
    return m.score() if m is not None else None
