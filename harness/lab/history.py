"""`harness lab history --model M --device D`: each cell's figures night by night.

A night is the runs tagged `lab:<lab>:<night>`, ordered by when its first run began.
Per cell (variant, delegate, threads): the steady-state median, its 95% CI and the
status of every night, and the change points of the median series, so the night a
slow creep started is named even when no single night crossed the compare threshold.
The series and its change points are harness.measure.series's (cell_series), over the
nights' runs; this module only groups the runs into nights and names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.measure.series import TrendPoint, TrendSeries, cell_series, matching_cells
from harness.measure.steps import Step
from harness.store.store import RunInfo, Store

LAB_PREFIX = "lab:"


@dataclass(frozen=True)
class NightPoint:
    """One run's figure for one cell (harness.measure.series.TrendPoint) and its night."""

    night: str
    point: TrendPoint

    def to_dict(self) -> dict:
        return {"night": self.night} | self.point.to_dict()


@dataclass(frozen=True)
class CellHistory:
    """A cell's trend series over the runs of the nights, each run named by its night."""

    series: TrendSeries
    night_of: Mapping[str, str]  # run id -> night

    @property
    def variant(self) -> str:
        return self.series.variant

    @property
    def delegate(self) -> str:
        return self.series.delegate

    @property
    def threads(self) -> int:
        return self.series.threads

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.delegate}/t{self.threads}"

    @property
    def points(self) -> tuple[NightPoint, ...]:
        return tuple(NightPoint(self.night_of[p.run_id], p) for p in self.series.points)

    @property
    def steps(self) -> tuple[tuple[Step, str], ...]:
        """Each change point with the night it starts."""
        return tuple((s, self.night_of[p.run_id]) for s, p in self.series.step_runs())

    def to_dict(self) -> dict:
        """The series' document, its points and change points named by night."""
        return self.series.to_dict() | {
            "points": [p.to_dict() for p in self.points],
            "change_points": [s.to_dict() | {"night": n} for s, n in self.steps],
        }


@dataclass(frozen=True)
class History:
    lab: str
    model: str
    device: str
    nights: tuple[str, ...]
    cells: tuple[CellHistory, ...]

    def to_dict(self) -> dict:
        return {
            "schema": 1,
            "lab": self.lab,
            "model": self.model,
            "device": self.device,
            "nights": list(self.nights),
            "cells": [c.to_dict() for c in self.cells],
        }


def load_history(
    store: Store, model: str, device: str, lab: str | None = None, last: int = 60
) -> History:
    """The last `last` nights of `model` on `device` (from lab `lab`, or the only one)."""
    runs = store.find_runs(tag_prefix=f"{LAB_PREFIX}{lab}:" if lab else LAB_PREFIX)
    runs = [r for r in runs if r.config.get("device") == device and _model(r) == model]
    labs = sorted({r.tag.split(":")[1] for r in runs})
    if not runs:
        where = f" in lab {lab!r}" if lab else ""
        raise HarnessError(f"no lab nights of model {model!r} on device {device!r}{where}")
    if len(labs) > 1:
        names = ", ".join(labs)
        raise HarnessError(f"model {model!r} on {device!r} is in labs {names}: pick one with --lab")
    nights: dict[str, list[RunInfo]] = {}
    for r in runs:  # oldest first
        nights.setdefault(r.tag.split(":", 2)[2], []).append(r)
    order = list(nights)[-last:]
    night_of = {run.run_id: night for night in order for run in nights[night]}
    found = [
        (run, matching_cells(store, run.run_id, model, device))
        for night in order
        for run in nights[night]
    ]
    series = cell_series(found, figure=lambda lat: lat.center)
    return History(
        labs[0], model, device, tuple(order), tuple(CellHistory(s, night_of) for s in series)
    )


def _model(run: RunInfo) -> str | None:
    return (run.config.get("lab") or {}).get("model")


def render_history(h: History, console) -> None:
    """One table per cell: night, median, CI, status, and the change points marked."""
    from rich import box
    from rich.table import Table

    console.print(f"lab {h.lab}: {h.model} on {h.device}, {len(h.nights)} night(s)")
    for c in h.cells:
        starts = {night: s for s, night in c.steps}
        table = Table(title=c.label, box=box.SIMPLE, title_justify="left", pad_edge=False)
        for col in ("night", "median", "95% CI", "acc.", "status", "change point"):
            table.add_column(col, no_wrap=col != "change point")
        for p in c.points:
            s, pt = starts.get(p.night), p.point
            table.add_row(
                p.night,
                _us(pt.median),
                f"{_us(pt.ci_low)}–{_us(pt.ci_high)}" if pt.ci_low else "",
                f"{pt.accuracy:.4f}" if pt.accuracy is not None else "",
                pt.status,
                f"◀ {s.change:+.1%} step" if s else "",
            )
        console.print(table)


def _us(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v / 1000:.3f} ms" if v >= 1000 else f"{v:.1f} µs"
