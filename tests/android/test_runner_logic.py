"""Flag mapping, core affinity, noise hazards, output decoding, delegation marks."""

from __future__ import annotations

import numpy as np
import pytest

from harness.convert.tflite_info import TensorSpec
from harness.errors import HarnessError
from harness.runners.benchmark_model import flags as F
from harness.runners.benchmark_model.parse import parse_output
from harness.runners.benchmark_model.runner import (
    EvalError,
    core_affinity,
    decode_outputs,
    eval_batches,
    memory_result,
    noise_hazards,
    pool_aggregates,
    pool_rounds,
    split_load_output,
    start_check,
    timed_result,
    to_input_dtype,
)

from .test_parse import LITERT_USAGE, load

OPTS = F.BenchmarkOptions()


@pytest.mark.parametrize(
    "delegate, want",
    [
        ("cpu", ["--use_xnnpack=false"]),
        ("xnnpack", ["--use_xnnpack=true"]),
        ("gpu", ["--use_gpu=true"]),
        ("gpu-f32", ["--use_gpu=true", "--gpu_precision_loss_allowed=false"]),
        # nnapi_delegate_provider.cc defaults --disable_nnapi_cpu to true: always explicit
        ("nnapi", ["--use_nnapi=true", "--disable_nnapi_cpu=true"]),
        ("npu", None),
    ],
)
def test_delegate_flags(delegate, want):
    assert F.delegate_flags(delegate, OPTS) == want


def test_delegate_options():
    o = F.BenchmarkOptions(
        gpu_precision_loss=False,
        gpu_backend="cl",
        nnapi_accelerator="qti-dsp",
        disable_nnapi_cpu=True,
        require_full_delegation=True,
    )
    assert F.delegate_flags("gpu", o) == [
        "--use_gpu=true",
        "--gpu_precision_loss_allowed=false",
        "--gpu_backend=cl",
        "--require_full_delegation=true",
    ]
    assert F.delegate_flags("nnapi", o) == [
        "--use_nnapi=true",
        "--nnapi_accelerator_name=qti-dsp",
        "--disable_nnapi_cpu=true",
        "--require_full_delegation=true",
    ]
    assert F.delegate_flags("cpu", o) == ["--use_xnnpack=false"]  # nothing to require on CPU


def test_timed_pass_flags():
    got = F.cell_flags("blobs/m.tflite", "xnnpack", 4, 100, None, 10, OPTS)
    assert got == [
        "--graph=blobs/m.tflite",
        "--use_xnnpack=true",
        "--num_threads=4",
        "--num_runs=100",
        "--min_secs=0",
        "--max_secs=150",
        "--warmup_runs=10",
        "--warmup_min_secs=0",
    ]
    # its sampling thread can affect timing (the flag's help, benchmark_model.cc): own pass
    assert "--report_peak_memory_footprint=true" not in got
    assert "--enable_op_profiling=true" not in got
    assert "--min_secs=2.5" in F.cell_flags("m", "cpu", 1, 5, 2.5, 0, OPTS)


def test_profile_and_eval_flags_are_separate_passes():
    prof = F.profile_flags("m.tflite", "gpu", 2, OPTS)
    assert (
        "--enable_op_profiling=true" in prof and "--report_peak_memory_footprint=true" not in prof
    )
    mem = F.memory_flags("m.tflite", "xnnpack", 2, OPTS)
    assert "--report_peak_memory_footprint=true" in mem and "--use_xnnpack=true" in mem
    feed = F.InputFeed("serving_default_image:0", (40, 8, 8, 1), "v.bin")
    ev = F.eval_flags("m", "cpu", 1, OPTS, [feed], "o.bin")
    assert "--output_filepath=o.bin" in ev
    assert "--num_runs=1" in ev and "--warmup_runs=0" in ev


def test_eval_flags_name_every_input_in_order_static_or_not():
    """benchmark_tflite_model.cc: value files need their name in --input_layer (FATAL,
    abort 134 otherwise) and --input_layer_shape as many items as --input_layer."""
    static = [F.InputFeed("serving_default_image:0", (1, 8, 8, 1), "v.bin")]
    ev = F.eval_flags("m", "cpu", 1, OPTS, static, "o.bin")
    assert "--input_layer=serving_default_image:0" in ev
    assert "--input_layer_shape=1,8,8,1" in ev
    assert "--input_layer_value_files=serving_default_image::0:v.bin" in ev
    two = [F.InputFeed("a", (1, 4), "a.bin"), F.InputFeed("b:0", (1, 2, 3), "b.bin")]
    ev = F.eval_flags("m", "cpu", 1, OPTS, two, "o.bin")
    assert "--input_layer=a,b:0" in ev
    assert "--input_layer_shape=1,4:1,2,3" in ev
    assert "--input_layer_value_files=a:a.bin,b::0:b.bin" in ev
    with pytest.raises(HarnessError, match="','"):
        F.eval_flags("m", "cpu", 1, OPTS, [F.InputFeed("a,b", (1,), "v")], "o")


