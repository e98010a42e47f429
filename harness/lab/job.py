"""`harness lab run`: config -> models prepared -> devices swept in parallel -> verdicts.

Exit codes: 0 clean; 1 a regression, a failed cell or a cell lost with its device; 2
a lab failure (bad lab file, store error, unknown baseline, every device unreachable).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cells import CellRecord
from harness.errors import HarnessError
from harness.lab.config import LabConfig
from harness.lab.executors import run_local, run_ray
from harness.lab.night import NightResult, judge_night, resolve_baseline
from harness.lab.paired import with_baseline
from harness.lab.prepare import build_dir, prepare_models
from harness.lab.summary import write_outputs
from harness.lab.worker import DeviceTask
from harness.store.store import Store


@dataclass(frozen=True)
class LabOptions:
    night: str | None = None  # default: today's UTC date
    resume: bool = False
    executor: str = "local"  # local | ray
    address: str | None = None  # Ray cluster address
    out_dir: Path | None = None
    store_url: str | None = None  # overrides the lab file
    command: str | None = None


@dataclass(frozen=True)
class LabRun:
    result: NightResult
    outputs: list[Path]


def default_night() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def run_lab(
    config: LabConfig, options: LabOptions, progress: Callable[[str], None] = lambda _: None
) -> LabRun:
    """Run (or resume) one night of the lab and write its summaries."""
    night = options.night or default_night()
    if not night or any(ch in night for ch in "/\\ "):
        raise HarnessError(f"bad night label {night!r} (a date like 2026-05-01, or a word)")
    tag = config.night_tag(night)
    store = Store(options.store_url or config.store)
    existing = store.find_runs(tag=tag)
    if existing and not options.resume:
        raise HarnessError(
            f"night {night} of lab {config.name} already has {len(existing)} run(s) in "
            f"{store.url}: pass --resume to finish it, or --night LABEL for another night"
        )
    baseline = resolve_baseline(store, config.baseline, config.tag_prefix, tag)
    models = prepare_models(config, progress)
    for m in models:
        if m.error:
            progress(f"{m.name}: {m.error}")
    base_records = [r for run_id in baseline.run_ids for r in store.cells(run_id)]
    notes = mode_notes(config)
    for i, m in enumerate(models):
        models[i], note = with_baseline(m, base_records, archive_dir(config))
        if note:
            notes.append(note)
            progress(note)
    lab = {"name": config.name, "night": night}
    tasks = [
        DeviceTask(
            device=d,
            models=tuple(models),
            delegates=config.delegates,
            threads=config.threads,
            night_tag=tag,
            lab=lab,
            store_url=store.url,
            lock_wait=config.lock_wait,
            command=options.command,
            batches=config.batches,
            concurrency=config.concurrency,
            sustained_s=config.sustained_s,
            runner_options=config.runner_options,
        )
        for d in config.devices
    ]
    if options.executor == "ray":
        outcomes = run_ray(tasks, options.address)
    elif options.executor == "local":
        outcomes = run_local(tasks, _cell_printer(progress))
    else:
        raise HarnessError(f"unknown executor {options.executor!r} (local or ray)")
    for d in outcomes:
        if d.lost:
            progress(f"{d.label}: {d.lost}")
    result = judge_night(
        store, config.name, night, tag, outcomes, baseline, config.compare, tuple(notes)
    )
    out_dir = options.out_dir or _default_out(config) / night
    return LabRun(result, write_outputs(result, out_dir))


def mode_notes(config: LabConfig) -> list[str]:
    """What the summary says about how every cell was measured, when not as usual."""
    notes = []
    if config.sustained_s:
        notes.append(
            f"every cell ran sustained {config.sustained_s:g} s back to back in 1 s windows "
            "(one round; its latency is the pooled windows, its figures below)"
        )
    if config.energy:
        notes.append(
            "energy: the battery sampled around each timed pass (Android; a device "
            "without a battery to read has unsupported rows)"
            + ("; the battery unplugged for each run" if config.unplug else "")
        )
    elif config.unplug:
        notes.append("the battery unplugged for each run (Android: dumpsys battery unplug)")
    return notes


def archive_dir(config: LabConfig) -> Path:
    """Where the lab keeps every variant file it measured, by content (lab.paired)."""
    return build_dir(config).parent / "archive"


def _default_out(config: LabConfig) -> Path:
    return config.output or config.path.parent / ".harness-lab" / config.name / "nights"


def _cell_printer(progress: Callable[[str], None]) -> Callable[[CellRecord], None]:
    lock = threading.Lock()

    def on_cell(r: CellRecord) -> None:
        c = r.cell
        figure = f"{r.latency.center:.0f} µs" if r.latency and r.status == "ok" else r.reason
        with lock:
            progress(f"{c.device} {c.model} {c.setting}: {r.status} {figure or ''}".rstrip())

    return on_cell
