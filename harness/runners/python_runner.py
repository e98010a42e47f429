"""Host side of the device_scripts Python runner: stage files, send a job, read results.

One runner process serves many cells (start-up cost paid once). If it dies mid-job,
the cell it was on is failed with the reason and a fresh process takes the rest, so a
crashing model costs one cell, never the sweep.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import device_scripts
from device_scripts.runner import stderr_tail
from harness.devices.base import Device
from harness.errors import DeviceError, HarnessError
from harness.measure.intervals import expected_precision
from harness.measure.rounds import ROUND_SIZES, doc_round, log_centers

RUNNER_PATH = Path(device_scripts.__file__).with_name("runner.py")
JOB_SCHEMA = 1
MAX_LINE = 16 << 20  # a result line larger than this is not from our runner
MAX_OUTPUTS = 256 << 20
MAX_RESTARTS = 2
MAX_ROUNDS = 200  # with --precision: a cell never takes more rounds than this
PRECISION_ALPHA = 0.05  # --precision is the half-width of the 95 % interval
OUTPUTS_DIR = "outputs"
SUSTAINED_WINDOW_S = 1.0  # --sustained: latency medians, frequencies and heat per second


@dataclass(frozen=True)
class JobCell:
    """One cell as the runner sees it: an id, a staged-on-host model file, delegate, threads."""

    id: str
    model_file: Path
    model_sha256: str
    delegate: str
    threads: int
    timing: bool = True
    group: str | None = None  # cells of one group are timed together, run by run (A/B)
    batch: int = 1  # samples per invoke: the first input's batch dimension resized
    concurrency: int = 1  # interpreter instances serving requests at once
    load: bool = False  # timed as a load: all instances busy for a fixed window
    sustained_s: float | None = None  # run back to back this long, in 1 s windows
    output: int = 0  # which output the eval pass returns (the metrics' output=NAME)
    together: bool = False  # its group's cells are served at once (--together), not in turn


@dataclass(frozen=True)
class TimingConfig:
    """How long to time each cell, and in how many rounds (fresh processes).

    `runs` is shared out over the first `rounds` rounds. With `precision` (a relative
    half-width, 0.02 = ±2 %) a cell keeps taking rounds of the same size until the 95 %
    interval of its median, from its round medians, is that narrow, or the sweep has
    spent `max_time_s`, or MAX_ROUNDS; see RoundBook."""

    runs: int = 100
    min_secs: float | None = None
    warmup: int = 2
    timeout_s: float | None = None  # one runner job, host side; None: from the cell timeout
    rounds: int = 6
    cell_timeout_s: float | None = 300.0  # one cell in one round, enforced on the device
    precision: float | None = None
    max_time_s: float | None = None
    # a load cell (--concurrency) runs for a fixed window, not a count of runs: this
    # long per round unless --min-secs sets the cell's total
    load_window_s: float = 1.0

    def __post_init__(self) -> None:
        if self.precision is not None and not 0 < self.precision < 1:
            raise HarnessError(f"precision {self.precision:g} must be in (0, 1), e.g. 0.02")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise HarnessError(f"max time {self.max_time_s:g} s must be positive")

    def round_count(self) -> int:
        """Rounds always run: never more than there are runs to share out."""
        return max(1, min(self.rounds, self.runs))

    def per_round(self, r: int = 0) -> TimingConfig:
        """Round r's share of the runs (the first round_count() add up to `runs` exactly;
        a later round, under --precision, gets the smallest share) and seconds."""
        n = self.round_count()
        return replace(
            self,
            runs=self.runs // n + (r < self.runs % n),
            min_secs=self.min_secs / n if self.min_secs else None,
        )


RoundHook = Callable[[JobCell, int, dict], None]


class RoundBook:
    """The interleaved-rounds schedule both runners follow, and the rounds each cell has
    finished (resumed from a sweep that died, or new). Round r runs every live cell
    that has finished rounds 0..r-1; eval-only cells (timing off) run once, in round 0;
    a cell leaves after its final round or its first failed one.

    A cell's final round takes the outputs for accuracy, so it is decided before the
    round runs, once: without a precision target it is round `rounds - 1`; with one, it
    is the first round from `rounds - 1` on after which the cell's rounds are expected
    to meet the target (at the spread its rounds so far show), or before which the
    clock says one more round would overrun max_time_s (a round is assumed to take as
    long as the previous one), or round MAX_ROUNDS - 1."""

    def __init__(
        self,
        cells: list[JobCell],
        timing: TimingConfig,
        done_rounds: dict[str, list[dict]] | None = None,
        on_round: RoundHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rounds = timing.round_count()
        self.limit = MAX_ROUNDS if timing.precision else self.rounds
        self._precision = timing.precision
        self._clock = clock
        self._deadline = clock() + timing.max_time_s if timing.max_time_s else None
        self._starts: dict[int, float] = {}
        self._final: dict[tuple[str, int], bool] = {}
        # never all rounds resumed: the last one takes the outputs for accuracy
        done = done_rounds or {}
        self._parts = {c.id: list(done.get(c.id, []))[: self.limit - 1] for c in cells}
        self._live = list(cells)
        self._on_round = on_round

    @property
    def pending(self) -> bool:
        return bool(self._live)

    def due(self, r: int) -> list[JobCell]:
        self._starts.setdefault(r, self._clock())
        return [c for c in self._live if (len(self._parts[c.id]) == r if c.timing else r == 0)]

    def is_final(self, cell: JobCell, r: int) -> bool:
        key = (cell.id, r)
        if key not in self._final:
            self._final[key] = self._decide(cell, r)
        return self._final[key]

    def _decide(self, cell: JobCell, r: int) -> bool:
        if not cell.timing or r >= self.limit - 1:
            return True
        if r < self.rounds - 1:
            return False
        if self._precision is None:
            return True
        if self._deadline is not None:
            last = self._starts[r] - self._starts[r - 1] if r - 1 in self._starts else 0.0
            if self._clock() + 2 * last > self._deadline:
                return True
        logs = log_centers(tuple(doc_round(d) for d in self._parts[cell.id]))
        expected = expected_precision(logs, len(logs) + 1, PRECISION_ALPHA)
        return len(logs) > 1 and expected <= self._precision

    def record(self, cell: JobCell, r: int, doc: dict) -> list[dict] | None:
        """Keep an ok round that is not the cell's last (None); else the cell is done:
        every round it ran, this one last."""
        if doc.get("status") == "ok" and not self.is_final(cell, r):
            self._parts[cell.id].append(doc)
            if self._on_round:
                self._on_round(cell, r, doc)
            return None
        self._live.remove(cell)
        return [*self._parts.pop(cell.id), doc]


def run_cells(
    device: Device,
    cells: list[JobCell],
    timing: TimingConfig,
    eval_file: Path | None,
    done_rounds: dict[str, list[dict]] | None = None,
    on_round: RoundHook | None = None,
) -> Iterator[tuple[JobCell, dict]]:
    """Yield (cell, raw result) per cell once all its rounds are done.

    Rounds are interleaved: round r times every live cell before round r+1 starts, in a
    fresh runner, so slow drift (heat, background load) spreads over all cells instead
    of landing on one. Outputs for accuracy are taken in the last round; a cell that
    fails in any round is reported failed at once and leaves the later rounds.
    `done_rounds` (cell id -> raw docs of rounds already finished, from a sweep that
    died) lets a cell resume at its next round; `on_round` hears of each finished
    round that is not the cell's last, so the caller can keep it.
    """
    staged = _Staged(device)
    book = RoundBook(cells, timing, done_rounds, on_round)
    for r in range(book.limit):
        if not book.pending:
            break
        todo = book.due(r)
        if not todo:
            continue
        evals = {c.id for c in todo if book.is_final(c, r)}
        share = timing.per_round(r)
        for cell, doc in _run_round(staged, todo, share, eval_file, evals, f"r{r}"):
            docs = book.record(cell, r, doc)
            if docs is not None:
                yield cell, merge_rounds(docs) if doc.get("status") == "ok" else doc


def job_timeout(timing: TimingConfig, cells: list[JobCell]) -> float:
    """Host-side bound on one runner job: every cell may use its full device-side limit
    (plus start-up), so the host never gives up before the device's own watchdog."""
    if timing.timeout_s:
        return timing.timeout_s
    per_cell = (timing.cell_timeout_s or 3600.0) + 30.0
    return 120.0 + per_cell * max(1, len(cells))


