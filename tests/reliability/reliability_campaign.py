"""Helpers of the reliability campaign: the tally, boards, sweeps and their audit.

One module instance holds the tally (conftest's summary hook and the tests import it
from here), so it is a plain module, not the conftest.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness.adbd import AdbDaemon
from harness.devices.adb_direct import DirectTransport
from harness.devices.remote import WORKDIR, AdbDevice
from harness.run import RunSpec, plan_run, run_sweep
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store

# ----------------------------------------------------------------------------- the tally


@dataclass
class FaultRow:
    injected: int = 0
    lost: int = 0
    duplicated: int = 0
    sweeps: int = 0


@dataclass
class Tally:
    faults: dict[str, FaultRow] = field(default_factory=lambda: defaultdict(FaultRow))

    def record(self, fault: str, injected: int, lost: int, duplicated: int) -> None:
        row = self.faults[fault]
        row.injected += injected
        row.lost += lost
        row.duplicated += duplicated
        row.sweeps += 1


TALLY = Tally()


@dataclass
class Board:
    daemon: AdbDaemon
    root: Path

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.daemon.port}"

    def fired(self) -> int:
        return sum(self.daemon.faults.fired().values())

    def open(self) -> AdbDevice:
        return AdbDevice(DirectTransport("127.0.0.1", self.daemon.port))

    @property
    def blobs(self) -> Path:
        return self.root / WORKDIR.lstrip("/") / "blobs"


# ----------------------------------------------------------------------------- sweeps


class CountingStore(Store):
    """A Store that also counts commits the unique constraint turned away (duplicates)."""

    refused = 0

    def add_cell(self, run_id, record, outputs=None) -> bool:
        ok = super().add_cell(run_id, record, outputs)
        if not ok:
            CountingStore.refused += 1
        return ok


def small_spec(variants, serial: str, eval_path: Path | None = None, rounds: int = 1) -> RunSpec:
    """Two variants × two delegates, a handful of runs: four cells, seconds to measure."""
    return RunSpec(
        model=variants.manifest_path.parent,
        device=serial,
        variants=("fp32", "int8"),
        delegates=("cpu", "xnnpack"),
        threads=(1,),
        timing=TimingConfig(runs=4, warmup=0, rounds=rounds, cell_timeout_s=60),
        eval_path=eval_path,
    )


@dataclass
class Outcome:
    run_id: str
    store: Store
    planned: list[str]
    statuses: dict[str, str]
    reasons: dict[str, str | None]
    lost: int
    duplicated: int


def sweep(spec: RunSpec, store_url: str, device, run_id: str | None = None) -> str:
    store = CountingStore(store_url)
    try:
        return run_sweep(spec, store, device, run_id=run_id)
    finally:
        device.close()


def audit(spec: RunSpec, store_url: str, run_id: str, refused_before: int = 0) -> Outcome:
    """Every planned cell stored exactly once, with a status; failures carry a reason."""
    store = Store(store_url)
    _, cells = plan_run(spec)
    planned = [c.key for c in cells]
    records = store.cells(run_id)
    keys = [r.cell.key for r in records]
    duplicated = len(keys) - len(set(keys)) + CountingStore.refused - refused_before
    lost = len(set(planned) - set(keys))
    assert set(keys) <= set(planned), "a cell that was never planned was stored"
    for r in records:
        assert r.status in ("ok", "unsupported", "failed"), r.status
        if r.status != "ok":
            assert r.reason and r.reason.strip(), f"{r.cell.key}: {r.status} without a reason"
    return Outcome(
        run_id,
        store,
        planned,
        {r.cell.key: r.status for r in records},
        {r.cell.key: r.reason for r in records},
        lost,
        duplicated,
    )


def assert_blobs_whole(board: Board) -> int:
    """No half-pushed file under a final name: each blob's sha256 is its name."""
    count = 0
    for path in board.blobs.glob("*"):
        if ".part-" in path.name:
            continue  # a partial upload may stay behind; it is never used under this name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert path.name.startswith(digest), f"{path.name} holds content {digest}"
        count += 1
    return count


def blob_names(board: Board) -> set[str]:
    return {p.name for p in board.blobs.glob("*")} if board.blobs.exists() else set()


def cwd_is_clean() -> bool:
    return not any(Path(os.getcwd()).glob("pwned*"))
