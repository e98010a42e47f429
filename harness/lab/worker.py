"""One device's share of a lab night: open it, hold its lock, sweep each model into the store.

Runs: a lab night is a set of runs sharing the tag `lab:<name>:<night>`, ONE RUN PER
(device, model), each exactly one RunSpec and one `run_sweep`. So a lab run is also an
ordinary run (`harness run --resume RUN_ID`, `harness report RUN_ID` work on it), its
status is the sweep's own, and resuming a night is: for each (device, model), find the
night's run and let run_sweep skip what it holds. Baselines gather the cells of all the
runs of a night (cells carry their device, so runs never mix).

A device that cannot be opened, or that is lost mid-sweep, stores nothing for the cells
it did not measure: they are reported failed in the night's summary (with the reason)
and `--resume` measures them later. A failure that is the cell's own (a crash, a corrupt
model) is stored as a failed record and never retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.cells import Cell, CellRecord
from harness.devices.base import ShellResult
from harness.devices.runtime import RuntimeMissing
from harness.errors import DeviceError, HarnessError
from harness.lab.capabilities import Capabilities, device_capabilities, filter_cells
from harness.lab.config import DeviceEntry
from harness.lab.prepare import PreparedModel
from harness.run import RunSpec, run_sweep
from harness.store.store import Store

PROBE_TIMEOUT_S = 15.0


class DeviceLost(Exception):  # noqa: N818 - a state, not only an error
    """The device stopped answering mid-sweep. Deliberately not a DeviceError: the
    runner must not turn it into failed cells, the sweep must stop (and be resumed)."""


@dataclass(frozen=True)
class DeviceTask:
    """Everything a worker needs for one device (picklable, for Ray)."""

    device: DeviceEntry
    models: tuple[PreparedModel, ...]
    delegates: tuple[str, ...]
    threads: tuple[int, ...]
    night_tag: str
    lab: dict
    store_url: str
    lock_wait: float = 600.0
    command: str | None = None
    batches: tuple[int, ...] = (1,)
    concurrency: tuple[int, ...] = (1,)
    # how every cell is measured (not a sweep axis): the lab's `sustained`, and its
    # `energy`/`unplug` as benchmark_model options; in each run's stored config
    sustained_s: float | None = None
    runner_options: dict = field(default_factory=dict)

    @property
    def grid(self) -> tuple[tuple, ...]:
        """delegates, threads, batches, concurrency: what each model is swept over."""
        return (self.delegates, self.threads, self.batches, self.concurrency)


@dataclass(frozen=True)
class ModelOutcome:
    model: str
    run_id: str | None
    planned: tuple[Cell, ...]  # what this device was to measure (after filtering)
    filtered: tuple[tuple[Cell, str], ...] = ()


@dataclass(frozen=True)
class DeviceOutcome:
    label: str  # as in the lab file
    serial: str  # the device's name in cells (an AVD's emulator serial once started)
    models: tuple[ModelOutcome, ...]
    capabilities: Capabilities | None = None
    lost: str | None = None  # why some planned cells were not measured
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reachable(self) -> bool:
        return self.capabilities is not None


def run_device(task: DeviceTask, on_cell: Callable[[CellRecord], None] = lambda _: None):
    """Measure every cell of the task not yet stored tonight; never raises for the device."""
    store = Store(task.store_url)
    serial, caps, lost = task.device.label, None, None
    done: dict[str, ModelOutcome] = {}
    try:
        with contextlib.ExitStack() as stack:
            serial = _start(task.device, stack)
            device = _open(serial, stack)
            serial = device.name
            from harness.devices.lock import device_lock

            stack.enter_context(device_lock(serial, wait_s=task.lock_wait))
            caps = device_capabilities(device)
            guarded = GuardedDevice(device)
            existing = _night_runs(store, task.night_tag, serial)
            for pm in task.models:
                done[pm.name] = _run_model(task, pm, store, guarded, caps, existing, on_cell)
    except DeviceLost as exc:
        lost = f"device lost mid-sweep: {exc}"
    except RuntimeMissing as exc:  # reached, but it cannot run the runner: tonight is lost
        lost = f"device unusable: {exc}"
    except HarnessError as exc:  # unreachable, unauthorized, busy, unknown name
        lost = f"device unreachable: {exc}"
    models = tuple(done.get(pm.name) or _unmeasured(task, pm, serial, caps) for pm in task.models)
    return DeviceOutcome(task.device.label, serial, models, caps, lost)


def _start(entry: DeviceEntry, stack: contextlib.ExitStack) -> str:
    if entry.avd is None:
        return entry.serial or ""
    from harness.devices.emulator import launched_emulator

    return stack.enter_context(launched_emulator(entry.avd, False, progress=lambda _: None))


def _open(serial: str, stack: contextlib.ExitStack):
    from harness.devices.registry import open_device

    device = open_device(serial)
    if hasattr(device, "close"):
        stack.callback(device.close)
    return device


def _run_model(
    task: DeviceTask,
    pm: PreparedModel,
    store: Store,
    device: GuardedDevice,
    caps: Capabilities,
    existing: dict[str, str],
    on_cell: Callable[[CellRecord], None],
) -> ModelOutcome:
    keep, dropped = filter_cells(pm.cells_for(device.name, *task.grid), caps)
    run_id = existing.get(pm.name)
    if keep and run_id is None:
        config = _spec(task, pm, device.name).to_dict() | {
            "lab": task.lab | {"model": pm.name, "device_label": task.device.label}
        }
        run_id = store.create_run(config, command=task.command, tag=task.night_tag)
    if keep and pm.error:
        stored = store.done_keys(run_id)
        for c in keep:
            record = CellRecord(c, "failed", reason=pm.error)
            if c.key not in stored and store.add_cell(run_id, record):
                on_cell(record)
        store.finish_run(run_id, "complete")
    elif keep:
        offered = tuple(d for d in task.delegates if caps.why_not(d) is None)
        spec = replace(pm.spec_for(device.name), delegates=offered)
        run_sweep(spec, store, device, run_id=run_id, on_cell=on_cell, command=task.command)
    return ModelOutcome(pm.name, run_id, tuple(keep), tuple(dropped))


def _spec(task: DeviceTask, pm: PreparedModel, device: str) -> RunSpec:
    if pm.spec is not None:
        return pm.spec_for(device)
    e = pm.entry
    return RunSpec(
        Path(e.source), device, e.variants, task.delegates, task.threads,
        batches=task.batches, concurrency=task.concurrency,
        sustained_s=task.sustained_s, runner_options=task.runner_options,
    )  # fmt: skip


def _unmeasured(
    task: DeviceTask, pm: PreparedModel, serial: str, caps: Capabilities | None
) -> ModelOutcome:
    """A model the worker never reached: planned cells (filtered when the device was seen)."""
    cells = pm.cells_for(serial, *task.grid)
    if caps is None:
        return ModelOutcome(pm.name, None, tuple(cells))
    keep, dropped = filter_cells(cells, caps)
    return ModelOutcome(pm.name, None, tuple(keep), tuple(dropped))


def _night_runs(store: Store, night_tag: str, device: str) -> dict[str, str]:
    """model -> run id of tonight's runs on `device` (resume continues them)."""
    found = {}
    for run in store.find_runs(tag=night_tag):
        lab = run.config.get("lab") or {}
        if run.config.get("device") == device and lab.get("model"):
            found[lab["model"]] = run.run_id
    return found


