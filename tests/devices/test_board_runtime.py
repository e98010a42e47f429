"""A Linux board's Python as `serve-device` presents it, and the runtime preflight.

Boards here are the project's own daemon on loopback; the "board's Python" is this
interpreter, or a venv made from it that lacks numpy and/or every TFLite runtime, as
a board's system `python3` does. No test here sets `ro.harness.python` by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from cli_helpers import assert_user_error, harness, harness_argv

from device_scripts.runner import stderr_tail
from harness.adbd.auth import scan_authorized_keys
from harness.adbd.keys import generate_adb_keypair
from harness.adbd.server import AdbDaemon, DaemonConfig, DaemonConfigError
from harness.devices.adb_direct import DirectTransport
from harness.devices.remote import AdbDevice
from harness.devices.runtime import RuntimeMissing, probe_runtime, require_runtime
from harness.runners.python_runner import RUNNER_PATH


def make_venv(path: Path, with_numpy: bool = False) -> Path:
    """A venv of this interpreter without pip or site packages: a board's bare Python;
    with_numpy links this interpreter's numpy in (numpy, but no TFLite runtime)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    if with_numpy:
        site = Path(numpy.__file__).parent.parent
        ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        target = path / "lib" / ver / "site-packages"
        for entry in site.iterdir():
            if entry.name == "numpy" or entry.name.startswith(("numpy.", "numpy-")):
                (target / entry.name).symlink_to(entry)
    return python


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("bare") / "venv")


@pytest.fixture(scope="module")
def numpy_only_python(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("numpy-only") / "venv", with_numpy=True)


def _board(tmp_path: Path, **config) -> AdbDaemon:
    daemon = AdbDaemon(DaemonConfig(root=tmp_path / "board", **config))
    daemon.start()
    return daemon


def _device(daemon: AdbDaemon) -> AdbDevice:
    transport = DirectTransport("127.0.0.1", daemon.port)
    transport.connect()
    return AdbDevice(transport)


# -- which Python the board names -------------------------------------------------------


def test_the_board_python_is_the_daemons_own_interpreter(tmp_path, host_key):
    with _board(tmp_path, authorized_keys=host_key) as daemon:
        device = _device(daemon)
        try:
            assert device.python() == sys.executable  # was "python3" from PATH
            rt = require_runtime(device)
        finally:
            device.close()
    assert rt is not None and rt.ready
    assert (rt.python, rt.numpy, rt.runtime) == (
        sys.executable,
        numpy.__version__,
        "ai-edge-litert",
    )


def test_python_option_overrides_and_a_props_file_wins(tmp_path, host_key, bare_python):
    with _board(tmp_path / "a", authorized_keys=host_key, python=str(bare_python)) as daemon:
        device = _device(daemon)
        assert device.python() == str(bare_python)
        device.close()
    props = {"ro.harness.python": sys.executable}
    config = {"authorized_keys": host_key, "python": str(bare_python), "props": props}
    with _board(tmp_path / "b", **config) as daemon:
        device = _device(daemon)
        assert device.python() == sys.executable
        device.close()


def test_serve_device_python_that_does_not_exist_is_one_line(tmp_path):
    proc = harness("serve-device", "--no-auth", "--port", "0", "--python", tmp_path / "nope")
    assert_user_error(proc, "--python", "no such executable")


# -- the preflight ------------------------------------------------------------------------


def test_runner_preflight_line_names_what_is_there(numpy_only_python):
    ok = subprocess.run(
        [sys.executable, RUNNER_PATH, "--preflight"], capture_output=True, text=True, check=True
    )
    doc = json.loads(ok.stdout)
    assert (doc["type"], doc["python_ok"], doc["numpy"]) == ("preflight", True, numpy.__version__)
    assert (doc["runtime"], doc["errors"]) == ("ai-edge-litert", {})
    part = subprocess.run(
        [numpy_only_python, RUNNER_PATH, "--preflight"], capture_output=True, text=True, check=True
    )
    doc = json.loads(part.stdout)
    assert doc["numpy"] == numpy.__version__ and doc["runtime"] is None
    assert "No module named 'ai_edge_litert'" in doc["errors"]["runtime"]
    assert "tflite_runtime" in doc["errors"]["runtime"] and "tensorflow" in doc["errors"]["runtime"]


def test_a_board_without_numpy_or_runtime_is_one_device_error(tmp_path, host_key, bare_python):
    with _board(tmp_path, authorized_keys=host_key, python=str(bare_python)) as daemon:
        device = _device(daemon)
        try:
            with pytest.raises(RuntimeMissing) as caught:
                require_runtime(device)
        finally:
            device.close()
    msg = str(caught.value)
    assert caught.value.exit_code == 3 and "\n" not in msg
    assert msg.startswith(f"127.0.0.1:{daemon.port}: the board's Python {bare_python}")
    assert "lacks numpy and a TFLite runtime" in msg
    assert f"`{bare_python} -m pip install ai-edge-litert numpy`" in msg


def test_a_board_with_numpy_only_is_told_to_install_the_runtime(
    tmp_path, host_key, numpy_only_python
):
    with _board(tmp_path, authorized_keys=host_key, python=str(numpy_only_python)) as daemon:
        device = _device(daemon)
        try:
            with pytest.raises(RuntimeMissing) as caught:
                require_runtime(device)
        finally:
            device.close()
    msg = str(caught.value)
    assert "lacks a TFLite runtime (ai_edge_litert, tflite_runtime or tensorflow.lite);" in msg
    assert f"`{numpy_only_python} -m pip install ai-edge-litert`, or start" in msg