def test_disable_nnapi_cpu_both_choices():
    on = F.delegate_flags("nnapi", F.BenchmarkOptions())
    off = F.delegate_flags("nnapi", F.BenchmarkOptions(disable_nnapi_cpu=False))
    assert "--disable_nnapi_cpu=true" in on and "--disable_nnapi_cpu=false" in off


def test_eval_batches_static_and_dynamic():
    x = np.zeros((5, 8, 8, 1), np.float32)
    static = TensorSpec("t", (1, 8, 8, 1), (1, 8, 8, 1), "float32", None, None)
    assert [b.shape for b in eval_batches(x, static)] == [(1, 8, 8, 1)] * 5
    dynamic = TensorSpec("t", (1, 8, 8, 1), (-1, 8, 8, 1), "float32", None, None)
    assert [b.shape for b in eval_batches(x, dynamic)] == [(5, 8, 8, 1)]
    pairs = TensorSpec("t", (2, 8, 8, 1), (2, 8, 8, 1), "float32", None, None)
    assert [b.shape for b in eval_batches(x, pairs)] == [(2, 8, 8, 1)] * 2


REAL_HELP_TAIL = (
    "INFO: STARTING!\nERROR: usage: ./benchmark_model <flags>\nFlags:\n"
    + "".join(f"\t--{f}=\tstring\toptional\tx\n" for f in F.BASE_FLAGS)
    + "ERROR: Benchmarking failed.\n"
)


def test_start_check_reads_the_usage_not_the_exit_code():
    # command_line_flags.cc/benchmark_model.cc: --help is usage on stderr and exit 1
    flags, error = start_check(REAL_HELP_TAIL, 1, "benchmark_model (x86_64)", "emu")
    assert error is None and set(F.BASE_FLAGS) <= flags
    thin = REAL_HELP_TAIL.replace("\t--input_layer_value_files=\tstring\toptional\tx\n", "")
    _, error = start_check(thin, 1, "benchmark_model (x86_64)", "emu")
    assert "lacks flags harness sends: --input_layer_value_files" in error
    _, error = start_check("sh: ./benchmark_model: Exec format error", 126, "bm", "emu")
    assert "does not start on emu" in error and "exit 126" in error


def test_start_check_refuses_litert_compiled_model():
    _, error = start_check(LITERT_USAGE, 1, "benchmark_model (arm64-v8a)", "pixel")
    assert "LiteRT's CompiledModel benchmark" in error and "--use_npu" in error


def test_unconsumed_flags_fail_the_cell_with_the_tools_line():
    text = load("21_local_tf221_unconsumed_use_nnapi.txt")
    raw = timed_result(parse_output(text), 0, "nnapi", text)
    assert raw["status"] == "failed"
    assert raw["reason"].endswith("Unconsumed cmdline flags: --use_nnapi=true")
    assert "latency_aggregate" not in raw  # CPU figures never stand for nnapi


@pytest.mark.parametrize("delegate, tool", [("gpu", "GPU"), ("nnapi", "NNAPI")])
def test_acceleration_unsupported_makes_the_cell_unsupported(delegate, tool):
    text = load("20_local_tf221_xnnpack_op_profile_peak_monitored.txt").replace(
        "INFO: STARTING!",
        f"INFO: STARTING!\nWARN: {tool} acceleration is unsupported on this platform.",
    )
    raw = timed_result(parse_output(text), 0, delegate, text)
    assert raw["status"] == "unsupported"
    assert f"{tool} acceleration is unsupported on this platform." in raw["reason"]


