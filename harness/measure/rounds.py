"""A cell's rounds: the unit of replication, read back from a stored record.

A round is one fresh runner process timing every live cell once, at one moment of the
run (see harness.runners.python_runner.RoundBook). Samples inside one round share that
process and that moment; the next round does not. On a 2-core host the medians of one
cell's rounds spread 2-25 %, with whole rounds 1.5-2x slow when the other core is busy,
while the samples inside a round spread far less. So the evidence a run carries about
"the next run" is its rounds, not its samples: every verdict and every precision figure
in harness is computed on one number per round, its centre.

The centre of a round is the median of its invoke() samples; where the runner printed
aggregates only (Android's benchmark_model) it is the round's mean. Records keep the
round boundaries in `extra["round_sizes"]` (Python runner) or each round's aggregates in
`extra["runner"]["rounds_aggregate"]` (benchmark_model); a record without either holds
one round.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from harness.cells import CellRecord
from harness.measure.intervals import one_sample

SAMPLE_KEY = "invoke_us"
ROUND_SIZES = "round_sizes"


@dataclass(frozen=True)
class RoundSummary:
    """One round of one cell: its centre (median, or mean when aggregate-only) in us."""

    n: int
    center: float
    statistic: str  # "median" or "mean"
    mean: float
    std: float

    def to_dict(self) -> dict:
        return asdict(self)


def round_summaries(record: CellRecord) -> tuple[RoundSummary, ...]:
    """The record's rounds in the order they ran; () when nothing was timed."""
    samples = record.samples.get(SAMPLE_KEY) or []
    if samples:
        return tuple(_from_samples(p) for p in split_rounds(samples, record.extra.get(ROUND_SIZES)))
    aggs = (record.extra.get("runner") or {}).get("rounds_aggregate")
    if isinstance(aggs, list) and aggs:
        return tuple(
            RoundSummary(int(a["n"]), float(a["mean"]), "mean", float(a["mean"]), float(a["std"]))
            for a in aggs
        )
    lat = record.latency
    if lat is not None and lat.n > 0:
        return (RoundSummary(lat.n, lat.mean, "mean", lat.mean, lat.std),)
    return ()


def doc_round(doc: dict) -> RoundSummary:
    """The summary of one round as a runner reported it (raw, before the store): its
    invoke() samples, or benchmark_model's aggregates for the round."""
    x = doc.get("invoke_us") or []
    if x:
        return _from_samples(np.asarray(x, dtype=np.float64))
    a = doc.get("latency_aggregate") or {}
    mean = float(a.get("mean") or math.nan)
    return RoundSummary(int(a.get("n") or 0), mean, "mean", mean, float(a.get("std") or 0.0))


def precision(record: CellRecord, alpha: float = 0.05) -> float | None:
    """Relative half-width of the 95 % interval of the cell's typical round median (what
    `--precision` targets); None with fewer than 2 rounds."""
    logs = log_centers(round_summaries(record))
    if len(logs) < 2:
        return None
    iv = one_sample(logs, alpha)
    return iv.half_width if iv.informative else None


def split_rounds(samples, sizes) -> list[np.ndarray]:
    """Samples cut at the round boundaries; one round when the sizes do not fit."""
    x = np.asarray(samples, dtype=np.float64)
    ok = (
        isinstance(sizes, list)
        and sizes
        and all(isinstance(s, int) and s > 0 for s in sizes)
        and sum(sizes) == len(x)
    )
    if not ok:
        return [x]
    return np.split(x, np.cumsum(sizes)[:-1])


def log_centers(rounds: tuple[RoundSummary, ...]) -> np.ndarray:
    """log of each round's centre (rounds with a centre <= 0 carry no evidence)."""
    return np.log([r.center for r in rounds if r.center > 0 and math.isfinite(r.center)])


def _from_samples(x: np.ndarray) -> RoundSummary:
    return RoundSummary(
        n=len(x),
        center=float(np.median(x)),
        statistic="median",
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if len(x) > 1 else 0.0,
    )
