"""`harness run` on an Android device, end to end, without a phone.

The device is the project's own ADB daemon (`harness serve-device` in-process) presenting
Android properties and a fake sysfs; the transport, staging, taskset pinning, parsing,
statistics, store and report are all real. benchmark_model itself is replaced by
tests/android/standin_benchmark_model.py (see its docstring: it replays recorded real
outputs, and computes eval outputs with a real TFLite runtime).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_run_exit, harness

from harness.adbd.server import AdbDaemon, DaemonConfig

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "benchmark_model"

ANDROID_PROPS = {
    "ro.harness.device_class": "",  # the daemon's Linux default; a phone has no such prop
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "x86_64",
    "ro.product.cpu.abilist": "x86_64,arm64-v8a",
    "ro.product.model": "sdk_gphone64_x86_64",
    "ro.kernel.qemu": "1",
    "ro.build.type": "userdebug",
    "ro.build.fingerprint": "google/sdk_gphone64_x86_64/emu64xa:14/UE1A/1:userdebug/dev-keys",
}


def _fake_sysfs(root: Path) -> Path:
    """Two cores (a little 1.8 GHz, a big 2.4 GHz), a battery at 20 %, one thermal zone."""
    files = {
        "class/power_supply/battery/capacity": "20",
        "class/power_supply/battery/temp": "310",
        "class/power_supply/battery/status": "Discharging",
        "class/thermal/thermal_zone0/temp": "45000",
        "class/thermal/thermal_zone0/type": "cpu-therm",
        "devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "1800000",
        "devices/system/cpu/cpu0/cpufreq/scaling_governor": "schedutil",
        "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1200000",
        "devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq": "2400000",
        "devices/system/cpu/cpu1/cpufreq/scaling_governor": "schedutil",
        "devices/system/cpu/cpu1/cpufreq/scaling_cur_freq": "2000000",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return root


@pytest.fixture
def phone(tmp_path, monkeypatch, host_key):
    """An 'emulator' on loopback with a stand-in benchmark_model registered for x86_64."""
    monkeypatch.setenv("HARNESS_ADB_TIMEOUT", "5")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_SYSFS", str(_fake_sysfs(tmp_path / "sysfs")))
    standin = tmp_path / "standin" / "benchmark_model"
    standin.parent.mkdir()
    body = (HERE / "standin_benchmark_model.py").read_text()
    body = body.replace(
        "FIXTURES = Path(__file__).resolve().parent", f"FIXTURES = Path({str(FIXTURES)!r})"
    )
    standin.write_text(f"#!{sys.executable}\n{body}")
    added = harness("tools", "add", str(standin), "--abi", "x86_64")
    assert added.returncode == 0, added.stderr
    root = tmp_path / "phone"
    daemon = AdbDaemon(DaemonConfig(root=root, props=ANDROID_PROPS, authorized_keys=host_key))
    port = daemon.start()
    yield {"serial": f"127.0.0.1:{port}", "root": root}
    daemon.stop()


def _cell_of(call: dict) -> tuple:
    return tuple(a for a in call["argv"] if a.startswith(("--graph=", "--use_", "--num_threads")))


def _runs_of(call: dict) -> int:
    return next(int(a.split("=")[1]) for a in call["argv"] if a.startswith("--num_runs="))


def _calls(root: Path) -> list[dict]:
    path = root / "standin-calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_on_android_gives_latency_memory_coverage_and_accuracy(
    phone, variants, digits, store_url
):
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        phone["serial"],
        "--variants",
        "fp32,int8",
        "--delegates",
        "cpu,xnnpack,gpu,nnapi",
        "--runs",
        "5",
        "--rounds",
        "3",
        "--warmup",
        "1",
        "--eval",
        str(digits / "eval.npz"),
        "--eval-limit",
        "40",
        "--store",
        store_url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    cells = {(c["variant"], c["delegate"]): c for c in doc["cells"]}
    assert len(cells) == 8 and all(c["status"] == "ok" for c in cells.values()), doc

    # Latency: what the recorded output printed (count=50 avg=33209.4 std=450), in each
    # of 3 interleaved rounds, pooled exactly; marked aggregate-only.
    cpu = cells[("fp32", "cpu")]["latency_us"]
    assert (cpu["n"], cpu["min"], cpu["max"]) == (150, 32641.0, 34005.0)
    assert cpu["mean"] == pytest.approx(33209.4) and cpu["std"] == pytest.approx(450.0)
    assert cells[("fp32", "cpu")]["extra"]["rounds"] == 3
    assert cpu["aggregate_only"] is True
    assert cpu["median"] is None and cpu["p90"] is None and cpu["ci_low"] is None
    assert (cpu["init"], cpu["first"]) == (855.0, 49060.0)
    # Memory: the monitored peak from a pass of its own; the change of max RSS (the old
    # "Peak memory footprint" line included) kept apart, never as the peak.
    assert cells[("fp32", "cpu")]["peak_rss_mb"] == pytest.approx(14.7734, abs=1e-3)
    assert cells[("fp32", "xnnpack")]["extra"]["memory_mb"] == {
        "max_rss_delta": {
            "init": 8.97656,
            "overall": 18.7227,
            "printed_as": "Memory footprint delta from the start of the tool",
        },
        "peak_monitored": 14.7734,
    }
    # Delegation coverage: GPU took the whole graph; NNAPI only part of it, and says so.
    gpu, nnapi = cells[("fp32", "gpu")]["extra"], cells[("fp32", "nnapi")]["extra"]
    assert gpu["fully_accelerated"] is True and gpu["delegation"]["status"] == "full"
    assert nnapi["fully_accelerated"] is False
    assert (nnapi["delegation"]["status"], nnapi["delegation"]["kernels"]) == ("partial", 44)
    # Accuracy and drift from outputs computed for the first 40 eval samples on "device".
    for c in cells.values():
        assert c["accuracy"] is not None and c["accuracy"] >= 0.8, c
        assert c["drift"]["top1_agreement"] is not None
    assert cells[("fp32", "cpu")]["drift"]["max_abs"] == 0.0
    # Noise hazards of this device are recorded with every cell.
    hazards = " ".join(cells[("int8", "gpu")]["extra"]["hazards"])
    for word in ("emulator", "battery at 20%", "debuggable", "governor schedutil"):
        assert word in hazards
    # Pinned to the big core (cpu1, 2.4 GHz), recorded with the cell.
    assert cells[("fp32", "cpu")]["extra"]["affinity"]["mask"] == "2"
    calls = _calls(phone["root"])
    timed = [c for c in calls if not any(a.startswith("--output_filepath") for a in c["argv"])]
    timed = [c for c in timed if any(a.startswith("--num_runs=") for a in c["argv"])]
    memory = [c for c in timed if "--report_peak_memory_footprint=true" in c["argv"]]
    timed = [c for c in timed if c not in memory]
    assert len(timed) == 3 * 8 and all(c["cpus"] == [1] for c in timed)
    assert len(memory) == 8  # once per cell, in its last round
    # Interleaved: round 1 times all 8 cells before round 2 starts; --runs 5 is 2+2+1.
    assert len({_cell_of(c) for c in timed[:8]}) == 8
    assert [_runs_of(c) for c in timed] == [2] * 16 + [1] * 8
    flags = {a for c in timed for a in c["argv"]}
    assert {
        "--use_xnnpack=false",
        "--use_xnnpack=true",
        "--use_gpu=true",
        "--use_nnapi=true",
    } <= flags
    assert "--report_peak_memory_footprint=true" not in flags  # never in a timed pass
    assert "--disable_nnapi_cpu=true" in flags  # always explicit
    assert not any("--enable_op_profiling=true" in c["argv"] for c in timed)
    # One batched accuracy invocation per cell (the digits model's batch is dynamic), the
    # input named with its shape: the stand-in aborts otherwise, as the tool does.
    evals = [c for c in calls if any(a.startswith("--output_filepath=") for a in c["argv"])]
    assert len(evals) == 8
    assert all("--input_layer=serving_default_image:0" in c["argv"] for c in evals)
    assert all("--input_layer_shape=40,8,8,1" in c["argv"] for c in evals)
    # The SLO pick works on the phone's aggregates: the mean stands in for the median.
    rec = harness("recommend", doc["run_id"], "--max-latency", "1s", "--store", store_url, "--json")
    assert rec.returncode == 0, rec.stderr
    best = json.loads(rec.stdout)["picks"][0]["best"]
    assert best["statistic"] == "mean"
    assert (
        best["latency_us"]
        == cells[(best["cell"]["variant"], best["cell"]["delegate"])]["latency_us"]["mean"]
    )


def test_require_full_delegation_fails_the_partial_cell(phone, variants, store_url):
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        phone["serial"],
        "--variants",
        "fp32",
        "--delegates",
        "nnapi,gpu",
        "--runs",
        "3",
        "--require-full-delegation",
        "--affinity",
        "all",
        "--op-profile",
        "--store",
        store_url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    cells = {c["delegate"]: c for c in json.loads(proc.stdout)["cells"]}
    assert cells["nnapi"]["status"] == "failed"
    assert "Disallowed CPU fallback detected" in cells["nnapi"]["reason"]
    assert cells["gpu"]["status"] == "ok"
    assert cells["gpu"]["extra"]["affinity"]["mask"] is None
    # The op profile is a separate pass; its table comes from the recorded output.
    calls = _calls(phone["root"])
    profiled = [c for c in calls if "--enable_op_profiling=true" in c["argv"]]
    assert profiled and all(
        not any(a.startswith("--num_runs=3") for a in c["argv"]) for c in profiled
    )
    assert all(c["cpus"] == [0, 1] for c in calls)


def test_missing_binary_names_both_commands(tmp_path, monkeypatch, host_key, variants, store_url):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "empty-cache"))
    props = ANDROID_PROPS | {"ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": ""}
    with AdbDaemon(DaemonConfig(root=tmp_path / "p", props=props, authorized_keys=host_key)) as d:
        port = d.port
        proc = harness(
            "run",
            str(variants.manifest_path.parent),
            "--device",
            f"127.0.0.1:{port}",
            "--variants",
            "fp32",
            "--delegates",
            "cpu",
            "--store",
            store_url,
        )
    assert proc.returncode != 0
    assert "harness tools fetch --abi arm64-v8a" in proc.stderr
    assert "harness tools add PATH --abi arm64-v8a" in proc.stderr


def _mode(phone, **modes):
    """Modes for the stand-in (its docstring), read from the device's root per call."""
    (phone["root"] / "standin-mode.json").write_text(json.dumps(modes))