def test_all_same_round_is_ok_with_std_zero():
    text = (
        "INFO: Running benchmark for at least 1 iterations and at least 0 seconds\n"
        "INFO: count=1 curr=31 p5=31 median=31 p95=31\n"
        "INFO: Running benchmark for at least 3 iterations and at least 0 seconds\n"
        "INFO: count=3 curr=28(all same) p5=28 median=28 p95=28\n"
        "INFO: Inference timings in us: Init: 2154, First inference: 31, "
        "Warmup (avg): 31, Inference (avg): 28\n"
    )
    raw = timed_result(parse_output(text), 0, "cpu", text)
    assert raw.get("status", "ok") == "ok", raw  # an ok pass adds no status of its own
    agg = raw["latency_aggregate"]
    assert (agg["n"], agg["mean"], agg["std"], agg["min"], agg["max"]) == (3, 28, 0, 28, 28)
    assert "truncated" in raw["runner"]["std_note"]


def test_memory_pass_gives_the_peak_and_keeps_the_delta_apart():
    text = load("20_local_tf221_xnnpack_op_profile_peak_monitored.txt")
    got = memory_result(parse_output(text), 0, text, None)
    assert got["peak_rss_kb"] == round(15.0039 * 1024)
    assert "periodic monitoring" in got["peak_rss_scope"]
    assert got["memory_mb"]["max_rss_delta"]["overall"] == 8.98828
    old = load("01_tf42507_cpu_op_profiling_peak_memory.txt")
    got = memory_result(parse_output(old), 0, old, None)
    assert "peak_rss_kb" not in got  # a change of max RSS is never reported as the peak
    assert got["memory_mb"]["max_rss_delta"]["printed_as"] == "Peak memory footprint"
    failed = memory_result(parse_output("Segmentation fault"), 139, "Segmentation fault", {})
    assert "pass_error" in failed["memory_mb"] and "peak_rss_kb" not in failed


def test_options_round_trip_and_validation():
    o = F.BenchmarkOptions(affinity="0xF0", eval_limit=7)
    assert F.BenchmarkOptions.from_dict(o.to_dict() | {"unknown_later": 1}) == o
    assert F.parse_affinity("0xF0") == "f0"
    for bad in ("fast", "0", "0xZZ"):
        with pytest.raises(HarnessError):
            F.BenchmarkOptions(affinity=bad)
    with pytest.raises(HarnessError):
        F.BenchmarkOptions(gpu_backend="vulkan")


FREQS = {
    0: 1_800_000,
    1: 1_800_000,
    2: 1_800_000,
    3: 1_800_000,
    4: 2_400_000,
    5: 2_400_000,
    6: 2_400_000,
    7: 3_000_000,
}


@pytest.mark.parametrize(
    "mode, mask, cores",
    [
        ("big", "f0", [4, 5, 6, 7]),  # everything above the slowest cluster
        ("little", "f", [0, 1, 2, 3]),
        ("all", None, list(range(8))),
        ("0x3", "3", [0, 1]),
    ],
)
def test_core_affinity(mode, mask, cores):
    got = core_affinity(mode, FREQS)
    assert (got["mask"], got["cores"]) == (mask, cores)
    assert got["max_freq_khz"] == FREQS


def test_one_cluster_or_no_cpufreq_pins_nothing():
    assert core_affinity("big", {0: 2_000_000, 1: 2_000_000})["mask"] is None
    assert core_affinity("big", {})["mask"] is None


def test_noise_hazards():
    props = {"ro.boot.qemu": "1", "ro.build.type": "eng"}
    first = {"battery": {"level": 80, "temp_c": 30.0}}
    now = {
        "battery": {"level": 24, "temp_c": 33.5},
        "thermal_status": {"level": 2, "name": "moderate"},
        "governors": {"0": {"governor": "schedutil"}, "4": {"governor": "performance"}},
    }
    got = noise_hazards(props, first, now)
    assert len(got) == 6
    text = " | ".join(got)
    for part in (
        "emulator",
        "battery at 24%",
        "thermal status moderate",
        "rose 3.5 °C",
        "eng",
        "schedutil",
    ):
        assert part in text
    calm = {
        "battery": {"level": 90, "temp_c": 30.0},
        "thermal_status": {"level": 0, "name": "none"},
        "governors": {"0": {"governor": "performance"}},
    }
    assert noise_hazards({"ro.build.type": "user"}, first, calm) == []


def _spec(dtype, shape, scale=None, zero=None):
    return TensorSpec("t", shape, shape, dtype, scale, zero)


