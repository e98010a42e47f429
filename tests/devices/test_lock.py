"""One lock per device serial: a second harness process waits (bounded) or fails clearly."""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from cli_helpers import harness

from harness.devices.lock import device_lock, lock_path
from harness.errors import DeviceError

HOLDER = textwrap.dedent(
    """
    import sys, time
    from harness.devices.lock import device_lock
    with device_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
        print(time.time(), flush=True)  # the moment it lets go
    """
)


def _hold_in_another_process(serial: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, serial, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_fails_naming_the_holder():
    proc = _hold_in_another_process("emulator-5560", 30)
    try:
        with pytest.raises(DeviceError) as err, device_lock("emulator-5560", wait_s=0.3):
            pass
        assert f"harness process {proc.pid}" in str(err.value)
        assert "busy" in str(err.value)
    finally:
        proc.kill()
        proc.wait()


def test_second_process_waits_until_the_first_is_done():
    proc = _hold_in_another_process("10.0.0.7:5555", 1.0)
    try:
        with device_lock("10.0.0.7:5555", wait_s=30) as path:
            acquired = time.time()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert float(proc.stdout.readline()) <= acquired  # only after the holder let go
    finally:
        proc.wait()


def test_locks_are_per_serial_and_names_are_safe():
    assert lock_path("a:1") != lock_path("a_1")
    evil = lock_path("../../etc/passwd; rm -rf /")
    assert evil.parent == lock_path("x").parent and "/" not in evil.name
    got = threading.Event()

    def other():
        with device_lock("serial-B", wait_s=0):
            got.set()

    with device_lock("serial-A"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert got.is_set()  # another device is never blocked


def test_cli_run_on_a_busy_device_is_one_line_exit_3(variants, store_url):
    proc = _hold_in_another_process("local", 60)
    try:
        run = harness(
            "run",
            str(variants.manifest_path.parent),
            "--lock-wait",
            "0.5",
            "--store",
            store_url,
        )
        assert run.returncode == 3
        assert run.stderr.count("\n") == 1 and "busy" in run.stderr
    finally:
        proc.kill()
        proc.wait()
