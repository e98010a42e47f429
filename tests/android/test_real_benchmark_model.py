"""The Android path against the REAL TFLite benchmark_model (../shared/tools).

../shared/tools holds two genuine builds of TF 2.21's benchmark_model for this machine
(see its README and BUILD_INFO.txt): `benchmark_model-linux-x86_64` (CPU and XNNPACK: no
GPU or NNAPI provider, as upstream CMake builds it off Android) and `-gpu` (with the
OpenCL GPU delegate, which fails to apply here: no libOpenCL.so). Each is registered with
`harness tools add PATH --abi x86_64` and reached through the daemon behind
`harness serve-device` presenting Android properties, exactly as a phone's binary is.

Found at ../shared/tools relative to the repository root, or $HARNESS_BENCHMARK_MODEL_DIR.
Without them the tests skip; with HARNESS_REQUIRE_ALL=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_run_exit, harness

from harness.adbd.server import AdbDaemon, DaemonConfig
from harness.runners.benchmark_model import flags as F
from harness.runners.benchmark_model.parse import TFLITE_BENCHMARK, detect_tool_kind, parse_output
from harness.runners.benchmark_model.runner import start_check, timed_result

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("HARNESS_BENCHMARK_MODEL_DIR") or ROOT.parent / "shared" / "tools")
CPU_BUILD = TOOLS / "benchmark_model-linux-x86_64"
GPU_BUILD = TOOLS / "benchmark_model-linux-x86_64-gpu"

PROPS = {
    "ro.harness.device_class": "",  # the daemon's Linux default; a phone has no such prop
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "x86_64",
    "ro.product.cpu.abilist": "x86_64",
    "ro.product.model": "real-benchmark_model-on-x86_64",
}


@pytest.fixture(scope="module")
def tools() -> Path:
    if not (CPU_BUILD.is_file() and GPU_BUILD.is_file()):
        if os.environ.get("HARNESS_REQUIRE_ALL") == "1":
            pytest.fail(f"HARNESS_REQUIRE_ALL=1 but the real benchmark_model is not in {TOOLS}")
        pytest.skip(f"no real benchmark_model in {TOOLS} (set HARNESS_BENCHMARK_MODEL_DIR)")
    return TOOLS


@pytest.fixture(scope="module")
def static_model(digits, tmp_path_factory) -> Path:
    """The digits CNN with a STATIC input shape [1, 8, 8, 1] (no -1 in its signature):
    the case whose accuracy pass used to abort the tool."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(digits / "digits.keras")
    image = keras.Input((8, 8, 1), batch_size=1, name="image")  # a fixed batch of one
    static = keras.Model(image, model(image))
    converter = tf.lite.TFLiteConverter.from_keras_model(static)
    path = tmp_path_factory.mktemp("static") / "digits_static.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.fixture
def device(tmp_path, monkeypatch, host_key):
    monkeypatch.setenv("HARNESS_ADB_TIMEOUT", "10")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    daemon = AdbDaemon(DaemonConfig(root=tmp_path / "phone", props=PROPS, authorized_keys=host_key))
    port = daemon.start()
    yield f"127.0.0.1:{port}"
    daemon.stop()


def _register(binary: Path) -> None:
    added = harness("tools", "add", str(binary), "--abi", "x86_64")
    assert added.returncode == 0, added.stderr


def _run(serial, model, store_url, *extra) -> dict:
    proc = harness(
        "run",
        str(model),
        "--device",
        serial,
        "--runs",
        "20",
        "--rounds",
        "2",
        "--warmup",
        "1",
        "--affinity",
        "all",
        "--store",
        store_url,
        "--json",
        *extra,
        timeout=600,
    )
    return {c["delegate"]: c for c in assert_run_exit(proc)["cells"]}


def test_real_tool_with_eval_on_a_static_model(tools, device, static_model, digits, store_url):
    _register(CPU_BUILD)
    cells = _run(
        device,
        static_model,
        store_url,
        "--delegates",
        "cpu,xnnpack,gpu,nnapi",
        "--eval",
        digits / "eval.npz",
        "--eval-limit",
        "20",
    )
    for name in ("cpu", "xnnpack"):
        c = cells[name]
        assert c["status"] == "ok", c["reason"]
        lat = c["latency_us"]
        assert lat["n"] == 20 and 0 < lat["min"] <= lat["mean"] <= lat["max"]
        assert c["accuracy"] is not None and c["accuracy"] >= 0.8, c
        assert "accuracy_error" not in c["extra"]
        assert c["extra"]["eval_invocations"] == 20  # static shape: one per sample
        # the monitored peak, from its own pass, and the change of max RSS kept apart
        assert 1 < c["peak_rss_mb"] < 1024
        memory = c["extra"]["memory_mb"]
        assert memory["peak_monitored"] == pytest.approx(c["peak_rss_mb"], abs=1e-3)
        assert memory["max_rss_delta"]["printed_as"].startswith("Memory footprint delta")
        print(f"REAL {name}: {lat} peak_rss_mb={c['peak_rss_mb']} accuracy={c['accuracy']}")
    # No GPU or NNAPI in this build: never "ok" under an accelerator's label.
    for name, flag in (("gpu", "--use_gpu"), ("nnapi", "--use_nnapi")):
        assert cells[name]["status"] == "unsupported", cells[name]
        assert flag in cells[name]["reason"] and "--help usage" in cells[name]["reason"]
        print(f"REAL {name}: {cells[name]['status']}: {cells[name]['reason']}")