def test_decode_outputs_first_output_dequantised():
    out0 = _spec("int8", (1, 3), 0.5, -1)
    out1 = _spec("float32", (1, 2))
    q = np.array([[1, 3, -1], [5, -1, 0]], np.int8)
    data = q.tobytes() + np.zeros((2, 2), np.float32).tobytes()
    got = decode_outputs(data, (out0, out1), 2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[1.0, 2.0, 0.0], [3.0, 0.0, 0.5]])
    with pytest.raises(EvalError, match="bytes"):
        decode_outputs(data[:-1], (out0, out1), 2)


def test_inputs_quantised_to_the_model_type():
    x = np.array([[0.0, 0.5, 1.0, 2.0]], np.float32)
    got = to_input_dtype(x, _spec("int8", (1, 4), 1 / 127, 0))
    assert got.dtype == np.int8 and got.tolist() == [[0, 64, 127, 127]]
    assert to_input_dtype(x, _spec("float32", (1, 4))).dtype == np.float32


def test_partial_delegation_is_marked_not_fully_accelerated():
    nnapi = load("10_tf56301_nnapi_partial_logcat.txt")
    raw = timed_result(parse_output(nnapi), 0, "nnapi", nnapi)
    assert raw["fully_accelerated"] is False
    assert raw["delegation"]["status"] == "partial" and raw["delegation"]["kernels"] == 44
    assert raw["latency_aggregate"] == {
        "n": 75, "mean": 12167.6, "std": 325.0, "min": 11787.0, "max": 13649.0,
        "median": None, "p5": None, "p95": None,
    }  # fmt: skip
    gpu = load("06_tf43541_gpu_fully_delegated.txt")
    assert timed_result(parse_output(gpu), 0, "gpu", gpu)["fully_accelerated"] is True
    # a GPU cell whose output says nothing about delegation is not claimed as GPU work
    cpu_like = load("13_armnn541_rpi_no_delegates.txt")
    assert timed_result(parse_output(cpu_like), 0, "gpu", cpu_like)["fully_accelerated"] is False
    assert "fully_accelerated" not in timed_result(parse_output(cpu_like), 0, "cpu", cpu_like)


def test_timed_result_failures():
    text = load("01_tf42507_cpu_op_profiling_peak_memory.txt")
    raw = timed_result(parse_output(text), 139, "cpu", text)
    assert raw["status"] == "failed" and "exited 139" in raw["reason"]
    only_avg = load("16_deepspeech2270_old_format_run_order.txt")
    raw = timed_result(parse_output(only_avg), 0, "cpu", only_avg)
    assert raw["status"] == "failed" and "no per-run statistics" in raw["reason"]


