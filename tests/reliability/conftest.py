"""The reliability campaign: faulty devices, bad inputs, hostile clients — and a tally.

Every fault test records (fault, times injected, cells lost, cells duplicated) and every
bad-input test is counted by category; the terminal summary prints both tables. The
existing one-line-error tests in tests/test_cli.py and tests/test_convert.py are counted
too when they ran in the same session (matched by test name below).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.adbd import AdbDaemon, DaemonConfig, generate_adb_keypair
from harness.adbd.faults import parse_fault
from harness.devices.adb_direct import DirectTransport
from harness.devices.remote import WORKDIR, AdbDevice
from harness.lab.sweep import RunSpec, plan_run, run_sweep
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

# Bad-input tests that live elsewhere, counted by (file, test-function prefix) → category.
_EXISTING_BAD_INPUTS = {
    ("tests/test_convert.py", "test_bad_input_is_one_line_and_exit_2"): "files",
    ("tests/test_cli.py", "test_bad_model_paths_are_one_line"): "files",
    ("tests/test_cli.py", "test_bad_eval_file_is_one_line_and_stores_nothing"): "files",
    ("tests/test_cli.py", "test_bad_run_options_are_one_line"): "cli and config",
    ("tests/test_cli.py", "test_unknown_device_is_one_line"): "cli and config",
    ("tests/test_cli.py", "test_click_level_errors_exit_2_without_a_traceback"): "cli and config",
    ("tests/devices/test_run_over_adb.py", "test_hostile_model_name_arrives_as_a_name"): (
        "hostile names"
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bad_input(category): a bad-input case counted in the reliability tally"
    )


@pytest.fixture(autouse=True)
def _bad_input_category(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("bad_input")
    if marker is not None:
        request.node.user_properties.append(("bad_input", marker.args[0]))


def _bad_input_category_of(report) -> str | None:
    for key, value in getattr(report, "user_properties", ()):
        if key == "bad_input":
            return value
    path, _, name = report.nodeid.partition("::")
    return _EXISTING_BAD_INPUTS.get((path, name.partition("[")[0]))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    tried: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            category = _bad_input_category_of(report)
            if category:
                tried[category] += 1
                passed[category] += outcome == "passed"
    if not TALLY.faults and not tried:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability tally")
    if TALLY.faults:
        write(f"{'fault':<48} {'sweeps':>6} {'injected':>8} {'lost':>5} {'duplicated':>10}")
        for name in sorted(TALLY.faults):
            r = TALLY.faults[name]
            write(f"{name:<48} {r.sweeps:>6} {r.injected:>8} {r.lost:>5} {r.duplicated:>10}")
        write("")
    if tried:
        write(f"{'bad input':<48} {'cases tried':>11} {'one line + exit code ok':>24}")
        for category in sorted(tried):
            write(f"{category:<48} {tried[category]:>11} {passed[category]:>24}")


# ----------------------------------------------------------------------------- devices


@pytest.fixture(scope="session")
def host_key_pair(tmp_path_factory):
    return generate_adb_keypair(tmp_path_factory.mktemp("host-key") / "adbkey")


@pytest.fixture
def host_key(host_key_pair, monkeypatch):
    """This host's ADB key, and a short adb-shell timeout so lost connections show fast."""
    monkeypatch.setenv("HARNESS_ADB_KEY", str(host_key_pair.private_key))
    monkeypatch.setenv("HARNESS_ADB_TIMEOUT", "2")
    return host_key_pair


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


@pytest.fixture
def board(tmp_path, host_key):
    """Factory: board(*fault_specs) → a Linux board (daemon with RSA auth) with those faults."""
    boards: list[Board] = []

    def start(*specs: str, root: Path | None = None) -> Board:
        root = root or tmp_path / f"board{len(boards)}"
        config = DaemonConfig(
            root=root,
            authorized_keys=host_key.public_key,
            props={"ro.harness.python": sys.executable},
            faults=tuple(parse_fault(s) for s in specs),
        )
        daemon = AdbDaemon(config)
        daemon.start()
        boards.append(Board(daemon, root))
        return boards[-1]

    yield start
    for b in boards:
        b.daemon.stop()


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
