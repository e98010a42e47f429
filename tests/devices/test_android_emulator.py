"""`harness run --device emulator` on an Android-class device registered with a real adb
server — the path a user with an emulator takes — without an emulator or a phone.

The "emulator" is the project's daemon presenting Android properties and announced to
an isolated Debian adb server as emulator-N; benchmark_model is the stand-in that
replays recorded real outputs (tests/android/standin_benchmark_model.py, the only fake).
"""

from __future__ import annotations

import json
import sys

import pytest
from android.test_end_to_end import ANDROID_PROPS, FIXTURES, HERE, _fake_sysfs
from cli_helpers import harness

from harness.adbd.server import announce_emulator


@pytest.fixture
def standin(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_SYSFS", str(_fake_sysfs(tmp_path / "sysfs")))
    path = tmp_path / "standin" / "benchmark_model"
    path.parent.mkdir()
    body = (
        (HERE / "standin_benchmark_model.py")
        .read_text()
        .replace(
            "FIXTURES = Path(__file__).resolve().parent", f"FIXTURES = Path({str(FIXTURES)!r})"
        )
    )
    path.write_text(f"#!{sys.executable}\n{body}")
    added = harness("tools", "add", str(path), "--abi", "x86_64")
    assert added.returncode == 0, added.stderr


@pytest.mark.slow
def test_android_emulator_through_the_adb_server(
    server_env, start_daemon, standin, variants, digits, store_url
):
    emu = start_daemon(props=ANDROID_PROPS)
    announce_emulator(server_env.port, emu.port)
    server_env.wait_for_state(f"emulator-{emu.port - 1}", "device")
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        "emulator",
        "--variants",
        "fp32",
        "--delegates",
        "cpu,xnnpack,gpu,nnapi",
        "--runs",
        "5",
        "--eval",
        str(digits / "eval.npz"),
        "--eval-limit",
        "20",
        "--store",
        store_url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    cells = {c["delegate"]: c for c in json.loads(proc.stdout)["cells"]}
    assert set(cells) == {"cpu", "xnnpack", "gpu", "nnapi"}
    assert {c["device"] for c in cells.values()} == {f"emulator-{emu.port - 1}"}
    for c in cells.values():
        assert c["status"] == "ok", c
        assert c["latency_us"]["mean"] > 0 and c["latency_us"]["aggregate_only"] is True
        assert c["accuracy"] is not None
    # memory where the recorded output printed it (the GPU recording has none)
    assert cells["cpu"]["peak_rss_mb"] is not None
    assert cells["gpu"]["extra"]["delegation"]["status"] == "full"
    assert cells["nnapi"]["extra"]["delegation"]["status"] == "partial"
    assert "emulator" in " ".join(cells["cpu"]["extra"]["hazards"])