def merge_rounds(docs: list[dict]) -> dict:
    """One raw result from a cell's rounds: samples concatenated, init/first per round."""
    merged = dict(docs[-1])  # the last round carries the eval outputs
    for key in ("invoke_us", "e2e_us", "warmup_us"):
        merged[key] = [x for d in docs for x in d.get(key) or []]
    for key in ("init_us", "first_us"):
        values = [d[key] for d in docs if isinstance(d.get(key), int | float)]
        merged[f"{key}_rounds"] = values
        merged[key] = statistics.median(values) if values else None
    peaks = [d["peak_rss_kb"] for d in docs if isinstance(d.get("peak_rss_kb"), int)]
    merged["peak_rss_kb"] = max(peaks) if peaks else None
    merged["rounds"] = len(docs)
    merged[ROUND_SIZES] = [len(d.get("invoke_us") or []) for d in docs]
    loads = [d["load"] for d in docs if isinstance(d.get("load"), dict)]
    if loads:  # a load cell: its windows add up (requests and seconds, never rates)
        merged["load"] = pool_loads(loads)
    together = [d["together"] for d in docs if isinstance(d.get("together"), dict)]
    if together:  # --together: each round's alone and shared windows, kept round by round
        merged["together"] = pool_together(together, [d.get("invoke_us") or [] for d in docs])
    return merged


