"""The values that flow through a run: Cell (what to measure) -> CellRecord (what was),
and LatencyStats (a series summarised), below both measure and store.

Frozen dataclasses with to_dict/from_dict, so every arrow in the data flow produces
something serialisable (see DESIGN.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

STATUSES = ("ok", "unsupported", "failed")


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one series of latency samples (microseconds).

    From raw samples every field is set. Aggregate-only (a runner that prints summary
    figures, not samples: Android's benchmark_model; see harness.measure.stats):
    median/p90/p99/ci_low/ci_high/outliers may be None, p5/p95 set when printed.
    """

    n: int
    median: float | None
    p90: float | None
    p99: float | None
    mean: float
    std: float
    min: float
    max: float
    ci_low: float | None
    ci_high: float | None
    outliers: int | None
    aggregate_only: bool = False
    p5: float | None = None
    p95: float | None = None

    @property
    def center(self) -> float:
        """The median where known, else the mean (aggregate-only without a median)."""
        return self.median if self.median is not None else self.mean

    @property
    def center_name(self) -> str:
        return "median" if self.median is not None else "mean"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LatencyStats:
        # Documents stored before a field existed lack it: the field's default applies.
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Cell:
    """One measurement to make: a model variant on a device with a delegate and threads,
    fed `batch` samples per invoke, by `concurrency` interpreter instances at once."""

    device: str
    model: str
    variant: str
    delegate: str
    threads: int
    batch: int = 1
    concurrency: int = 1

    @property
    def key(self) -> str:
        """Stable identity of the cell within a run (used for resume and de-duplication).

        Batch and concurrency appear only when not 1, so the keys of runs stored before
        those dimensions existed are unchanged (resume and compare still match them)."""
        base = f"{self.device}|{self.model}|{self.variant}|{self.delegate}|{self.threads}"
        return base + self._suffix("|")

    @property
    def slug(self) -> str:
        """A file-name-safe id for the on-device job."""
        base = f"{self.model}-{self.variant}-{self.delegate}-t{self.threads}" + self._suffix("-")
        return base.replace("/", "_")

    @property
    def slot(self) -> tuple:
        """The cell's setting without device and model: what compare and recommend match
        and group by (variant, delegate, threads, batch, concurrency)."""
        return (self.variant, self.delegate, self.threads, self.batch, self.concurrency)

    @property
    def setting(self) -> str:
        """The slot as people read it: int8/xnnpack/t1, with /b8 and /c4 when not 1."""
        return f"{self.variant}/{self.delegate}/t{self.threads}" + self._suffix("/")

    def _suffix(self, sep: str) -> str:
        return (f"{sep}b{self.batch}" if self.batch != 1 else "") + (
            f"{sep}c{self.concurrency}" if self.concurrency != 1 else ""
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CellRecord:
    """Everything measured for one cell, as stored (append-only) and reported."""

    cell: Cell
    status: str
    reason: str | None = None
    model_sha256: str | None = None
    size_bytes: int | None = None
    init_us: float | None = None
    first_us: float | None = None
    latency: LatencyStats | None = None
    end_to_end: LatencyStats | None = None
    peak_rss_kb: int | None = None
    accuracy: float | None = None
    drift: dict | None = None
    # every chosen metric, the primary first (harness.measure.metrics.MetricValue dicts);
    # `accuracy` is the primary metric's value, kept for readers of older records
    metrics: list = field(default_factory=list)
    samples: dict = field(default_factory=dict)  # invoke_us, e2e_us, warmup_us: raw lists
    env: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["cell"] = self.cell.to_dict()
        d["latency"] = self.latency.to_dict() if self.latency else None
        d["end_to_end"] = self.end_to_end.to_dict() if self.end_to_end else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CellRecord:
        d = dict(d)
        d["cell"] = Cell(**d["cell"])
        for k in ("latency", "end_to_end"):
            d[k] = LatencyStats.from_dict(d[k]) if d.get(k) else None
        return cls(**d)

    def with_(self, **changes) -> CellRecord:
        return replace(self, **changes)

    @property
    def per_sample_us(self) -> float | None:
        """Latency of one request divided by the samples it carried (the batch)."""
        if self.latency is None:
            return None
        return self.latency.center / max(1, self.cell.batch)

    @property
    def throughput_sps(self) -> float | None:
        """Samples per second: measured over the load window where the runner ran one
        (concurrency, extra["throughput_sps"]); else one request at a time, batch per
        central latency."""
        measured = self.extra.get("throughput_sps")
        if isinstance(measured, int | float) and measured > 0:
            return float(measured)
        if self.latency is None or self.latency.center <= 0:
            return None
        return self.cell.batch * 1e6 / self.latency.center