def test_a_python_that_is_not_there_is_said(tmp_path, host_key):
    gone = tmp_path / "no" / "python3"
    with _board(tmp_path, authorized_keys=host_key, python=str(gone)) as daemon:
        device = _device(daemon)
        try:
            rt = probe_runtime(device)
            with pytest.raises(RuntimeMissing, match="cannot run the runner"):
                require_runtime(device)
        finally:
            device.close()
    assert not rt.ready and rt.problem.startswith("exit 127")


# -- failure reasons -----------------------------------------------------------------------


def test_stderr_tail_is_bounded_sanitised_and_keeps_the_end():
    text = "noise\n" * 50 + "\x1b[31mRuntimeError:\x07 bad\x00 op\x1b[0m\n   ^^^^^^\n\n"
    assert stderr_tail(text) == "noise | noise | noise | noise | RuntimeError: bad op"
    long = "x" * 1000 + "\nModuleNotFoundError: No module named 'numpy'"
    tail = stderr_tail(long)
    assert len(tail) == 400 and tail.startswith("…")
    assert tail.endswith("ModuleNotFoundError: No module named 'numpy'")
    assert stderr_tail("") == ""


def test_a_cell_failed_by_a_dying_worker_says_why(tmp_path, bare_python):
    """The supervisor runs on any Python (no numpy); its worker dies importing numpy.
    The cell's reason carries the worker's last words, not only its exit status."""
    job = tmp_path / "job.json"
    cell = {"id": "c0", "model": "m.tflite", "delegate": "cpu", "threads": 1}
    job.write_text(json.dumps({"schema": 1, "cells": [cell], "runs": 1, "outputs_dir": "o"}))
    out = subprocess.run(
        [bare_python, RUNNER_PATH, job], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    (failed,) = [d for d in docs if d["type"] == "cell"]
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("runner worker exited with status 1: ")
    assert failed["reason"].endswith("ModuleNotFoundError: No module named 'numpy'")
    assert len(failed["reason"]) <= 400 + len("runner worker exited with status 1: ")
    assert "ModuleNotFoundError" in out.stderr  # still on the runner's stderr, as before


# -- harness devices -------------------------------------------------------------------------


def test_devices_shows_each_boards_python_and_runtime(tmp_path, host_key, bare_python):
    good = _board(tmp_path / "good", authorized_keys=host_key)
    bare = _board(tmp_path / "bare", authorized_keys=host_key, python=str(bare_python))
    try:
        env = dict(os.environ, ANDROID_ADB_SERVER_PORT="1")  # no adb server: direct only
        args = ("devices", "--connect", good.serial, "--connect", bare.serial)
        proc = harness(*args, "--json", env=env)
        table = harness(*args, env=env)
    finally:
        good.stop()
        bare.stop()
    assert proc.returncode == 0, proc.stderr
    by = {d["serial"]: d for d in json.loads(proc.stdout)["devices"]}
    ok = by[good.serial]["runtime"]
    assert (ok["python"], ok["runtime"], ok["ready"]) == (sys.executable, "ai-edge-litert", True)
    assert ok["runtime_version"] and ok["numpy"] == numpy.__version__
    lacking = by[bare.serial]["runtime"]
    assert (lacking["python"], lacking["ready"], lacking["numpy"]) == (
        str(bare_python),
        False,
        None,
    )
    assert "pip install ai-edge-litert numpy" in by[bare.serial]["note"]
    assert by["local"]["runtime"]["ready"] is True
    assert "PYTHON" in table.stdout and "RUNTIME" in table.stdout
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith(good.serial))
    assert f"{sys.executable} ({ok['python_version']})" in line and "ai-edge-litert " in line
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith(bare.serial))
    assert "missing: numpy, TFLite runtime" in line


# -- authorized keys ---------------------------------------------------------------------------


def test_a_keys_file_that_lets_nobody_in_is_refused(tmp_path):
    bad = tmp_path / "adb_keys"
    bad.write_text("# only junk here\nnot-base64!!\nQUJD user@host\n")
    with pytest.raises(DaemonConfigError, match="holds no valid ADB public key"):
        AdbDaemon(DaemonConfig(authorized_keys=bad))
    proc = harness("serve-device", "--port", "0", "--authorized-keys", bad)
    assert_user_error(proc, str(bad), "no valid ADB public key")
    empty = tmp_path / "empty"
    empty.write_text("")
    assert_user_error(harness("serve-device", "--port", "0", "--authorized-keys", empty), "empty")


def test_a_malformed_line_among_valid_keys_is_a_warning_naming_it(tmp_path):
    pair = generate_adb_keypair(tmp_path / "k" / "adbkey")
    keys = tmp_path / "adb_keys"
    keys.write_text(pair.public_key.read_text() + "garbage line\n")
    scan = scan_authorized_keys(keys)
    assert len(scan.keys) == 1 and [n for n, _ in scan.bad_lines] == [2]
    proc = subprocess.Popen(
        harness_argv("serve-device", "--port", "0", "--authorized-keys", keys),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "serving ADB device on" in proc.stdout.readline()  # it starts
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    warnings = [ln for ln in err.splitlines() if ln.strip()]
    assert warnings == [f"warning: {keys} line 2: not an ADB public key, skipped ({_why(keys)})"]


def _why(path: Path) -> str:
    return scan_authorized_keys(path).bad_lines[0][1]
