"""Series: one cell's steady-state figure over many runs, its change points and baseline.

Reads the store (runs of one model on one device) and computes nothing the store keeps
except the change points (harness.measure.steps). `harness report --trend` draws these
series (harness.report.trend); the lab's night-by-night history groups them by night
(harness.lab.history).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from harness.cells import Cell, CellRecord, LatencyStats
from harness.errors import HarnessError
from harness.measure.stats import Z_95
from harness.measure.steps import Step, detect_steps, noise_level
from harness.store.store import RunInfo, Store

BASELINE_TAG = "baseline"
SCAN_RUNS = 2000  # how far back to look for runs of the model on the device


@dataclass(frozen=True)
class TrendPoint:
    """One run's figure for one cell."""

    run_id: str
    at: dt.datetime
    status: str
    median: float | None
    ci_low: float | None
    ci_high: float | None
    accuracy: float | None

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "status": self.status,
            "median_us": self.median,
            "ci_low_us": self.ci_low,
            "ci_high_us": self.ci_high,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class TrendSeries:
    """A cell (variant, delegate, threads) across runs, oldest first."""

    variant: str
    delegate: str
    threads: int
    points: tuple[TrendPoint, ...]
    steps: tuple[Step, ...]  # indices into ok_points

    @property
    def label(self) -> str:
        return f"{self.variant} {self.delegate} t{self.threads}"

    @property
    def ok_points(self) -> list[TrendPoint]:
        return [p for p in self.points if p.median is not None]

    def step_runs(self) -> list[tuple[Step, TrendPoint]]:
        """Each change point with the first run at its new level."""
        ok = self.ok_points
        return [(s, ok[s.index]) for s in self.steps]

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "delegate": self.delegate,
            "threads": self.threads,
            "points": [p.to_dict() for p in self.points],
            "change_points": [
                s.to_dict() | {"run_id": p.run_id, "at": p.at.isoformat()}
                for s, p in self.step_runs()
            ],
        }


@dataclass(frozen=True)
class Trend:
    model: str
    device: str
    runs: tuple[RunInfo, ...]  # oldest first
    baseline: str | None
    series: tuple[TrendSeries, ...]

    def run(self, run_id: str) -> RunInfo | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "device": self.device,
            "runs": [{"run_id": r.run_id, "at": r.created_at.isoformat()} for r in self.runs],
            "baseline": self.baseline,
            "series": [s.to_dict() for s in self.series],
        }


def load_trend(
    store: Store, model: str, device: str, last: int = 30, baseline: str | None = None
) -> Trend:
    """The last ``last`` runs of ``model`` on ``device``, every cell as a series.

    Baseline: ``baseline`` when given (added to the window if older), else the newest
    run tagged "baseline" in the window, else the oldest run in the window.
    """
    if last < 2:
        raise HarnessError("--last must be at least 2 for a trend")
    found: list[tuple[RunInfo, list[CellRecord]]] = []
    for run in store.list_runs(limit=SCAN_RUNS):
        cells = matching_cells(store, run.run_id, model, device)
        if cells:
            found.append((run, cells))
            if len(found) == last:
                break
    if not found:
        raise HarnessError(f"no runs of model {model!r} on device {device!r} in {store.url}")
    if baseline and all(run.run_id != baseline for run, _ in found):
        base_run = store.get_run(baseline)
        cells = matching_cells(store, baseline, model, device)
        if not cells:
            raise HarnessError(f"baseline run {baseline!r} has no {model!r} cells on {device!r}")
        found.append((base_run, cells))
    found.sort(key=lambda rc: rc[0].created_at)
    if baseline is None:
        tagged = [run.run_id for run, _ in found if run.tag == BASELINE_TAG]
        baseline = tagged[-1] if tagged else found[0][0].run_id
    return Trend(
        model=model,
        device=device,
        runs=tuple(run for run, _ in found),
        baseline=baseline,
        series=tuple(cell_series(found)),
    )


def matching_cells(store: Store, run_id: str, model: str, device: str) -> list[CellRecord]:
    return [r for r in store.cells(run_id) if r.cell.model == model and r.cell.device == device]


def cell_series(
    found: Iterable[tuple[RunInfo, list[CellRecord]]],
    figure: Callable[[LatencyStats], float | None] = lambda lat: lat.median,
) -> list[TrendSeries]:
    """Each cell (variant, delegate, threads) of ``found`` (runs oldest first, each with
    its cells) as a series: ``figure`` of every ok cell's latency, and its change points
    (harness.measure.steps, the CI's half-width as each run's noise)."""
    points: dict[tuple, list[TrendPoint]] = {}
    for run, cells in found:
        for r in cells:
            c, lat = r.cell, r.latency if r.status == "ok" else None
            points.setdefault((c.variant, c.delegate, c.threads), []).append(
                TrendPoint(
                    run_id=run.run_id,
                    at=run.created_at,
                    status=r.status,
                    median=figure(lat) if lat else None,
                    ci_low=lat.ci_low if lat else None,
                    ci_high=lat.ci_high if lat else None,
                    accuracy=r.accuracy,
                )
            )
    return [TrendSeries(*key, tuple(pts), _steps(pts)) for key, pts in points.items()]


def _steps(points: list[TrendPoint]) -> tuple[Step, ...]:
    ok = [p for p in points if p.median is not None]
    noise = [
        (p.ci_high - p.ci_low) / (2 * Z_95)
        for p in ok
        if p.ci_high is not None and p.ci_low is not None
    ]
    return tuple(detect_steps([p.median for p in ok], noise))


HISTORY_RUNS = 60  # how many of the newest runs a two-run compare reads for its noise


def level_noise(runs: Iterable[list[CellRecord]], min_runs: int = 3) -> dict[Cell, float]:
    """Cell -> run-to-run SD of its log median over `runs` (oldest first), for cells
    with `min_runs` or more ok runs: the robust scale of successive differences
    (steps.noise_level), so a slow drift or one step does not count as noise."""
    series: dict[Cell, list[float]] = {}
    for records in runs:
        for r in records:
            if r.status == "ok" and r.latency is not None and r.latency.center > 0:
                series.setdefault(r.cell, []).append(math.log(r.latency.center))
    return {c: noise_level(np.asarray(v)) for c, v in series.items() if len(v) >= min_runs}


def history_noise(store: Store, exclude: set[str], limit: int = HISTORY_RUNS) -> dict[Cell, float]:
    """level_noise over the store's newest `limit` runs but `exclude` (the runs being
    judged): what each cell's runs have shown of their own run-to-run noise."""
    runs = [r for r in store.list_runs(limit) if r.run_id not in exclude]
    runs.sort(key=lambda r: (r.created_at, r.run_id))
    return level_noise(store.cells(r.run_id) for r in runs)
