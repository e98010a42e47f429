"""A newcomer's first board, exactly as the README says: `harness serve-device --root DIR
--no-auth` in one terminal, `harness run MODEL --device 127.0.0.1:PORT` in another.

Both are real `harness` processes. Nothing configures the board's Python: no props
file, no `ro.harness.python`. The daemon's PATH starts with a `python3` that has
neither numpy nor a TFLite runtime, as a board's system Python often has not, so a
daemon that ran the runner with `python3` fails here the way it did for the user.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, harness, harness_argv

from harness.store.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A venv of this interpreter without pip or site packages (no numpy, no runtime)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


@pytest.fixture
def user_env(tmp_path, bare_python, host_key) -> dict:
    """The user's shell: `python3` on PATH is the bare one; no adb server is running."""
    from adbd.conftest import free_port

    path_dir = tmp_path / "path"
    path_dir.mkdir()
    # a script, not a symlink: a venv's python is found by its own path (pyvenv.cfg)
    shim = path_dir / "python3"
    shim.write_text(f'#!/bin/sh\nexec {bare_python} "$@"\n')
    shim.chmod(0o755)
    return dict(
        os.environ,
        PATH=f"{path_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        ANDROID_ADB_SERVER_PORT=str(free_port()),
    )


@contextlib.contextmanager
def serve_device(env: dict, *args) -> Iterator[str]:
    """`harness serve-device --port 0 ARGS` in the background; yields its HOST:PORT."""
    proc = subprocess.Popen(
        harness_argv("serve-device", "--port", "0", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        found = re.search(r"serving ADB device on (127\.0\.0\.1:\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield found[1]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_device_then_run_just_works(variants, tmp_path, user_env):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert subprocess.run(["python3", "-c", "import numpy"], env=user_env).returncode != 0
    with serve_device(user_env, "--root", tmp_path / "board", "--no-auth") as serial:
        proc = harness(
            "run",
            variants.manifest_path.parent,
            "--device",
            serial,
            "--variants",
            "fp32,int8",
            "--runs",
            "12",
            "--rounds",
            "2",
            "--store",
            url,
            "--json",
            env=user_env,
        )
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    assert len(cells) == 4  # fp32, int8 x cpu, xnnpack
    for c in cells:
        assert (c["device"], c["status"], c["reason"]) == (serial, "ok", None), c
        lat = c["latency_us"]
        assert lat["n"] == 12 and 0 < lat["min"] <= lat["median"] <= lat["max"]
        assert c["latency_us"]["init"] > 0 and c["peak_rss_mb"] > 0


def test_serve_device_then_two_models_together_just_works(variants, tmp_path, user_env):
    """README: `harness run A B --together --device HOST:PORT` on a bare board: both
    models served at once by the board's runner, each with its alone window beside."""
    import shutil

    a, b = tmp_path / "base.tflite", tmp_path / "quant.tflite"
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", a)
    shutil.copy(variants.manifest_path.parent / "int8.tflite", b)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with serve_device(user_env, "--root", tmp_path / "board", "--no-auth") as serial:
        proc = harness("run", a, b, "--together", "--device", serial, "--delegates",
                       "xnnpack", "--rounds", "2", "--min-secs", "0.6", "--store", url,
                       "--json", env=user_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = {c["model"]: c for c in json.loads(proc.stdout)["cells"]}
    assert set(cells) == {"base", "quant"}
    for model, c in cells.items():
        assert (c["device"], c["status"]) == (serial, "ok"), c
        t = c["extra"]["together"]
        assert t["with"] == [{"base": "quant", "quant": "base"}[model]]
        assert t["requests"] == c["latency_us"]["n"] > 0 and len(t["slowdown_rounds"]) == 2


def test_a_board_whose_python_lacks_the_runtime_is_one_line_and_exit_3(
    variants, tmp_path, user_env, bare_python
):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    args = ("--root", tmp_path / "board", "--no-auth", "--python", bare_python)
    with serve_device(user_env, *args) as serial:
        proc = harness(
            "run", variants.manifest_path.parent, "--device", serial, "--store", url, env=user_env
        )
    line = assert_user_error(
        proc,
        f"{serial}: the board's Python {bare_python}",
        "lacks numpy and a TFLite runtime",
        f"`{bare_python} -m pip install ai-edge-litert numpy`",
        codes=(3,),
    )
    assert "runner worker exited" not in line
    store = Store(url)
    assert all(not store.cells(r.run_id) for r in store.list_runs())  # nothing measured
