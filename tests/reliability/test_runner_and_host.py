"""The runner hangs or is killed on the device; the host itself is SIGKILLed and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cli_helpers import harness_argv
from reliability_campaign import TALLY, CountingStore, assert_blobs_whole, audit, small_spec, sweep

from harness.devices.remote import WORKDIR
from harness.store.store import Store


def _hang_int8_on(board, variants):
    """Open the device so the int8 model is staged as a FIFO: opening it blocks for real."""
    workdir = board.root / WORKDIR.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(workdir / "hangs.tflite")
    int8 = next(v for v in variants.variants if v.name == "int8").info.sha256
    device = board.open()
    real_stage = device.stage

    def stage(local, sha256, suffix):
        return "hangs.tflite" if sha256 == int8 else real_stage(local, sha256, suffix)

    device.stage = stage
    return device, workdir


def _kill_hung_workers(workdir, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL (as the OOM killer would) every runner worker stuck opening the FIFO."""
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(f"/proc/{pid}/cwd")
                wchan = Path(f"/proc/{pid}/wchan").read_text()
            except OSError:
                continue
            if b"--worker" in cmd and cwd == str(workdir) and wchan == "wait_for_partner":
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
        stop.wait(0.05)


def _kill_host_when(argv, env, ready) -> None:
    """Start the host (`harness run ...`) and SIGKILL its whole group once ready()."""
    host = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and host.poll() is None and not ready():
            time.sleep(0.02)
        assert host.poll() is None, "the host finished before it could be killed"
        os.killpg(host.pid, signal.SIGKILL)
    finally:
        host.wait()


def _resume(run_id: str, store_url: str) -> None:
    resumed = subprocess.run(
        harness_argv("run", "--resume", run_id, "--store", store_url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr


def _check(name, board, spec, store_url, run_id, refused, injected):
    outcome = audit(spec, store_url, run_id, refused)
    TALLY.record(name, injected, outcome.lost, outcome.duplicated)
    assert outcome.lost == outcome.duplicated == 0
    assert_blobs_whole(board)
    return outcome


def test_a_hung_runner_costs_only_its_cells(board, variants, store_url):
    b = board()
    spec = small_spec(variants, b.serial)
    spec = replace(spec, timing=replace(spec.timing, cell_timeout_s=2))
    device, _ = _hang_int8_on(b, variants)
    refused = CountingStore.refused
    run_id = sweep(spec, store_url, device)
    outcome = _check("runner hangs (FIFO model)", b, spec, store_url, run_id, refused, 2)
    for key, status in outcome.statuses.items():
        if "|int8|" in key:
            assert status == "failed" and "timed out after 2 s" in outcome.reasons[key]
        else:
            assert status == "ok", outcome.reasons[key]


def test_a_runner_killed_by_the_os_costs_only_its_cells(board, variants, store_url):
    b = board()
    spec = small_spec(variants, b.serial)
    device, workdir = _hang_int8_on(b, variants)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_hung_workers, args=(workdir, stop, killed))
    killer.start()
    refused = CountingStore.refused
    try:
        run_id = sweep(spec, store_url, device)
    finally:
        stop.set()
        killer.join()
    outcome = _check("runner killed (SIGKILL)", b, spec, store_url, run_id, refused, len(killed))
    assert len(killed) == 2
    for key, status in outcome.statuses.items():
        if "|int8|" in key:
            assert status == "failed" and "SIGKILL" in outcome.reasons[key]
        else:
            assert status == "ok", outcome.reasons[key]


@pytest.mark.slow
def test_host_killed_mid_sweep_then_resumed(board, variants, digits, store_url):
    # The 2nd pull of results stalls for a minute: the host is then stuck between its
    # 1st and 2nd commit, which is where it gets SIGKILLed. Counted, not timed.
    b = board("stall:pull:match=outputs/:nth=2:seconds=60")
    spec = small_spec(variants, b.serial, digits / "eval.npz")
    args = [
        "run",
        spec.model,
        "--device",
        b.serial,
        "--variants",
        "fp32,int8",
        "--delegates",
        "cpu,xnnpack",
        "--runs",
        "4",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--eval",
        spec.eval_path,
        "--store",
        store_url,
    ]
    env = dict(os.environ, HARNESS_ADB_TIMEOUT="30")
    store = Store(store_url)

    def first_cell_stored() -> bool:
        runs = store.list_runs()
        return bool(runs and store.done_keys(runs[0].run_id))

    _kill_host_when(harness_argv(*args), env, first_cell_stored)
    (run,) = store.list_runs()
    assert run.status == "running"  # SIGKILL: nothing got to mark it interrupted
    before = {r.cell.key: r for r in store.cells(run.run_id)}
    assert 1 <= len(before) < 4

    _resume(run.run_id, store_url)
    outcome = _check("host SIGKILLed, then --resume", b, spec, store_url, run.run_id, 0, 1)
    assert set(outcome.statuses.values()) == {"ok"}, outcome.reasons
    assert store.get_run(run.run_id).status == "complete"
    after = {r.cell.key: r for r in store.cells(run.run_id)}
    for key, record in before.items():  # what was stored before the kill is kept as is
        assert after[key].samples == record.samples


def test_host_killed_in_the_last_round_resumes_at_that_round(board, variants, store_url):
    """3 rounds; the 3rd round's runner stalls, the host is SIGKILLed there. The resume
    runs round 3 only: the rounds stored before the kill open each cell's samples."""
    b = board("stall:shell:match=job-r2:seconds=60")  # fires once: not on the resume
    spec = small_spec(variants, b.serial, None)
    args = ["run", spec.model, "--device", b.serial, "--variants", "fp32,int8"]
    args += ["--delegates", "cpu,xnnpack", "--runs", "6", "--warmup", "0", "--rounds", "3"]
    env = dict(os.environ, HARNESS_STREAM_IDLE_TIMEOUT="120")
    store = Store(store_url)
    held: dict = {}

    def rounds_stored_and_round_3_hangs() -> bool:
        nonlocal held
        runs = store.list_runs()
        held = store.rounds(runs[0].run_id) if runs else {}
        stalled = b.fired() >= 1  # round 3's runner has started, and hangs
        return stalled and len(held) == 4 and all(len(docs) == 2 for docs in held.values())

    _kill_host_when(harness_argv(*args, "--store", store_url), env, rounds_stored_and_round_3_hangs)
    (run,) = store.list_runs()
    assert store.cells(run.run_id) == []  # no cell had finished: only rounds were kept

    _resume(run.run_id, store_url)
    outcome = _check(
        "host SIGKILLed in round 3, resumed there", b, spec, store_url, run.run_id, 0, 1
    )
    assert set(outcome.statuses.values()) == {"ok"}, [r for r in outcome.reasons.values() if r]
    for record in store.cells(run.run_id):
        kept = [x for doc in held[record.cell.key] for x in doc["invoke_us"]]
        assert record.extra["rounds"] == 3 and len(kept) == 4
        assert record.samples["invoke_us"][:4] == kept  # measured once, never again
        assert len(record.samples["invoke_us"]) == 6
    assert store.rounds(run.run_id) == {}
