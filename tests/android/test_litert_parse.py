"""LiteRT's CompiledModel benchmark: parser, flags and verdicts on recorded real outputs
(tests/fixtures/litert_benchmark/, each with its SOURCE) and on the formats its source
defines (litert/tools/benchmark_litert_model.{h,cc})."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runners.litert_benchmark import flags as LF
from harness.runners.litert_benchmark.parse import delegation, parse_output
from harness.runners.litert_benchmark.runner import start_check, timed_result

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "litert_benchmark"


def fixture(name: str) -> str:
    text = (FIXTURES / name).read_text()
    assert text.startswith("SOURCE: https://")
    return text.split("\n", 1)[1]


def test_real_results_block_mlcommons1134():
    p = parse_output(fixture("01_mlcommons1134_gpu_full_delegation_results.txt"))
    assert p.results["avg_ms"] == 7430.20 and p.runs == 10
    assert (p.results["min_ms"], p.results["max_ms"], p.results["std_ms"]) == (
        7416.40,
        7448.86,
        9.92,  # printed without "ms"
    )
    assert p.results["init_ms"] == 23744.73 and p.results["warmup_first_ms"] == 7441.04
    assert p.warmup_runs == 1 and p.signature == "prefill_1024"
    assert p.results["overall_footprint_mb"] == 6391.74
    assert "peak_mb" not in p.results  # "Peak memory usage not available."


def test_results_in_microseconds_with_no_percentiles_invented():
    text = fixture("01_mlcommons1134_gpu_full_delegation_results.txt")
    raw = timed_result(parse_output(text), 0, "gpu", text)
    agg = raw["latency_aggregate"]
    assert agg["n"] == 10 and agg["mean"] == pytest.approx(7430200.0)
    assert agg["std"] == pytest.approx(9920.0) and agg["min"] == pytest.approx(7416400.0)
    assert agg["median"] is None and agg["p5"] is None
    assert raw["init_us"] == pytest.approx(23744730.0)
    assert raw["runner"]["resolution_us"] == 10.0
    assert raw["peak_rss_kb"] is None and raw["memory_mb"]["init_footprint_mb"] == 6391.74
    # the poster's log before the block was elided: no delegation line, so unknown
    assert raw["delegation"]["status"] == "unknown" and raw["fully_accelerated"] is None


def test_a_log_line_outside_the_block_is_not_a_figure():
    text = "INFO: Inference (avg): 1.00 ms (3 runs)\nERROR: Benchmarking failed.\n"
    p = parse_output(text)
    assert not p.has_results and p.failure == "ERROR: Benchmarking failed."
    raw = timed_result(p, 1, "gpu", text)
    assert raw["status"] == "failed" and "Benchmarking failed." in raw["reason"]


def test_npu_that_did_not_load_is_unsupported_not_cpu_figures():
    # The real warning (LiteRT-LM#1377), then a results block as the benchmark prints it.
    text = fixture("03_litertlm1377_npu_gpu_not_loaded.txt") + (
        "\n========== BENCHMARK RESULTS ==========\n"
        "Inference (avg):      1.00 ms (5 runs)\nInference (min):      0.90 ms\n"
        "Inference (max):      1.10 ms\nInference (std):      0.05\n"
    )
    p = parse_output(text)
    assert p.not_loaded == (
        "NPU accelerator could not be loaded and registered: kLiteRtStatusErrorInvalidArgument.",
    )  # the truncated GPU line of the same log is not taken
    raw = timed_result(p, 0, "npu", text)
    assert raw["status"] == "unsupported" and "NPU accelerator could not be loaded" in raw["reason"]
    assert timed_result(p, 0, "gpu", text)["status"] == "ok"  # not the GPU's failure


def test_all_nodes_on_xnnpack_is_no_node_on_the_npu():
    text = fixture("04_litert7858_npu_model_on_xnnpack_quote.txt")
    d = delegation(parse_output(text), "npu")
    assert d["status"] == "none" and d["nodes"] == 0 and d["total"] == 476
    text += (
        "\n========== BENCHMARK RESULTS ==========\nInference (avg): 9.00 ms (5 runs)\n"
        "Inference (min): 8.00 ms\nInference (max): 10.00 ms\nInference (std): 0.50\n"
    )
    raw = timed_result(parse_output(text), 0, "npu", text)
    assert raw["status"] == "unsupported"
    assert "470 of 476 on TfLiteXNNPackDelegate" in raw["reason"]


@pytest.mark.parametrize(
    "lines, status",
    [
        (["Replacing 20 out of 20 node(s) with delegate (DispatchDelegate) node"], "full"),
        (
            [
                "Replacing 15 out of 20 node(s) with delegate (DispatchDelegate) node",
                "Replacing 5 out of 6 node(s) with delegate (TfLiteXNNPackDelegate) node",
            ],
            "partial",
        ),
    ],
)
def test_npu_coverage(lines, status):
    text = "\n".join(lines) + (
        "\n========== BENCHMARK RESULTS ==========\nInference (avg): 1.00 ms (5 runs)\n"
        "Inference (min): 0.90 ms\nInference (max): 1.10 ms\nInference (std): 0.05\n"
    )
    raw = timed_result(parse_output(text), 0, "npu", text)
    assert raw["status"] == "ok" and raw["delegation"]["status"] == status
    assert raw["fully_accelerated"] is (status == "full")


def test_unconsumed_flags_fail_the_cell():
    text = "WARN: Unconsumed cmdline flags: --use_npu=true\n" + fixture(
        "01_mlcommons1134_gpu_full_delegation_results.txt"
    )
    raw = timed_result(parse_output(text), 0, "npu", text)
    assert raw["status"] == "failed" and "--use_npu=true" in raw["reason"]


def test_real_npu_start_lines_are_read_without_results():
    p = parse_output(fixture("02_litert6059_npu_start.txt"))
    assert not p.has_results and p.not_loaded == ()


# -- flags -----------------------------------------------------------------------------


def test_flags_of_each_delegate():
    gpu = LF.cell_flags("blobs/m.tflite", "gpu", 4, 20, None, 2)
    assert gpu == [
        "--graph=blobs/m.tflite",
        "--use_cpu=true",
        "--use_gpu=true",
        "--num_threads=4",
        "--num_runs=20",
        "--min_secs=0",
        "--max_secs=150",
        "--warmup_runs=2",
        "--warmup_min_secs=0",
    ]
    f32 = LF.delegate_flags("gpu-f32", gpu_backend="gl")
    assert f32 == [
        "--use_cpu=true",
        "--use_gpu=true",
        "--gpu-precision=fp32",
        "--gpu_backend=opengl",
    ]
    assert LF.delegate_flags("npu") is None  # no vendor libraries on the device
    npu = LF.delegate_flags("npu", npu_dir="litert-npu/ab", require_full_delegation=True)
    # --use_cpu=true with --require_full_delegation=true aborts the real tool
    assert npu == [
        "--use_cpu=false",
        "--require_full_delegation=true",
        "--use_npu=true",
        "--dispatch_library_path=litert-npu/ab",
        "--compiler_plugin_library_path=litert-npu/ab",
    ]
    assert LF.delegate_flags("cpu") is None and LF.delegate_flags("nnapi") is None


# -- the start check -------------------------------------------------------------------

TFLITE_USAGE = "usage: ./benchmark_model <flags>\nFlags:\n\t--graph=\tstring\toptional\t\n" + (
    "\t--num_runs=50\tint32\toptional\t\n\t--use_xnnpack=false\tbool\toptional\t\n"
)


def test_start_check_tells_the_two_tools_apart():
    standin = Path(__file__).with_name("standin_litert_benchmark.py")
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, str(standin), "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0
    assert start_check(res.stdout + res.stderr, res.returncode, "x") is None
    said = start_check(TFLITE_USAGE + "Benchmarking failed.", 1, "x")
    assert said and "TFLite's benchmark_model" in said and "--tool litert" in said
    said = start_check("sh: ./bm: cannot execute binary file: Exec format error", 126, "x")
    assert said and "does not start" in said and "exit 126" in said
    short = "\n".join(
        f"\t--{n}=\tbool\toptional\t" for n in ("graph", "use_cpu", "use_npu", "num_runs")
    )
    said = start_check(short, 0, "x")
    assert said and "--use_gpu" in said and "--num_threads" in said