def _run(phone, variants, store_url, *extra, delegates="cpu,gpu,nnapi"):
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        phone["serial"],
        "--variants",
        "fp32",
        "--delegates",
        delegates,
        "--runs",
        "3",
        "--store",
        store_url,
        "--json",
        *extra,
    )
    return {c["delegate"]: c for c in assert_run_exit(proc)["cells"]}


def test_all_same_rounds_are_ok_with_std_zero(phone, variants, store_url):
    _mode(phone, STANDIN_BM_ALL_SAME="1")  # stats_calculator.h's all-same form
    cells = _run(phone, variants, store_url, "--rounds", "2", delegates="cpu")
    lat = cells["cpu"]["latency_us"]
    assert cells["cpu"]["status"] == "ok", cells["cpu"]["reason"]
    assert (lat["n"], lat["min"], lat["max"], lat["mean"], lat["std"]) == (
        100,
        33209.0,
        33209.0,
        33209.0,
        0.0,
    )
    assert "truncated" in cells["cpu"]["extra"]["runner"]["std_note"]


def test_a_build_without_gpu_or_nnapi_never_labels_cpu_figures(phone, variants, store_url):
    _mode(phone, STANDIN_BM_BUILD="cpu-only")
    cells = _run(phone, variants, store_url)
    assert cells["cpu"]["status"] == "ok"
    for delegate, flag in (("gpu", "--use_gpu"), ("nnapi", "--use_nnapi")):
        assert cells[delegate]["status"] == "unsupported", cells[delegate]
        reason = cells[delegate]["reason"]
        assert flag in reason and "not in its --help usage" in reason, reason
    calls = _calls(phone["root"])
    assert not any("--use_gpu=true" in c["argv"] for c in calls)  # never sent


