"""`harness run` with LiteRT's CompiledModel benchmark as the gpu/npu runner, end to end.

The device is `harness serve-device` presenting an x86_64 emulator's properties; the
transport, staging, pinning, parsing, store and report are real. The LiteRT binary is
tests/android/standin_litert_benchmark.py (its docstring says what is real in it: the
timings come from LiteRT's CompiledModel runtime on this CPU; the GPU and NPU are
simulated, enforcing the rules the upstream source defines). TFLite's cells run on the
real benchmark_model build in ../shared/tools when it is there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_run_exit, harness

from harness.adbd.server import AdbDaemon, DaemonConfig
from harness.store.store import Store

HERE = Path(__file__).resolve().parent
TOOLS = Path(os.environ.get("HARNESS_BENCHMARK_MODEL_DIR") or HERE.parents[2] / "shared" / "tools")
REAL_TFLITE = TOOLS / "benchmark_model-linux-x86_64"


@pytest.fixture
def real_tflite() -> Path:
    """The real TFLite benchmark_model build (../shared/tools, or
    $HARNESS_BENCHMARK_MODEL_DIR): skipped without it, failed with HARNESS_REQUIRE_ALL=1."""
    if not REAL_TFLITE.is_file():
        if os.environ.get("HARNESS_REQUIRE_ALL") == "1":
            pytest.fail(f"HARNESS_REQUIRE_ALL=1 but the real benchmark_model is not in {TOOLS}")
        pytest.skip(f"no real benchmark_model in {TOOLS} (set HARNESS_BENCHMARK_MODEL_DIR)")
    return REAL_TFLITE


ANDROID_PROPS = {
    "ro.harness.device_class": "",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "x86_64",
    "ro.product.cpu.abilist": "x86_64,arm64-v8a",
    "ro.product.model": "sdk_gphone64_x86_64",
    "ro.kernel.qemu": "1",
}


@pytest.fixture
def emulator(tmp_path, monkeypatch, host_key):
    """An x86_64 'emulator' on loopback; `register(abi)` adds the LiteRT stand-in."""
    monkeypatch.setenv("HARNESS_ADB_TIMEOUT", "5")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    standin = tmp_path / "standin" / "benchmark_model"
    standin.parent.mkdir()
    standin.write_text(f"#!{sys.executable}\n" + (HERE / "standin_litert_benchmark.py").read_text())
    root = tmp_path / "phone"
    daemon = AdbDaemon(DaemonConfig(root=root, props=ANDROID_PROPS, authorized_keys=host_key))
    port = daemon.start()

    def register(abi: str = "x86_64", tool: str = "litert", path: Path = standin) -> None:
        added = harness("tools", "add", str(path), "--abi", abi, "--tool", tool)
        assert added.returncode == 0, added.stderr

    yield {"serial": f"127.0.0.1:{port}", "root": root, "register": register, "tmp": tmp_path}
    daemon.stop()


def _run(emulator, variants, store_url, delegates: str, *extra: str) -> dict:
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        emulator["serial"],
        "--variants",
        "fp32",
        "--delegates",
        delegates,
        "--runs",
        "6",
        "--rounds",
        "2",
        "--warmup",
        "1",
        "--store",
        store_url,
        "--json",
        *extra,
    )
    doc = assert_run_exit(proc, ok_codes=(0, 1))
    envs = {r.cell.delegate: r.env for r in Store(store_url).cells(doc["run_id"])}
    return {c["delegate"]: c | {"env": envs[c["delegate"]]} for c in doc["cells"]}


def _calls(root: Path) -> list[dict]:
    path = root / "litert-calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_no_accelerator_means_unsupported_never_cpu_figures(emulator, variants, store_url):
    emulator["register"]()
    cells = _run(emulator, variants, store_url, "gpu,npu")
    gpu, npu = cells["gpu"], cells["npu"]
    assert gpu["status"] == "unsupported" and (gpu["latency_us"] or {}).get("mean") is None
    assert "GPU accelerator could not be loaded and registered" in gpu["reason"]
    assert npu["status"] == "unsupported"
    assert "harness tools add LIB --tool litert-npu --abi x86_64" in npu["reason"]
    # gpu went to the LiteRT binary (no benchmark_model is registered at all)
    timed = [c for c in _calls(emulator["root"]) if "--help" not in c["argv"]]
    assert timed and all("--use_gpu=true" in c["argv"] for c in timed)


def test_gpu_and_npu_on_litert_with_vendor_libraries(emulator, variants, store_url, digits):
    emulator["register"]()
    libs = emulator["tmp"] / "vendor"
    libs.mkdir()
    for name in ("libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so"):
        (libs / name).write_bytes(b"\x7fELF" + name.encode())
        emulator["register"]("x86_64", "litert-npu", libs / name)
    (emulator["root"] / "standin-gpu").write_text("")  # the stand-in's GPU "loads"
    cells = _run(
        emulator,
        variants,
        store_url,
        "gpu,gpu-f32,npu",
        "--eval",
        str(digits / "eval.npz"),
    )
    for name in ("gpu", "gpu-f32", "npu"):
        c = cells[name]
        assert c["status"] == "ok", c
        lat = c["latency_us"]
        assert lat["n"] == 6 and lat["aggregate_only"] is True and lat["mean"] > 0
        assert c["extra"]["fully_accelerated"] is True
        assert c["extra"]["rounds"] == 2
        assert c["accuracy"] is None and "no --output_filepath" in c["extra"]["accuracy_error"]
        assert c["extra"]["runner"]["name"] == "litert_benchmark"
    assert cells["npu"]["extra"]["delegation"]["delegates"][0]["delegate"] == "DispatchDelegate"
    calls = [c for c in _calls(emulator["root"]) if "--help" not in c["argv"]]
    assert len(calls) == 3 * 2
    # interleaved: round 1 times all three cells before round 2
    first = [
        tuple(a for a in c["argv"] if a.startswith(("--use_gpu", "--use_npu", "--gpu-")))
        for c in calls
    ]
    assert len(set(first[:3])) == 3
    npu = [c for c in calls if "--use_npu=true" in c["argv"]]
    assert len(npu) == 2
    for call in npu:
        folder = next(
            a.split("=", 1)[1] for a in call["argv"] if a.startswith("--dispatch_library_path=")
        )
        assert f"--compiler_plugin_library_path={folder}" in call["argv"]
        lib_dir = call["LD_LIBRARY_PATH"]
        assert os.path.isabs(lib_dir) and lib_dir.endswith(folder)
        assert call["ADSP_LIBRARY_PATH"] == lib_dir
        assert sorted(os.listdir(lib_dir)) == ["libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so"]
    gpu_calls = [c for c in calls if "--use_gpu=true" in c["argv"]]
    assert all(c["LD_LIBRARY_PATH"] is None for c in gpu_calls)
    assert sum("--gpu-precision=fp32" in c["argv"] for c in gpu_calls) == 2
    env = cells["npu"]["env"]
    assert (env["runner"], env["abi"], env["native_bridge"]) == (
        "litert_benchmark",
        "x86_64",
        False,
    )
    assert sorted(env["npu_libraries"]) == ["libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so"]


def test_require_full_delegation_sends_use_cpu_false(emulator, variants, store_url):
    emulator["register"]()
    cells = _run(emulator, variants, store_url, "gpu", "--require-full-delegation")
    # no GPU: the real tool fails to compile without CPU; with --use_cpu=true it would abort
    assert cells["gpu"]["status"] == "failed"
    assert "Failed to compile model" in cells["gpu"]["reason"]
    calls = [c for c in _calls(emulator["root"]) if "--help" not in c["argv"]]
    assert all("--use_cpu=false" in c["argv"] for c in calls)


def test_arm64_binary_through_the_native_bridge_is_recorded(emulator, variants, store_url):
    emulator["register"]("arm64-v8a")
    (emulator["root"] / "standin-gpu").write_text("")
    cells = _run(emulator, variants, store_url, "gpu")
    c = cells["gpu"]
    assert c["status"] == "ok"
    assert (c["env"]["abi"], c["env"]["device_abi"], c["env"]["native_bridge"]) == (
        "arm64-v8a",
        "x86_64",
        True,
    )
    assert any("native bridge" in h for h in c["extra"]["hazards"])


def test_cpu_on_real_benchmark_model_gpu_on_litert(emulator, variants, store_url, real_tflite):
    emulator["register"]()
    emulator["register"]("x86_64", "tflite", real_tflite)
    (emulator["root"] / "standin-gpu").write_text("")
    cells = _run(emulator, variants, store_url, "xnnpack,gpu")
    assert cells["xnnpack"]["status"] == "ok", cells["xnnpack"]
    assert cells["xnnpack"]["env"]["runner"] == "benchmark_model"
    assert cells["gpu"]["status"] == "ok" and cells["gpu"]["env"]["runner"] == "litert_benchmark"


def test_benchmark_model_records_the_arm64_binary_on_an_x86_64_emulator(
    emulator, variants, store_url, real_tflite
):
    # Registered as arm64-v8a, the real (x86-64) build stands for an arm64 binary that
    # the emulator's native bridge runs: the choice is the point, and it is recorded.
    emulator["register"]("arm64-v8a", "tflite", real_tflite)
    c = _run(emulator, variants, store_url, "xnnpack")["xnnpack"]
    assert c["status"] == "ok", c
    assert (c["env"]["abi"], c["env"]["device_abi"], c["env"]["native_bridge"]) == (
        "arm64-v8a",
        "x86_64",
        True,
    )


def test_npu_without_a_litert_binary_says_where_npus_run(
    emulator, variants, store_url, real_tflite
):
    emulator["register"]("x86_64", "tflite", real_tflite)
    c = _run(emulator, variants, store_url, "npu")["npu"]
    assert c["status"] == "unsupported"
    assert "harness tools fetch --tool litert --abi arm64-v8a" in c["reason"]