def pool_together(rounds: list[dict], shared: list[list[float]]) -> dict:
    """The --together windows of a cell's rounds as one: alone samples concatenated,
    counts and seconds summed, and per round the median alone and under contention (the
    pair a slowdown is judged on: both come from one process at one moment)."""
    pooled = {
        k: sum(float(r.get(k) or 0) for r in rounds)
        for k in ("requests", "window_s", "alone_requests", "alone_window_s")
    }
    pooled["members"] = rounds[-1].get("members")
    pooled["alone_us"] = [x for r in rounds for x in r.get("alone_us") or []]
    pooled["alone_sizes"] = [len(r.get("alone_us") or []) for r in rounds]
    pooled["round_medians"] = [
        [statistics.median(r["alone_us"]), statistics.median(xs)]
        for r, xs in zip(rounds, shared, strict=False)
        if r.get("alone_us") and xs
    ]
    return pooled


def pool_loads(loads: list[dict]) -> dict:
    """The load windows of a cell's rounds as one: requests, samples and seconds summed,
    so the aggregate throughput is total samples over total busy seconds. Each round's
    own window is kept too (`rounds`): a comparison of throughput rests on one rate per
    round, as latency rests on one centre per round, never on the pooled total."""
    keys = ("requests", "samples", "window_s")
    pooled = {k: sum(float(w.get(k) or 0) for w in loads) for k in keys}
    pooled["rounds"] = [{k: w.get(k) for k in keys} for w in loads]
    pooled["instances"] = loads[-1].get("instances")
    pooled["windows"] = len(loads)
    lanes = [w.get("per_instance") or [] for w in loads]
    if all(len(x) == len(lanes[0]) for x in lanes):  # requests each instance served
        pooled["per_instance"] = [sum(x) for x in zip(*lanes, strict=True)]
    return pooled


def _run_round(
    staged: _Staged,
    cells: list[JobCell],
    timing: TimingConfig,
    eval_file: Path | None,
    evals: set[str],
    tag: str,
) -> Iterator[tuple[JobCell, dict]]:
    """One round over `cells`, restarting the runner if the device connection fails.

    A runner that dies or a connection that drops fails the cell it was on (with the
    reason) and a fresh runner takes the rest; after MAX_RESTARTS failures in a row
    without progress, every remaining cell fails with the last reason.
    """
    remaining = list(cells)
    failures, attempt = 0, 0
    while remaining:
        attempt += 1
        progressed = False
        try:
            job = _one_runner(staged, remaining, timing, eval_file, evals, f"{tag}-{attempt}")
            for cell, doc in job:
                remaining.remove(cell)
                progressed = True
                yield cell, doc
            if not remaining:
                return
            code = getattr(staged.device, "returncode", None)
            reason = f"runner process died (exit {code}) during this cell"
            said = stderr_tail(getattr(staged.device, "stderr", "") or "")
            if said:  # its last words: a Python too old to parse the runner, a crash
                reason = f"{reason}: {said}"
        except DeviceError as exc:
            reason = f"device error: {exc}"
        staged.forget()  # after a failure, verify the device's files again
        failures = 0 if progressed else failures + 1
        if failures > MAX_RESTARTS:
            for cell in remaining:
                yield cell, {"status": "failed", "reason": reason, "env": {}}
            return
        yield remaining.pop(0), {"status": "failed", "reason": reason, "env": {}}