def test_litert_compiled_model_binary_is_refused(phone, variants, store_url):
    _mode(phone, STANDIN_BM_BUILD="litert")
    cells = _run(phone, variants, store_url, delegates="cpu")
    assert cells["cpu"]["status"] == "failed"
    assert "LiteRT's CompiledModel benchmark" in cells["cpu"]["reason"]
    calls = _calls(phone["root"])
    assert [c["argv"] for c in calls] == [["--help"]]  # nothing driven with the wrong flags


def test_failed_accuracy_pass_keeps_the_timing(phone, variants, digits, store_url):
    _mode(phone, STANDIN_BM_FAULT="outputs")
    cells = _run(
        phone, variants, store_url, "--eval", str(digits / "eval.npz"), "--eval-limit", "4",
        delegates="cpu",
    )  # fmt: skip
    cpu = cells["cpu"]
    assert cpu["status"] == "ok" and cpu["latency_us"]["n"] == 150  # 3 rounds of 50
    assert cpu["accuracy"] is None
    err = cpu["extra"]["accuracy_error"]
    assert err.startswith("accuracy pass: benchmark_model exited 134: FATAL: Failed to read")
    assert len(err) <= 400


def test_standin_enforces_the_real_tools_rules(phone, tmp_path):
    """The stand-in fails the way the tool does (each rule cites its upstream file)."""
    import subprocess

    standin = tmp_path / "standin" / "benchmark_model"
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")

    def run(*args):
        return subprocess.run([sys.executable, str(standin), *args], capture_output=True, text=True)

    help_ = run("--help")
    assert help_.returncode == 1 and help_.stdout == ""
    assert "\t--input_layer_value_files=" in help_.stderr
    fatal = run(f"--graph={model}", "--input_layer_value_files=in::0:v.bin")
    assert fatal.returncode == -6  # SIGABRT: 134 through a shell
    assert "FATAL: Cannot find the corresponding input_layer name(in:0)" in fatal.stderr
    warn = run(f"--graph={model}", "--use_gpu=true", "--no_such_flag=1")
    assert "WARN: Unconsumed cmdline flags: --no_such_flag=1" in warn.stderr
    mem = run(f"--graph={model}", "--report_peak_memory_footprint=true")
    assert "Overall peak memory footprint (MB) via periodic monitoring: 14.7734" in mem.stderr
    assert "Peak memory footprint (MB): init" not in mem.stderr
    prof = run(f"--graph={model}", "--enable_op_profiling=true").stderr
    assert "\tDelegate/Convolution (NHWC, F32) IGEMM:0" in prof


