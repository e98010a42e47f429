"""The benchmark_model parser on recorded real outputs: the exact figures each shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.runners.benchmark_model.parse import (
    LITERT_COMPILED_MODEL,
    TFLITE_BENCHMARK,
    UNKNOWN_TOOL,
    RunStats,
    detect_tool_kind,
    parse_output,
    strip_prefix,
    usage_flags,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"
BUILD_INFO = Path(__file__).resolve().parents[3] / "shared" / "tools" / "BUILD_INFO.txt"


def load(name: str) -> str:
    text = (FIXTURES / name).read_text()
    # every fixture names its origin: a public thread, or the real build in ../shared/tools
    assert text.startswith(("SOURCE: https://", "SOURCE: ../shared/tools/")), name
    return text.split("\n", 1)[1]


def test_every_fixture_is_covered_below():
    names = {p.name for p in FIXTURES.glob("*.txt")}
    assert names == set(TIMINGS) | set(DELEGATION) | set(FAILED)


# name -> (init, first, warmup avg, inference avg, steady count line, warm-up count line)
TIMINGS = {
    "01_tf42507_cpu_op_profiling_peak_memory.txt": (
        855,
        49060,
        34825.1,
        33209.4,
        RunStats(50, 32891, 33978, 32641, 34005, 33209.4, 450),
        RunStats(15, 49060, 33682, 32825, 49060, 34825.1, 3930),
    ),
    "02_xnnpack999_rpi_xnnpack_memory_delta.txt": (
        18777,
        64791,
        57758.2,
        55043.2,
        RunStats(50, 58154, 53809, 53077, 60727, 55043.2, 1562),
        RunStats(9, 64791, 56295, 54873, 65831, 57758.2, 4065),
    ),
    "06_tf43541_gpu_fully_delegated.txt": (
        870557,
        130565,
        122373,
        119375,
        RunStats(50, 119212, 118055, 113737, 124776, 119375, 1948),
        RunStats(4, 130565, 120829, 117370, 130565, 122373, 4930),
    ),
    "10_tf56301_nnapi_partial_logcat.txt": (
        126059,
        32942,
        12581.9,
        12167.6,
        RunStats(75, 12840, 11853, 11787, 13649, 12167.6, 325),
        RunStats(40, 32942, 12594, 11340, 32942, 12581.9, 3331),
    ),
    "13_armnn541_rpi_no_delegates.txt": (
        1304,
        2071,
        70.3736,
        69.691,
        RunStats(14192, 93, 70, 68, 249, 69.691, 5),
        RunStats(7028, 2071, 69, 68, 2071, 70.3736, 24),
    ),
    "15_googleresearch802_android_cpu_1000runs.txt": (
        17851,
        2104,
        1041.15,
        1039.66,
        RunStats(1000, 1040, 1018, 1012, 1190, 1039.66, 22),
        RunStats(478, 2104, 1017, 1012, 2104, 1041.15, 63),
    ),
    # the real TFLite 2.21 build (../shared/tools): p5/median/p95 printed, tab-separated
    # XNNPACK op profile, whose "Timings (microseconds): count=1 curr=2093" is no run line
    "20_local_tf221_xnnpack_op_profile_peak_monitored.txt": (
        3094,
        1209,
        1059.8,
        1328.16,
        RunStats(720, 1058, 1571, 990, 1764, 1328.16, 233, 997, 1400, 1647),
        RunStats(466, 1209, 1008, 981, 1652, 1059.8, 97, 987, 1041, 1257),
    ),
    "21_local_tf221_unconsumed_use_nnapi.txt": (
        3387,
        1232,
        1217.99,
        1004.93,
        RunStats(981, 970, 967, 954, 1707, 1004.93, 72, 960, 978, 1112),
        RunStats(405, 1232, 1010, 959, 1683, 1217.99, 193, 967, 1194, 1536),
    ),
    # the last of two logcat summaries; no count lines were grepped
    "14_tf59997_logcat_exponent_form.txt": (33412, 307818, 297955, 333826, None, None),
    # the 2019 format: "no stats" is the steady-state average; it printed no first run
    "16_deepspeech2270_old_format_run_order.txt": (21528106, None, 27917.4, 23313.5, None, None),
}


@pytest.mark.parametrize("name", sorted(TIMINGS))
def test_timings(name):
    init, first, warm, inf, steady, warmup = TIMINGS[name]
    out = parse_output(load(name))
    assert out.ok, out.reason
    assert (out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us) == (
        init,
        first,
        warm,
        inf,
    )
    assert (out.steady, out.warmup) == (steady, warmup)


def test_exponent_form():
    line = load("14_tf59997_logcat_exponent_form.txt").splitlines()[0]
    out = parse_output(line)
    assert (out.warmup_avg_us, out.inference_avg_us) == (1.53025e06, 1.49712e06)
    assert (out.init_us, out.first_us) == (36618, 1530248)


def test_memory_lines():
    # benchmark_model.cc: the old "Peak memory footprint" and the current "Memory
    # footprint delta" both print a change of max RSS (memory_info.cc): never a peak.
    old = parse_output(load("01_tf42507_cpu_op_profiling_peak_memory.txt"))
    assert old.memory_mb == {
        "max_rss_delta": {"init": 0.0, "overall": 12.8672, "printed_as": "Peak memory footprint"}
    }
    assert old.peak_memory_kb is None
    delta = parse_output(load("02_xnnpack999_rpi_xnnpack_memory_delta.txt"))
    assert delta.memory_mb["max_rss_delta"]["overall"] == 18.7227
    assert delta.peak_memory_kb is None  # a delta is not a peak: nothing invented


def test_current_monitored_peak_is_the_peak():
    out = parse_output(load("20_local_tf221_xnnpack_op_profile_peak_monitored.txt"))
    assert out.memory_mb["peak_monitored"] == 15.0039
    assert out.memory_mb["max_rss_delta"] == {
        "init": 8.23828,
        "overall": 8.98828,
        "printed_as": "Memory footprint delta from the start of the tool",
    }
    assert out.peak_memory_kb == round(15.0039 * 1024)


def test_unconsumed_flags_line_is_kept():
    out = parse_output(load("21_local_tf221_unconsumed_use_nnapi.txt"))
    assert out.ok  # the tool ran (on the CPU): the runner decides what that means
    assert out.unconsumed_flags == "Unconsumed cmdline flags: --use_nnapi=true"
    clean = parse_output(load("20_local_tf221_xnnpack_op_profile_peak_monitored.txt"))
    assert clean.unconsumed_flags is None


@pytest.mark.parametrize("delegate", ["GPU", "NNAPI"])
def test_acceleration_unsupported_on_this_platform(delegate):
    text = load("21_local_tf221_unconsumed_use_nnapi.txt").replace(
        "WARN: Unconsumed cmdline flags: --use_nnapi=true",
        f"WARN: {delegate} acceleration is unsupported on this platform.",
    )
    out = parse_output(text)
    assert out.platform_unsupported == f"{delegate} acceleration is unsupported on this platform."
    assert out.unconsumed_flags is None


def test_fatal_abort_is_the_reason():
    out = parse_output(load("23_local_tf221_fatal_value_files_without_input_layer.txt"))
    assert not out.ok
    assert out.reason.startswith("FATAL: Cannot find the corresponding input_layer name(")
    assert out.fatal == out.reason


@pytest.mark.parametrize(
    "line, count, value",
    [
        # seen from the real build here (the 1-run warm-up of the digits model)
        ("INFO: count=1 curr=100 p5=100 median=100 p95=100", 1, 100.0),
        # stats_calculator.h's form for N > 1 equal values
        ("INFO: count=20 curr=28(all same) p5=28 median=28 p95=28", 20, 28.0),
        ("count=3 curr=1017(all same)", 3, 1017.0),
    ],
)
def test_all_same_statistics(line, count, value):
    text = (
        "INFO: Running benchmark for at least 1 iterations and at least 0 seconds\n"
        "INFO: count=1 curr=90\n"
        "INFO: Running benchmark for at least 20 iterations and at least 0 seconds\n"
        f"{line}\n"
    )
    out = parse_output(text)
    assert out.ok, out.reason
    s = out.steady
    assert (s.count, s.min, s.max, s.avg, s.std, s.all_same) == (
        count,
        value,
        value,
        value,
        0,
        True,
    )
    assert out.warmup.avg == 90.0 and out.warmup.all_same


def test_tab_separated_xnnpack_profile_rows():
    out = parse_output(load("20_local_tf221_xnnpack_op_profile_peak_monitored.txt"))
    top = out.op_profile["run"]["Top by Computation Time"]
    assert top[0] == {
        "node type": "Convolution (NHWC, F32) IGEMM",
        "first": 0.129,
        "avg ms": 0.178,
        "%": 14.296,
        "cdf%": 14.296,
        "mem KB": 0.0,
        "times called": 1.0,
        "Name": "Delegate/Convolution (NHWC, F32) IGEMM:0",
    }
    assert len(out.op_profile["run"]["Run Order"]) == 89
    summary = out.op_profile["run"]["Summary by node type"]
    assert [r["Node type"] for r in summary][:2] == [
        "Fully Connected (NC, F32) GEMM",
        "Convolution (NHWC, F32) DWConv",
    ]
    assert summary[0]["count"] == 20.0 and summary[0]["avg %"] == 32.312
    assert out.op_profile["init"]["Run Order"][1]["Name"] == "AllocateTensors/0"


def test_tab_separated_names_with_brackets_and_colons():
    text = (
        "============================== Run Order ==============================\n"
        "\t[node type]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]\n"
        "\t  Fully Connected (NC, F32) GEMM\t 0.5\t 0.4\t 80%\t 80%\t 0\t 1\tDelegate/XNNPACK:0\n"
        "\t  ADD\t 0.1\t 0.1\t 20%\t 100%\t 0\t 1\t[out]:12\n"
    )
    rows = parse_output(text).op_profile["run"]["Run Order"]
    assert [r["Name"] for r in rows] == ["Delegate/XNNPACK:0", "[out]:12"]
    assert rows[0]["node type"] == "Fully Connected (NC, F32) GEMM" and rows[1]["avg ms"] == 0.1


REAL_USAGE = (
    "INFO: STARTING!\n"
    "ERROR: usage: /data/local/tmp/benchmark_model <flags>\n"
    "Flags:\n"
    "\t--num_runs=50   \tint32\toptional\texpected number of runs\n"
    "\t--graph=        \tstring\toptional\tgraph file name\n"
    "\t--use_gpu=false \tbool\toptional\tuse gpu\n"
    "ERROR: Benchmarking failed.\n"
)
LITERT_USAGE = (
    "ERROR: usage: ./benchmark_model <flags>\n"
    "Flags:\n"
    "\t--num_runs=50   \tint32\toptional\texpected number of runs\n"
    "\t--graph=        \tstring\toptional\tThe path to the model file.\n"
    "\t--use_cpu=true  \tbool\toptional\tWhether to use CPU accelerator.\n"
    "\t--use_gpu=false \tbool\toptional\tWhether to use GPU accelerator.\n"
    "\t--use_npu=false \tbool\toptional\tWhether to use NPU accelerator.\n"
)


def test_detect_tool_kind():
    assert detect_tool_kind(REAL_USAGE) == TFLITE_BENCHMARK
    assert usage_flags(REAL_USAGE) == {"num_runs", "graph", "use_gpu"}
    assert detect_tool_kind(LITERT_USAGE) == LITERT_COMPILED_MODEL
    assert detect_tool_kind("========== BENCHMARK RESULTS ==========") == LITERT_COMPILED_MODEL
    assert detect_tool_kind("sh: ./benchmark_model: not found") == UNKNOWN_TOOL


def test_detect_tool_kind_on_the_real_usage():
    """The --help of the real build, as BUILD_INFO.txt recorded it (64 flags)."""
    if not BUILD_INFO.is_file():
        _missing_shared_tools()
    text = BUILD_INFO.read_text().split("out/run_help.txt (primary binary)", 1)[1]
    text = text.split("EXIT_CODE=", 1)[0]
    assert detect_tool_kind(text) == TFLITE_BENCHMARK
    flags = usage_flags(text)
    assert {"graph", "input_layer_value_files", "use_gpu", "report_peak_memory_footprint"} <= flags
    assert "use_nnapi" not in flags  # CMake builds the NNAPI provider for Android only


def _missing_shared_tools():
    import os

    if os.environ.get("HARNESS_REQUIRE_ALL") == "1":
        pytest.fail(f"HARNESS_REQUIRE_ALL=1 but {BUILD_INFO} is missing (no ../shared/tools)")
    pytest.skip(f"no {BUILD_INFO}: the real benchmark_model builds live in ../shared/tools")


def test_percentiles_when_printed():
    text = "count=50 first=10 curr=9 min=8 max=12 avg=9.5 std=1 p5=8.2 median=9.4 p95=11.5\n"
    out = parse_output(text + text)
    assert (out.steady.p5, out.steady.median, out.steady.p95) == (8.2, 9.4, 11.5)


# name -> (delegate, status, kernels, unsupported op names, delegated ops, cpu ops)
DELEGATION = {
    "06_tf43541_gpu_fully_delegated.txt": ("gpu", "full", 1, [], None, None),
    "10_tf56301_nnapi_partial_logcat.txt": ("nnapi", "partial", 44, [], None, None),
    "17_tf57907_gpu_partial_97_of_297.txt": (
        "gpu",
        "partial",
        None,
        "ARG_MAX CAST CONCATENATION DEQUANTIZE FLOOR_DIV GATHER_ND MUL PACK RESHAPE SUB UNPACK",
        97,
        200,
    ),
    "18_gotflite7_gpu_old_format_none.txt": (
        "gpu",
        "none",
        None,
        "ADD AVERAGE_POOL_2D CONV_2D DEPTHWISE_CONV_2D RESHAPE",
        0,
        65,
    ),
    "12_tf56301_nnapi_not_executed_truncated.txt": ("nnapi", "none", None, [], None, None),
    "11_tf56301_gpu_unsupported_unpack_truncated.txt": (
        "gpu",
        "partial",
        None,
        "UNPACK",
        None,
        None,
    ),
    "19_automl585_failed_to_apply_gpu.txt": (
        "gpu",
        "failed",
        None,
        "ADD ADD_N ARG_MAX CAST DIV EXP GATHER NON_MAX_SUPPRESSION_V5 PACK REDUCE_MAX "
        "STRIDED_SLICE",
        None,
        None,
    ),
}
FAILED = {  # no timing at all in these: a failed cell whose reason is the output's tail
    "11_tf56301_gpu_unsupported_unpack_truncated.txt": "294 operations will run on th",
    "12_tf56301_nnapi_not_executed_truncated.txt": "will not be executed by the delegate",
    "17_tf57907_gpu_partial_97_of_297.txt": "remaining 200 operations will run on the CPU.",
    "18_gotflite7_gpu_old_format_none.txt": "the remaining 65 on the CPU.",
    "19_automl585_failed_to_apply_gpu.txt": "Failed to apply delegate",
    "22_local_tf221_gpu_failed_to_apply.txt": "Failed to apply GPU delegate",
    "23_local_tf221_fatal_value_files_without_input_layer.txt": "Cannot find the corresponding",
}


@pytest.mark.parametrize("name", sorted(DELEGATION))
def test_delegation(name):
    delegate, status, kernels, ops, delegated, cpu = DELEGATION[name]
    d = parse_output(load(name)).delegation
    assert (d.delegate, d.status, d.kernels) == (delegate, status, kernels)
    assert [op for op, _ in d.unsupported_ops] == (ops.split() if ops else [])
    assert (d.delegated_ops, d.cpu_ops) == (delegated, cpu)


def test_delegation_details():
    d = parse_output(load("17_tf57907_gpu_partial_97_of_297.txt")).delegation
    assert dict(d.unsupported_ops)["CAST"] == "Not supported cast case"
    assert dict(d.unsupported_ops)["DEQUANTIZE"] == ""
    nn = parse_output(load("12_tf56301_nnapi_not_executed_truncated.txt")).delegation
    assert nn.accelerators == ("ipuadaptor", "nnapi-reference")
    assert parse_output(
        load("02_xnnpack999_rpi_xnnpack_memory_delta.txt")
    ).delegation.xnnpack_applied
    plain = parse_output(load("13_armnn541_rpi_no_delegates.txt")).delegation
    assert (plain.status, plain.xnnpack_applied) == ("none", False)


@pytest.mark.parametrize("name", sorted(FAILED))
def test_outputs_without_timings_fail_with_their_tail(name):
    out = parse_output(load(name))
    assert not out.ok
    assert FAILED[name] in out.reason


def test_disallowed_cpu_fallback_is_a_failure():
    text = load("10_tf56301_nnapi_partial_logcat.txt") + "\nDisallowed CPU fallback detected.\n"
    out = parse_output(text)
    assert not out.ok and "Disallowed CPU fallback detected" in out.reason
    assert out.delegation.status == "failed"


def test_op_profile_tables():
    out = parse_output(load("16_deepspeech2270_old_format_run_order.txt"))
    rows = out.op_profile["run"]["Run Order"]
    assert [r["node type"] for r in rows] == ["DELEGATE", "SPLIT", "ADD", "LOGISTIC"]
    assert rows[3] == {"node type": "LOGISTIC", "start": 21.322, "first": 0.012, "avg ms": 0.014}
    assert rows[0]["avg ms"] == 21.287 and rows[0]["%"] == 91.329
    assert (
        rows[0]["Name"] == "cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/BiasAdd"
    )
    assert rows[1]["Name"].count("split") == 4
    init = parse_output(load("01_tf42507_cpu_op_profiling_peak_memory.txt")).op_profile
    assert init["init"]["Run Order"][0]["node type"] == "AllocateTensors"


def test_summary_by_node_type_table():
    text = (
        "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
        "============================== Summary by node type ==============================\n"
        "\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t"
        "  [mem KB]\t[times called]\n"
        "\t                 CONV_2D\t       15\t     1.406\t    89.270%\t    89.270%\t"
        "     0.000\t       15\n"
        "\t       DEPTHWISE_CONV_2D\t       13\t     0.169\t    10.730%\t   100.000%\t"
        "     0.000\t       13\n"
    )
    rows = parse_output(text).op_profile["run"]["Summary by node type"]
    assert rows[0] == {
        "Node type": "CONV_2D",
        "count": 15.0,
        "avg ms": 1.406,
        "avg %": 89.27,
        "cdf %": 89.27,
        "mem KB": 0.0,
        "times called": 15.0,
    }


@pytest.mark.parametrize(
    "line, message",
    [
        ("05-30 15:16:44.858  3380  3380 I tflite  : Initialized session", "Initialized session"),
        ("I/tflite: count=1 avg=2", "count=1 avg=2"),
        ("I/tflite( 1234): Use gpu: [1]", "Use gpu: [1]"),
        (
            "INFO: Created TensorFlow Lite delegate for GPU.",
            "Created TensorFlow Lite delegate for GPU.",
        ),
        (
            "2023-04-04 17:24:18.480 19036-19036 tflite                  pid-19036"
            "                            I  Use xnnpack: [0]",
            "Use xnnpack: [0]",
        ),
    ],
)
def test_log_prefixes(line, message):
    assert strip_prefix(line) == message


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_garbage_never_raises(text):
    out = parse_output(text)
    assert out.ok in (True, False)
    if not out.ok:
        assert out.reason


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(TIMINGS) + sorted(FAILED)),
    st.floats(min_value=0, max_value=1),
    st.text(max_size=40),
)
def test_truncated_or_corrupted_fixtures_never_raise(name, frac, junk):
    text = load(name)
    cut = text[: int(len(text) * frac)] + junk
    out = parse_output(cut)
    if not out.ok:
        assert out.reason  # the tail of what was there, never an exception
    else:
        assert out.inference_avg_us is not None