def test_real_gpu_build_fails_the_gpu_cell_with_the_tools_line(
    tools, device, static_model, store_url
):
    _register(GPU_BUILD)
    cells = _run(device, static_model, store_url, "--delegates", "gpu,nnapi")
    assert cells["gpu"]["status"] == "failed"
    assert "Failed to apply GPU delegate" in cells["gpu"]["reason"]
    assert cells["nnapi"]["status"] == "unsupported"
    print(f"REAL gpu build: gpu {cells['gpu']['reason'][:200]}")


def _real(binary: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_real_help_unconsumed_and_fatal_as_the_runner_reads_them(tools, static_model, tmp_path):
    # --help: usage on stderr, exit 1 (benchmark_model.cc ParseFlags); the start check passes.
    helped = _real(CPU_BUILD, "--help")
    assert helped.returncode == 1 and "--input_layer_value_files=" in helped.stderr
    assert detect_tool_kind(helped.stderr) == TFLITE_BENCHMARK
    flags, error = start_check(helped.stdout + helped.stderr, 1, "benchmark_model", "here")
    assert error is None and "use_gpu" not in flags
    # An accelerator flag this build lacks: the tool warns, runs on CPU, exits 0; the
    # runner fails such a cell with the tool's own line.
    graph = f"--graph={static_model}"
    timing = F.timing_flags(5, None, 1, 150)
    gpu = _real(CPU_BUILD, graph, "--use_gpu=true", *timing)
    text = gpu.stdout + gpu.stderr
    assert gpu.returncode == 0 and "WARN: Unconsumed cmdline flags: --use_gpu=true" in text
    raw = timed_result(parse_output(text), 0, "gpu", text)
    assert raw["status"] == "failed"
    assert raw["reason"].endswith("Unconsumed cmdline flags: --use_gpu=true")
    # A value file without --input_layer: FATAL and abort; harness's flags feed it.
    values = tmp_path / "v.bin"
    np.zeros((1, 8, 8, 1), np.float32).tofile(values)
    out = tmp_path / "o.bin"
    bare = _real(
        CPU_BUILD, graph, f"--input_layer_value_files=image:{values}", f"--output_filepath={out}"
    )
    assert bare.returncode == -6  # SIGABRT (134 through a shell)
    assert "FATAL: Cannot find the corresponding input_layer name(image)" in bare.stderr
    from harness.convert.tflite_info import inspect_tflite

    spec = inspect_tflite(static_model.read_bytes()).inputs[0]
    feed = F.InputFeed(spec.name, tuple(spec.shape), str(values))
    fed = _real(
        CPU_BUILD,
        *F.eval_flags(str(static_model), "cpu", 1, F.BenchmarkOptions(), [feed], str(out)),
    )
    assert fed.returncode == 0, fed.stderr[-400:]
    assert out.stat().st_size == 10 * 4  # one float32 row of 10 classes


def test_real_tool_times_a_batch_through_input_layer_shape(tools, device, variants, store_url):
    """The real TF 2.21 binary resizes the dynamic-batch digits CNN to 8 samples per
    invoke from --input_layer_shape: both batches ok; the batch of 8 costs more per
    request and the per-sample figure is its mean over 8."""
    _register(CPU_BUILD)
    proc = harness(
        "run", str(variants.manifest_path.parent), "--device", device, "--variants", "fp32",
        "--delegates", "xnnpack", "--batch", "1,8", "--runs", "200", "--rounds", "2",
        "--affinity", "all", "--store", store_url, "--json", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = {c["batch"]: c for c in json.loads(proc.stdout)["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    one, eight = cells[1]["latency_us"], cells[8]["latency_us"]
    assert eight["n"] == one["n"] == 200
    # 8 samples are more work than 1 (the tool really resized), judged by the minimum,
    # the figure least moved by a busy host
    assert eight["min"] > one["min"]
    assert cells[8]["per_sample_us"] == pytest.approx(eight["mean"] / 8)
    print(f"REAL batch: mean b1 {one['mean']:.1f} us, b8 {eight['mean']:.1f} us")


def test_real_tool_serves_a_load_of_two_processes(tools, device, variants, store_url):
    """--concurrency 1,2 against the real TF 2.21 binary: two processes at once, each
    timing its own --min_secs window (the real tool's count x mean covers it), their
    aggregates pooled; on this 2-core host two 1-thread instances complete more runs
    per second than one."""
    _register(CPU_BUILD)
    proc = harness(
        "run", str(variants.manifest_path.parent), "--device", device, "--variants", "fp32",
        "--delegates", "xnnpack", "--concurrency", "1,2", "--min-secs", "2", "--rounds", "2",
        "--affinity", "all", "--store", store_url, "--json", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = {c["concurrency"]: c for c in json.loads(proc.stdout)["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    for n, cell in cells.items():
        load = cell["extra"]["load"]
        assert load["instances"] == n and len(load["per_instance"]) == n
        assert load["window_s"] >= 2 * 0.95  # two rounds of at least 1 s each, by the tool
        for a in cell["extra"]["runner"]["instances_aggregate"]:
            assert a["n"] * a["mean"] / 1e6 >= 0.95  # each instance timed its window
    rates = {n: cells[n]["throughput_sps"] for n in cells}
    assert rates[2] > rates[1]
    print(f"REAL load: samples/s N=1 {rates[1]:.0f}, N=2 {rates[2]:.0f} "
          f"({rates[2] / rates[1]:.2f}x)")  # fmt: skip


def test_real_tool_serves_two_models_together(tools, device, variants, tmp_path, store_url):
    """--together against the real TF 2.21 binary: each model alone for its window, then
    one process per model started together; both print their aggregates, each round's
    pair of medians gives the slowdown (the real tool prints its median)."""
    import shutil

    _register(CPU_BUILD)
    a, b = tmp_path / "base.tflite", tmp_path / "quant.tflite"
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", a)
    shutil.copy(variants.manifest_path.parent / "int8.tflite", b)
    proc = harness(
        "run", a, b, "--together", "--device", device, "--delegates", "xnnpack",
        "--min-secs", "2", "--rounds", "2", "--affinity", "all", "--store", store_url,
        "--json", timeout=600,
    )  # fmt: skip
    cells = {c["model"]: c for c in assert_run_exit(proc)["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    for c in cells.values():
        t = c["extra"]["together"]
        assert len(t["slowdown_rounds"]) == 2 and t["slowdown"] > 0
        assert t["window_s"] >= 2 * 0.95 and t["alone_window_s"] >= 2 * 0.95  # by the tool
        print(f"REAL together {c['model']}: {t['center']} {t['alone_median_us']:.1f} us alone "
              f"-> {t['median_us']:.1f} us together, slowdown {t['slowdown']:.2f}x, "
              f"req/s {t['alone_rate_rps']:.0f} -> {t['rate_rps']:.0f}")  # fmt: skip


def test_real_tool_sustains_one_process_per_window(tools, device, variants, store_url):
    """--sustained 10s against the real TF 2.21 binary: back-to-back benchmark_model
    passes of one 1 s window each (the tool's --min_secs), until 10 s have passed; each
    window's figure is the tool's own median (it prints p5/median/p95), the windows'
    aggregates pool into the cell, and the timed fraction of the wall is below one (a
    model load separates the windows). This host's /sys may lack cpufreq or thermal
    zones: then the record says so and carries no such readings."""
    _register(CPU_BUILD)
    proc = harness(
        "run", str(variants.manifest_path.parent), "--device", device, "--variants", "fp32",
        "--delegates", "xnnpack", "--sustained", "10s", "--affinity", "all", "--store",
        store_url, "--json", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [cell] = json.loads(proc.stdout)["cells"]
    assert cell["status"] == "ok", cell
    s = cell["extra"]["sustained"]
    ws = s["windows"]
    assert len(ws) >= 5 and ws[-1]["t_s"] >= 9.0
    assert all(w["center"] == "median" and w["median_us"] > 0 for w in ws)
    assert cell["latency_us"]["n"] == sum(w["n"] for w in ws)
    for w in ws:  # each process timed its own window: count x mean covers the 1 s
        assert w["n"] * w["mean_us"] / 1e6 >= 0.95 and w["kept"] == 0
    assert 0.3 < s["timed_fraction"] < 1.0
    assert ("cpufreq/scaling_cur_freq" in s["missing"]) == (ws[0]["freq_khz"] is None)
    assert ("thermal_zone*/temp" in s["missing"]) == (ws[0]["temp_c"] is None)
    print(f"REAL sustained: {len(ws)} windows, timed fraction {s['timed_fraction']:.2f}, "
          f"steady ratio {s['steady_ratio']:.3f}")  # fmt: skip
