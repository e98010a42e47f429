"""CellRecords with known figures, built without TensorFlow or a device."""

from __future__ import annotations

import numpy as np

from harness.cells import Cell, CellRecord
from harness.measure.stats import latency_stats


def samples(median: float, n: int = 60, spread: float = 0.02, seed: int = 0) -> list[float]:
    """n latency samples (µs) centred on ``median`` with a small relative spread."""
    rng = np.random.default_rng(seed)
    return list(median * (1 + spread * rng.standard_normal(n)))


def ok(
    variant: str = "fp32",
    delegate: str = "cpu",
    threads: int = 1,
    median: float = 1000.0,
    accuracy: float | None = 0.95,
    device: str = "phone",
    model: str = "digits",
    e2e_extra: float = 50.0,
    seed: int = 0,
    **changes,
) -> CellRecord:
    """An ok cell whose invoke samples centre on ``median`` µs."""
    invoke = samples(median, seed=seed)
    e2e = [v + e2e_extra for v in invoke]
    record = CellRecord(
        cell=Cell(device, model, variant, delegate, threads),
        status="ok",
        model_sha256="ab" * 32,
        size_bytes=100_000,
        init_us=20_000.0,
        first_us=median * 3,
        latency=latency_stats(invoke),
        end_to_end=latency_stats(e2e),
        peak_rss_kb=40_000,
        accuracy=accuracy,
        drift={"max_abs": 1e-3, "mean_abs": 1e-4, "top1_agreement": 1.0},
        samples={"invoke_us": invoke, "e2e_us": e2e, "warmup_us": invoke[:5]},
        env={"runtime": "ai-edge-litert", "runtime_version": "2.3.0", "cpu_count": 8},
        extra={"sync_point": "invoke"},
    )
    return record.with_(**changes) if changes else record


def not_ok(
    status: str = "unsupported",
    reason: str = "NNAPI is an Android delegate",
    variant: str = "fp32",
    delegate: str = "nnapi",
    threads: int = 1,
    device: str = "phone",
    model: str = "digits",
) -> CellRecord:
    return CellRecord(
        cell=Cell(device, model, variant, delegate, threads),
        status=status,
        reason=reason,
        size_bytes=100_000,
    )