def test_pool_rounds_is_exact_for_population_std():
    """Three rounds' aggregates pool to the figures of all their runs together."""
    rng = np.random.default_rng(5)
    rounds = [rng.lognormal(10, 0.1, n) for n in (17, 17, 16)]

    def raw(x, init):
        agg = {"n": len(x), "mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max()}
        agg |= {"median": float(np.median(x)), "p5": None, "p95": None}
        return {
            "status": "ok",
            "latency_aggregate": agg,
            "init_us": init,
            "first_us": 2 * init,
            "peak_rss_kb": init // 10,
            "env": {"before": {"r": init}},
            "runner": {},
        }

    raws = [raw(x, init) for x, init in zip(rounds, (300, 100, 200), strict=True)]
    pooled = pool_rounds(raws)
    agg, every = pooled["latency_aggregate"], np.concatenate(rounds)
    assert agg["n"] == 50
    assert agg["mean"] == pytest.approx(every.mean(), rel=1e-12)
    assert agg["std"] == pytest.approx(every.std(), rel=1e-9)
    assert (agg["min"], agg["max"]) == (every.min(), every.max())
    assert agg["median"] is None  # percentiles do not pool: kept per round
    assert [a["median"] for a in pooled["runner"]["rounds_aggregate"]] == [
        float(np.median(x)) for x in rounds
    ]
    assert (pooled["init_us"], pooled["init_us_rounds"]) == (200, [300, 100, 200])
    assert pooled["peak_rss_kb"] == 30 and pooled["rounds"] == 3
    assert pooled["env"]["before"] == {"r": 300}  # the first round's snapshot
    assert "truncated" in pooled["runner"]["std_note"]
    assert pool_rounds(raws[:1]) is raws[0]


def test_load_output_splits_per_instance_and_a_missing_piece_is_a_failure():
    out = (
        "harness-load-instance 0\nINFO: count=10 avg=5\nharness-load-exit 0 0\n"
        "harness-load-instance 1\nFATAL: boom\nharness-load-exit 1 134\n"
    )
    texts, codes = split_load_output(out, 3)
    assert texts[:2] == ["INFO: count=10 avg=5\n", "FATAL: boom\n"] and codes[:2] == [0, 134]
    assert (texts[2], codes[2]) == ("", -1)  # never reported: fails, no figure
    assert split_load_output("harness-load-instance 7\nx\n", 2) == (["", ""], [-1, -1])


def test_instances_pool_like_rounds_exactly():
    rng = np.random.default_rng(1)
    parts = [rng.normal(100 + 20 * k, 5, 50 + k) for k in range(3)]
    aggs = [
        {"n": len(p), "mean": p.mean(), "std": p.std(), "min": p.min(), "max": p.max()}
        for p in parts
    ]
    pooled, whole = pool_aggregates(aggs), np.concatenate(parts)
    assert pooled["n"] == len(whole) and pooled["median"] is None
    assert pooled["mean"] == pytest.approx(whole.mean())
    assert pooled["std"] == pytest.approx(whole.std())  # the tool's population std
    assert (pooled["min"], pooled["max"]) == (whole.min(), whole.max())


def test_decode_outputs_takes_the_output_a_metric_names():
    a = TensorSpec("a", (1, 3), (-1, 3), "float32")
    b = TensorSpec("b", (1, 2), (-1, 2), "int8", 0.5, -1)
    data = np.arange(6, dtype=np.float32).tobytes() + np.array([1, 3, 5, 7], np.int8).tobytes()
    first = decode_outputs(data, (a, b), 2)
    assert first.tolist() == [[0, 1, 2], [3, 4, 5]]
    second = decode_outputs(data, (a, b), 2, index=1)
    assert second.tolist() == [[1.0, 2.0], [3.0, 4.0]]  # (q + 1) x 0.5


def test_split_windows_reads_each_pass_and_the_sysfs_after_it():
    from harness.runners.benchmark_model.runner import WINDOW_END, WINDOW_MARK, split_windows

    out = (
        f"{WINDOW_MARK} 0 100.00\nINFO: count=5 avg=10\n{WINDOW_END} 0 101.25 0\n"
        "harness-freq 1 900\nharness-freq 0 1800\nharness-temp 45000\nharness-temp 51000\n"
        f"{WINDOW_MARK} 1 101.30\nline a\nharness-freq 7 7\n{WINDOW_END} 1 102.50 134\n"
        f"{WINDOW_MARK} 2 102.60\ncut off here\n"  # the connection dropped mid-pass
    )
    first, second = split_windows(out)
    assert (first.start, first.end, first.code) == (100.0, 101.25, 0)
    assert first.text == "INFO: count=5 avg=10\n"
    assert first.freqs == {0: 1800, 1: 900} and first.temps == [45000, 51000]
    # inside a pass, a line is the tool's output whatever it looks like
    assert second.code == 134 and second.text == "line a\nharness-freq 7 7\n"
    assert second.freqs == {} and second.temps == []


def test_window_series_takes_a_tools_aggregates_per_window():
    from harness.measure.sustained import window_series

    agg = {"n": 50, "mean": 1100.0, "std": 90, "min": 950, "max": 1500, "p5": 960,
           "median": 1020.0, "p95": 1400.0}  # fmt: skip
    raw = {"duration_s": 12, "windows": [
        {"t_s": 1.0 + k, "n": 50, "aggregate": agg | ({"median": 1500.0} if k >= 6 else {}),
         "freq_khz": [1800000], "temp_c": 40.0 + k}
        for k in range(12)
    ]}  # fmt: skip
    s = window_series(raw)
    assert [w["median_us"] for w in s["windows"][:2]] == [1020.0, 1020.0]
    assert s["windows"][0]["center"] == "median" and s["windows"][0]["p95_us"] == 1400.0
    assert s["windows"][0]["p90_us"] is None and s["windows"][0]["mean_us"] == 1100.0
    assert s["steady_ratio"] == pytest.approx(1500 / 1020)
    assert s["onset"] is not None and s["onset"]["t_s"] == 6.0
    no_median = window_series({"windows": [{"t_s": 1, "aggregate": agg | {"median": None}}]})
    assert no_median["windows"][0]["median_us"] == 1100.0
    assert no_median["windows"][0]["center"] == "mean"
    for bad in ({"n": 0, "mean": 5}, {"n": 3, "mean": float("nan")}, {"n": 3}):
        assert window_series({"windows": [{"t_s": 1, "aggregate": bad}]}) is None
