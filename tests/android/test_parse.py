"""The benchmark_model parser on recorded real outputs: the exact figures each shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.runners.benchmark_model.parse import RunStats, parse_output, strip_prefix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"


def load(name: str) -> str:
    text = (FIXTURES / name).read_text()
    assert text.startswith("SOURCE: https://"), name  # every fixture names its origin
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
    peak = parse_output(load("01_tf42507_cpu_op_profiling_peak_memory.txt"))
    assert peak.memory_mb == {"peak": {"init": 0.0, "overall": 12.8672}}
    assert peak.peak_memory_kb == round(12.8672 * 1024)
    delta = parse_output(load("02_xnnpack999_rpi_xnnpack_memory_delta.txt"))
    assert delta.memory_mb == {"delta": {"init": 8.97656, "overall": 18.7227}}
    assert delta.peak_memory_kb is None  # a delta is not a peak: nothing invented


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