def test_batch_on_android_resizes_every_timed_pass(phone, variants, store_url):
    """--batch 8 reaches benchmark_model as --input_layer/--input_layer_shape on the timed
    and memory passes (the stand-in checks them against the model, as the tool's Init
    does); per-sample latency and throughput come from the tool's mean."""
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        phone["serial"],
        "--variants",
        "fp32",
        "--delegates",
        "xnnpack",
        "--batch",
        "1,8",
        "--runs",
        "4",
        "--rounds",
        "2",
        "--store",
        store_url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    cells = {c["batch"]: c for c in json.loads(proc.stdout)["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    mean = cells[8]["latency_us"]["mean"]
    assert cells[8]["per_sample_us"] == pytest.approx(mean / 8)
    assert cells[8]["throughput_sps"] == pytest.approx(8e6 / mean)
    calls = _calls(phone["root"])
    calls = [c for c in calls if any(a.startswith("--num_runs=") for a in c["argv"])]
    shaped = [c for c in calls if "--input_layer_shape=8,8,8,1" in c["argv"]]
    assert len(shaped) == 2 + 1  # two timed rounds and the memory pass
    assert all("--input_layer=serving_default_image:0" in c["argv"] for c in shaped)
    unshaped = [a for c in calls if c not in shaped for a in c["argv"]]
    assert not any(a.startswith("--input_layer") for a in unshaped)  # batch 1: as before


def test_concurrency_on_android_runs_n_benchmark_model_processes_at_once(
    phone, variants, store_url
):
    """--concurrency 1,2 on Android: per round, N copies of the timed pass started
    together (each timing its own window, --min_secs shared over the rounds, one run at
    least); the cell pools their aggregates exactly and its throughput is every run of
    every instance over the longest timed span."""
    root = phone["root"]
    (root / "standin-calls.jsonl").unlink(missing_ok=True)
    args = ["run", str(variants.manifest_path.parent), "--device", phone["serial"], "--variants",
            "fp32", "--delegates", "xnnpack", "--concurrency", "1,2", "--min-secs", "1.2",
            "--rounds", "2", "--store", store_url, "--json"]  # fmt: skip
    proc = harness(*args)
    assert proc.returncode == 0, proc.stderr
    cells = {c["concurrency"]: c for c in json.loads(proc.stdout)["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    two = cells[2]
    load = two["extra"]["load"]
    assert load["instances"] == 2 and load["windows"] == 2 and len(load["per_instance"]) == 2
    assert load["requests"] == sum(load["per_instance"]) == two["latency_us"]["n"]
    assert two["throughput_sps"] == pytest.approx(load["samples"] / load["window_s"])
    instances = two["extra"]["runner"]["instances_aggregate"]
    assert len(instances) == 2  # the last round's two processes, kept as printed
    # a round's window is its longest instance's timed span (count x mean, as printed;
    # the stand-in replays a recording, so the span is the recording's, not 0.6 s)
    last = max(a["n"] * a["mean"] for a in instances) / 1e6
    assert last < load["window_s"] == pytest.approx(2 * last)
    timed = [c for c in _calls(root) if "--min_secs=0.6" in c["argv"]]
    assert len(timed) == 2 * (1 + 2)  # per round: 1 process at c1, 2 at c2
    assert all("--num_runs=1" in c["argv"] for c in timed)
    # the report never shows a mean as p50, nor a p99 the tool did not print
    run_id = json.loads(proc.stdout)["run_id"]
    html = phone["root"].parent / "load.html"
    shown = harness("report", run_id, "--store", store_url, "--html", str(html))
    assert shown.returncode == 0, shown.stderr
    page = html.read_text()
    assert "batch &amp; concurrency" in page and "not printed by the tool" in page


def test_together_on_android_runs_one_process_per_model_at_once(
    phone, variants, store_url, tmp_path
):
    """README: `harness run A B --together` on a phone: per round, each model's timed
    pass alone (one after the other), then one benchmark_model process per model started
    together; each cell's latency is its aggregate beside the other, its alone aggregate
    and the per-round pair of centres in `together`."""
    import shutil

    root = phone["root"]
    (root / "standin-calls.jsonl").unlink(missing_ok=True)
    a, b = tmp_path / "base.tflite", tmp_path / "quant.tflite"
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", a)
    shutil.copy(variants.manifest_path.parent / "int8.tflite", b)
    proc = harness("run", a, b, "--together", "--device", phone["serial"], "--delegates",
                   "xnnpack", "--min-secs", "1.2", "--rounds", "2", "--store", store_url,
                   "--json")  # fmt: skip
    cells = {c["model"]: c for c in assert_run_exit(proc)["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    for model, c in cells.items():
        t = c["extra"]["together"]
        assert t["with"] == [{"base": "quant", "quant": "base"}[model]]
        assert t["members"] == 2 and len(t["slowdown_rounds"]) == 2
        assert t["requests"] == c["latency_us"]["n"] and t["alone_requests"] > 0
        assert t["center"] == "mean" and t["p99_us"] is None  # the tool's aggregates only
    timed = [c for c in _calls(root) if "--min_secs=0.6" in c["argv"]]
    assert len(timed) == 2 * 4  # per round: base alone, quant alone, both together
    for r in range(2):
        alone_a, alone_b, *together = timed[4 * r : 4 * r + 4]
        assert alone_b["t"] - alone_a["t"] >= 0.5  # one after the other (0.6 s each)
        assert abs(together[0]["t"] - together[1]["t"]) < 0.5  # started as one
        graphs = {next(x for x in c["argv"] if x.startswith("--graph=")) for c in together}
        assert len(graphs) == 2  # a process per model
    text = harness("report", json.loads(proc.stdout)["run_id"], "--store", store_url)
    assert "base fp32/xnnpack/t1 with quant: mean" in " ".join(text.stdout.split())


def _battery(sysfs: Path, status: str, current_ua: int, voltage_uv: int = 4_000_000) -> None:
    bat = sysfs / "class/power_supply/battery"
    # each file written whole then renamed: the test's watcher rewrites them every 10 ms,
    # and the device's probe or sampler must never read one truncated (an empty status
    # read as "unknown" failed CI once); a real sysfs attribute is never half-written
    for name, value in (
        ("status", status),
        ("voltage_now", voltage_uv),
        ("current_now", current_ua),
    ):
        tmp = bat / f"{name}.tmp"
        tmp.write_text(f"{value}\n")
        tmp.replace(bat / name)


def test_compare_of_two_energy_runs_calls_energy_up(phone, variants, store_url):
    """README: two `harness run --energy --rounds 3` runs, then `harness compare A B`:
    the candidate's device draws 4 W busy where the baseline's drew 2 W (0.5 W idle),
    so its mJ per inference, judged round by round, is "more" and the cell's verdict
    "energy up": exit 1. Against a charging run there is no energy verdict, and the
    note says which side and why."""
    import threading
    import time

    sysfs = Path(os.environ["HARNESS_SYSFS"])
    busy_ua = {"now": 500_000}  # 2 W at 4 V

    def run(status: str = "Discharging") -> str:
        _battery(sysfs, status, 125_000)
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                busy = list(phone["root"].rglob("energy-busy-*.txt"))
                _battery(sysfs, status, busy_ua["now"] if busy else 125_000)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            proc = harness("run", str(variants.manifest_path.parent), "--device",
                           phone["serial"], "--variants", "int8", "--delegates", "xnnpack",
                           "--runs", "400", "--min-secs", "3", "--rounds", "3", "--energy",
                           "--store", store_url, "--json")  # fmt: skip
        finally:
            stop.set()
            watcher.join()
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["run_id"]

    base = run()
    busy_ua["now"] = 1_000_000  # 4 W
    more = run()
    cmp = harness("compare", base, more, "--store", store_url, "--json")
    assert cmp.returncode == 1, cmp.stderr  # a regression
    [cell] = json.loads(cmp.stdout)["cells"]
    e = cell["energy"]
    assert cell["verdict"] == "energy up" and e["verdict"] == "more"
    assert e["method"] == "rounds" and e["rounds_baseline"] == e["rounds_candidate"] == 3
    assert e["change"] > 0.5 and e["ci_low"] > 0.05  # (4-0.5)/(2-0.5) = 2.3x, less noise
    table = harness("compare", base, more, "--store", store_url)
    assert "energy" in table.stdout and "energy up" in table.stdout
    charging = run("Charging")
    cmp = harness("compare", base, charging, "--store", store_url, "--json")
    [cell] = json.loads(cmp.stdout)["cells"]
    assert cell["energy"]["verdict"] is None and cell["verdict"] != "energy up"
    assert "no verdict: candidate: " in cell["note"] and "Charging" in cell["note"]


def test_energy_on_android_from_the_fake_battery(phone, variants, store_url, monkeypatch):
    """--energy through the stand-in: the device samples the daemon's fake battery at
    ~10 Hz, idle first (0.5 W) then during the timed pass, which this test raises to 2 W
    once the busy sample file appears; the cell gets mJ per inference above idle. A
    charging battery keeps the figure but marks it meaningless. --unplug on a device
    without dumpsys is one line, exit 2."""
    import threading
    import time

    sysfs = Path(os.environ["HARNESS_SYSFS"])
    _battery(sysfs, "Discharging", 125_000)  # 0.5 W idle
    stop = threading.Event()

    def raise_load_when_busy() -> None:
        while not stop.is_set():
            busy = list(phone["root"].rglob("energy-busy-*.txt"))
            _battery(sysfs, "Discharging", 500_000 if busy else 125_000)  # 2 W when busy
            time.sleep(0.01)

    watcher = threading.Thread(target=raise_load_when_busy, daemon=True)
    watcher.start()
    args = ["run", str(variants.manifest_path.parent), "--device", phone["serial"],
            "--variants", "int8", "--delegates", "xnnpack", "--runs", "400", "--min-secs",
            "1", "--rounds", "1", "--energy", "--store", store_url, "--json"]  # fmt: skip
    try:
        proc = harness(*args)
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr
    [cell] = json.loads(proc.stdout)["cells"]
    e = cell["energy"]
    assert cell["status"] == "ok" and e["battery_status"] == "Discharging"
    assert e["idle_w"] == pytest.approx(0.5, rel=0.05)
    assert 1.0 < e["busy_w"] <= 2.0  # 2 W once the watcher saw the pass start
    assert 4 <= e["rate_hz"] <= 11 and e["samples"] >= 3  # about 10 Hz, as sampled
    assert e["inferences"] > 0 and e["mj_per_inference"] > 0 and e["meaningful"]
    assert e["mj_per_inference"] == pytest.approx(e["joules_net"] / e["inferences"] * 1e3)
    # the readings the figure rests on are stored with it, as read from the battery
    readings = e["readings"]
    assert readings["columns"] == ["t_s", "current_ua", "voltage_uv"]
    assert len(readings["busy"]) == e["samples"] and readings["idle"]
    assert {row[2] for row in readings["busy"] + readings["idle"]} == {4_000_000}
    assert {row[1] for row in readings["idle"]} == {125_000}
    run_id = json.loads(proc.stdout)["run_id"]
    budget = ["recommend", run_id, "--max-latency", "10s", "--store", store_url, "--json"]
    fits = harness(*budget, "--max-energy", f"{e['mj_per_inference'] * 1.01:.6g}")
    assert fits.returncode == 0, fits.stderr
    [pick] = json.loads(fits.stdout)["picks"]
    assert pick["best"]["energy_mj"] == pytest.approx(e["mj_per_inference"])
    over = harness(*budget, "--max-energy", f"{e['mj_per_inference'] * 0.5:.6g}")
    assert over.returncode == 1  # no cell within the energy budget

    _battery(sysfs, "Charging", 125_000)
    charging = harness(*args)
    assert charging.returncode == 0, charging.stderr
    [cell] = json.loads(charging.stdout)["cells"]
    assert cell["energy"]["meaningful"] is False and "Charging" in cell["energy"]["note"]

    refused = harness(*args[:-1], "--unplug")  # the daemon's shell has no dumpsys
    assert refused.returncode == 2 and refused.stdout == ""
    [line] = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert line.startswith("harness: error: --unplug:") and "dumpsys battery unplug" in line


def test_sustained_on_android_runs_back_to_back_windows_with_sysfs_between(
    phone, variants, store_url
):
    """--sustained 10s on Android: benchmark_model passes of one 1 s window each (one
    run at least, --min_secs=1), back to back on the device until 10 s have passed, the
    CPU frequencies and thermal zones read after each; the test lowers one core's
    frequency and heats the zone midway, and the series shows it from that window on."""
    import threading
    import time

    root, sysfs = phone["root"], Path(os.environ["HARNESS_SYSFS"])
    (root / "standin-calls.jsonl").unlink(missing_ok=True)

    def throttle_later() -> None:
        time.sleep(6.0)
        for rel, value in (
            ("devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", "1000000"),
            ("class/thermal/thermal_zone0/temp", "71500"),
        ):
            tmp = sysfs / (rel + ".tmp")
            tmp.write_text(value + "\n")
            tmp.replace(sysfs / rel)  # whole, as a sysfs attribute is

    watcher = threading.Thread(target=throttle_later, daemon=True)
    watcher.start()
    args = ["run", str(variants.manifest_path.parent), "--device", phone["serial"],
            "--variants", "fp32", "--delegates", "xnnpack", "--sustained", "10s",
            "--store", store_url, "--json"]  # fmt: skip
    proc = harness(*args)
    watcher.join()
    assert proc.returncode == 0, proc.stderr
    [cell] = json.loads(proc.stdout)["cells"]
    assert cell["status"] == "ok", cell
    s = cell["extra"]["sustained"]
    ws = s["windows"]
    timed = [c for c in _calls(root) if "--min_secs=1" in c["argv"]]
    assert len(ws) == s["processes"] == len(timed) >= 4  # one process per window
    assert all("--num_runs=1" in c["argv"] for c in timed)
    assert ws[-1]["t_s"] >= 10.0 - 1.0  # ran until the duration had passed
    assert all(a["t_s"] < b["t_s"] for a, b in zip(ws, ws[1:], strict=False))
    # each window is the tool's own figures (the stand-in replays one recording)
    assert len({(w["n"], w["median_us"]) for w in ws}) == 1 and ws[0]["center"] == "mean"
    assert cell["latency_us"]["n"] == sum(w["n"] for w in ws)
    assert s["missing"] == [] and (s["cores"], s["zones"]) == (2, 1)
    assert ws[0]["freq_khz"] == [1200000, 2000000] and ws[0]["temp_c"] == 45.0
    assert ws[-1]["freq_khz"] == [1200000, 1000000] and ws[-1]["temp_c"] == 71.5
    assert s["timed_fraction"] > 0  # a replay's figures, not its sleep: the real tool's is <= 1
    assert s["steady_ratio"] == pytest.approx(1.0)  # the same replay throughout


def test_sustained_with_energy_on_android_is_an_unsupported_row(phone, variants, store_url):
    proc = harness(
        "run", str(variants.manifest_path.parent), "--device", phone["serial"], "--variants",
        "fp32", "--delegates", "xnnpack", "--sustained", "10s", "--energy", "--store",
        store_url, "--json",
    )  # fmt: skip
    [cell] = json.loads(proc.stdout)["cells"]  # the row is shown and stored
    assert cell["status"] == "unsupported" and "sustained" in cell["reason"]
    assert proc.returncode == 4  # nothing was measured
    [line] = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("harness: error: run ") and "measured nothing: 1 unsupported" in line