class GuardedDevice:
    """A Device whose transport errors are checked: if a fresh connection cannot reach the
    device either, the error becomes DeviceLost (the sweep stops, resumable); if it can,
    the error stays a DeviceError (that cell's own failure, handled by the runner)."""

    def __init__(self, device, probe: Callable[[str], None] | None = None):
        self._device = device
        self._probe = probe or probe_device
        self.name = device.name

    @property
    def device_class(self) -> str:
        return getattr(self._device, "device_class", "linux")

    @property
    def returncode(self):
        return getattr(self._device, "returncode", None)

    def _check(self, exc: DeviceError):
        try:
            self._probe(self.name)
        except HarnessError as gone:
            raise DeviceLost(f"{exc} (and a fresh connection: {gone})") from exc
        raise exc

    def shell(self, argv: list[str], timeout: float = 60.0) -> ShellResult:
        try:
            return self._device.shell(argv, timeout)
        except DeviceError as exc:
            self._check(exc)

    def stream(self, argv: list[str], timeout: float) -> Iterator[str]:
        try:
            yield from self._device.stream(argv, timeout)
        except DeviceError as exc:
            self._check(exc)

    def stage(self, local: Path, sha256: str, suffix: str) -> str:
        try:
            return self._device.stage(local, sha256, suffix)
        except DeviceError as exc:
            self._check(exc)

    def write_text(self, path: str, text: str) -> str:
        try:
            return self._device.write_text(path, text)
        except DeviceError as exc:
            self._check(exc)

    def pull_bytes(self, remote: str, limit: int) -> bytes:
        try:
            return self._device.pull_bytes(remote, limit)
        except DeviceError as exc:
            self._check(exc)

    def workdir(self) -> str:
        return self._device.workdir()

    def python(self) -> str:
        return self._device.python()

    def __getattr__(self, name: str):
        return getattr(self._device, name)  # props(), facts(), close(), …: as they are


def probe_device(name: str) -> None:
    """Raise DeviceError unless `name` answers a trivial command on a fresh connection."""
    if name == "local":
        return
    from harness.devices.registry import open_device

    device = open_device(name)
    try:
        result = device.shell(["true"], timeout=PROBE_TIMEOUT_S)
        if result.exit_code != 0:
            raise DeviceError(f"{name}: `true` exited {result.exit_code}")
    finally:
        if hasattr(device, "close"):
            device.close()