def _one_runner(
    staged: _Staged,
    cells: list[JobCell],
    timing: TimingConfig,
    eval_file: Path | None,
    evals: set[str],
    tag: str,
) -> Iterator[tuple[JobCell, dict]]:
    device = staged.device
    runner = staged(RUNNER_PATH, ".py")
    eval_remote = staged(eval_file, ".npz") if eval_file else None
    models = {sha: staged(path, ".tflite", sha) for path, sha in _models(cells).items()}
    job_cells = [
        {
            "id": c.id,
            "model": models[c.model_sha256],
            "delegate": c.delegate,
            "threads": c.threads,
            "timing": c.timing,
            "eval": c.id in evals,
            "group": c.group,
            "batch": c.batch,
            "concurrency": c.concurrency,
            "load": c.load,
            "sustained_s": c.sustained_s,
            "output": c.output,
            "together": c.together,
        }
        for c in cells
    ]
    # Paths in the job are absolute or relative to the device workdir (the runner's cwd).
    job = {
        "schema": JOB_SCHEMA,
        "cells": job_cells,
        "runs": timing.runs,
        "min_secs": timing.min_secs,
        "warmup": timing.warmup,
        "eval": eval_remote,
        "outputs_dir": OUTPUTS_DIR,
        "cell_timeout_s": timing.cell_timeout_s,
        "load_window_s": timing.min_secs or timing.load_window_s,
        "window_s": SUSTAINED_WINDOW_S,
    }
    job_path = device.write_text(f"job-{tag}.json", json.dumps(job))
    env = None
    by_id = {c.id: c for c in cells}
    for line in device.stream(
        [device.python(), runner, job_path], timeout=job_timeout(timing, cells)
    ):
        doc = _parse_line(line)
        if doc is None:
            continue
        if doc.get("type") == "hello":
            env = doc.get("env")
        elif doc.get("type") == "cell" and doc.get("id") in by_id:
            cell = by_id.pop(doc["id"])
            doc["env"] = env if isinstance(env, dict) else {}
            if isinstance(doc.get("eval"), dict):
                doc["eval"]["outputs"] = _read_outputs(device, doc["eval"])
            yield cell, doc


class _Staged:
    """Files put on the device during this sweep: verified once, not again every round."""

    def __init__(self, device: Device):
        self.device = device
        self._paths: dict[tuple[str, str], str] = {}

    def __call__(self, path: Path, suffix: str, sha256: str | None = None) -> str:
        key = (str(path), suffix)
        if key not in self._paths:
            self._paths[key] = self.device.stage(path, sha256 or _sha(path), suffix)
        return self._paths[key]

    def forget(self) -> None:
        self._paths.clear()


def _models(cells: list[JobCell]) -> dict[Path, str]:
    """Each distinct model file once (many cells share one variant)."""
    return {c.model_file: c.model_sha256 for c in cells}


def _parse_line(line: str) -> dict | None:
    # Device output is untrusted: bounded, JSON objects only, our schema only.
    if len(line) > MAX_LINE or not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == JOB_SCHEMA else None


def _read_outputs(device: Device, ev: dict) -> np.ndarray | None:
    name = str(ev.get("outputs_file", ""))
    if not name or "/" in name or name.startswith("."):
        return None
    data = device.pull_bytes(f"{OUTPUTS_DIR}/{name}", MAX_OUTPUTS)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise HarnessError(f"unreadable outputs from the device: {exc}") from exc
    return np.asarray(arr, dtype=np.float32)


def _sha(path: Path) -> str:
    from harness.convert.sources import file_sha256

    return file_sha256(path)
