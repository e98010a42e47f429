"""`harness lab history --model M --device D`: each cell's figures night by night.

A night is the runs tagged `lab:<lab>:<night>`, ordered by when its first run began.
Per cell (variant, delegate, threads): the steady-state median, its 95% CI and the
status of every night, and the change points of the median series
(harness.measure.steps.detect_steps, the CI's half-width as each night's noise), so
the night a slow creep started is named even when no single night crossed the
compare threshold.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.measure.stats import Z_95
from harness.measure.steps import Step, detect_steps
from harness.store.store import RunInfo, Store

LAB_PREFIX = "lab:"


@dataclass(frozen=True)
class NightPoint:
    night: str
    run_id: str
    at: dt.datetime
    status: str
    median_us: float | None
    ci_low_us: float | None
    ci_high_us: float | None
    accuracy: float | None

    def to_dict(self) -> dict:
        return {
            "night": self.night,
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "status": self.status,
            "median_us": self.median_us,
            "ci_low_us": self.ci_low_us,
            "ci_high_us": self.ci_high_us,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class CellHistory:
    variant: str
    delegate: str
    threads: int
    points: tuple[NightPoint, ...]
    steps: tuple[tuple[Step, str], ...]  # (step, night it starts)

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.delegate}/t{self.threads}"

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "delegate": self.delegate,
            "threads": self.threads,
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
    series: dict[tuple, list[NightPoint]] = {}
    for night in order:
        for run in nights[night]:
            for rec in store.cells(run.run_id):
                c, lat = rec.cell, rec.latency if rec.status == "ok" else None
                if c.model != model or c.device != device:
                    continue
                series.setdefault((c.variant, c.delegate, c.threads), []).append(
                    NightPoint(
                        night,
                        run.run_id,
                        run.created_at,
                        rec.status,
                        lat.center if lat else None,
                        lat.ci_low if lat else None,
                        lat.ci_high if lat else None,
                        rec.accuracy,
                    )
                )
    cells = tuple(_cell_history(key, pts) for key, pts in series.items())
    return History(labs[0], model, device, tuple(order), cells)


def _cell_history(key: tuple, points: list[NightPoint]) -> CellHistory:
    ok = [p for p in points if p.median_us is not None]
    noise = [
        (p.ci_high_us - p.ci_low_us) / (2 * Z_95)
        for p in ok
        if p.ci_high_us is not None and p.ci_low_us is not None
    ]
    steps = detect_steps([p.median_us for p in ok], noise or None)
    return CellHistory(*key, tuple(points), tuple((s, ok[s.index].night) for s in steps))


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
            s = starts.get(p.night)
            table.add_row(
                p.night,
                _us(p.median_us),
                f"{_us(p.ci_low_us)}–{_us(p.ci_high_us)}" if p.ci_low_us else "",
                f"{p.accuracy:.4f}" if p.accuracy is not None else "",
                p.status,
                f"◀ {s.change:+.1%} step" if s else "",
            )
        console.print(table)


def _us(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v / 1000:.3f} ms" if v >= 1000 else f"{v:.1f} µs"
