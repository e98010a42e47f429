"""Aggregate-only statistics through summarize/report/compare; static delegate support."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from harness.cells import Cell, CellRecord, LatencyStats
from harness.convert.delegate_support import compatibility_report
from harness.convert.tflite_info import OpSpec, TensorSpec, TfliteInfo
from harness.measure.compare import CompareConfig, compare_cell
from harness.measure.stats import aggregate_stats, latency_stats
from harness.measure.summarize import summarize
from harness.report.console import render_run
from harness.report.document import run_document

CELL = Cell("emulator-5554", "digits", "fp32", "nnapi", 1)
AGG = {"n": 75, "mean": 12167.6, "std": 325.0, "min": 11787.0, "max": 13649.0}


def _raw(**kw):
    return {"status": "ok", "latency_aggregate": AGG, "env": {}} | kw


def test_aggregate_only_stats_invent_nothing():
    s = aggregate_stats(**AGG)
    assert s.aggregate_only and (s.n, s.mean, s.std, s.min, s.max) == (
        75,
        12167.6,
        325.0,
        11787.0,
        13649.0,
    )
    assert (s.median, s.p90, s.p99, s.ci_low, s.ci_high, s.outliers) == (None,) * 6
    assert (s.center, s.center_name) == (12167.6, "mean")
    with_median = aggregate_stats(**AGG, median=12100.0, p5=11800.0, p95=12900.0)
    assert (with_median.center, with_median.p5, with_median.p95) == (12100.0, 11800.0, 12900.0)
    assert with_median.p90 is None
    assert LatencyStats.from_dict(with_median.to_dict()) == with_median
    old = latency_stats([1.0, 2.0, 3.0]).to_dict()
    for k in ("aggregate_only", "p5", "p95"):
        old.pop(k)  # a record stored before these fields existed
    assert LatencyStats.from_dict(old).aggregate_only is False


def test_summarize_aggregate_cell_with_limited_eval():
    outputs = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    labels = np.array([0, 1, 2, 9, 4, 5])  # the runner evaluated the first 4 samples
    reference = np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 4, 5]]
    r = summarize(CELL, "sha", 100, _raw(eval={"n": 4, "outputs": outputs}), labels, reference)
    assert r.status == "ok" and r.latency.aggregate_only and r.samples["invoke_us"] == []
    assert r.accuracy == 0.75
    assert r.drift["top1_agreement"] == 1.0
    bad = summarize(CELL, "sha", 100, _raw(latency_aggregate={"n": 3}), None, None)
    assert bad.status == "failed"


def test_reports_and_compare_take_aggregate_only_cells():
    agg = summarize(CELL, "sha", 100, _raw(fully_accelerated=False), None, None)
    sampled = CellRecord(
        CELL.__class__(**(CELL.to_dict() | {"delegate": "cpu"})),
        "ok",
        latency=latency_stats([10000.0, 11000.0, 12000.0]),
        samples={"invoke_us": [10000.0, 11000.0, 12000.0]},
    )
    doc = run_document("r1", [agg, sampled])
    lat = doc["cells"][0]["latency_us"]
    assert lat["aggregate_only"] is True and lat["median"] is None and lat["mean"] == 12167.6
    json.dumps(doc)
    buf = io.StringIO()
    render_run("r1", [agg, sampled], out=Console(file=buf, width=120, highlight=False))
    text = buf.getvalue()
    assert "12,168ᵃ" in text and "nnapi†" in text
    slower = summarize(
        CELL, "sha", 100, _raw(latency_aggregate=AGG | {"mean": 14000.0}), None, None
    )
    verdict = compare_cell(agg, slower, CompareConfig())
    # one round per side: the mean moved 15 %, but one round is no evidence of the next
    assert verdict.verdict == "inconclusive" and verdict.latency.statistic == "mean"
    assert verdict.latency.change == pytest.approx(14000 / 12167.6 - 1)
    assert "no between-round evidence" in verdict.note


def _info(ops, dtype="float32"):
    t = TensorSpec("x", (1, 4), (-1, 4), dtype)
    return TfliteInfo("sha", 1, (t,), (t,), tuple(OpSpec(n, 1, c, k) for n, c, k in ops))


def test_static_delegate_report():
    report = compatibility_report(
        _info([("CONV_2D", False, 2), ("UNPACK", False, 1), ("PACK", False, 1), ("MyOp", True, 1)])
    )
    gpu = {o["op"] for o in report["gpu"]["unsupported_ops"]}
    assert gpu == {"UNPACK", "MyOp"}  # UNPACK: as the real GPU delegate said in fixture 11
    assert report["gpu"]["all_ops_supported"] is False
    nn = {o["op"]: o["min_api_level"] for o in report["nnapi"]["ops"]}
    assert nn == {"CONV_2D": 27, "PACK": 30}
    assert [o["op"] for o in report["nnapi"]["unsupported_ops"]] == ["UNPACK", "MyOp"]
    assert report["nnapi"]["min_api_level"] is None  # something cannot run at any level
    ok = compatibility_report(_info([("FULLY_CONNECTED", False, 2), ("SOFTMAX", False, 1)]))
    assert ok["gpu"]["all_ops_supported"] and ok["nnapi"]["min_api_level"] == 27
    int8 = compatibility_report(_info([("QUANTIZE", False, 1)], dtype="int8"))
    assert any("quantized" in n for n in int8["gpu"]["notes"])


def test_manifest_carries_the_report(variants):
    doc = json.loads(variants.manifest_path.read_text())
    for v in doc["variants"]:
        report = v["delegate_compatibility"]
        assert set(report) == {"gpu", "nnapi"}
        ops = {o["name"] for o in v["ops"]}
        listed = {o["op"] for o in report["nnapi"]["ops"]} | {
            o["op"] for o in report["nnapi"]["unsupported_ops"]
        }
        assert listed == ops


def test_html_and_markdown_reports_take_aggregate_only_cells():
    from harness.report.html import run_html
    from harness.report.markdown import run_markdown

    agg = summarize(CELL, "sha", 100, _raw(fully_accelerated=False, init_us=1000.0), None, None)
    sampled = summarize(
        Cell("emulator-5554", "digits", "int8", "cpu", 1),
        "sha",
        100,
        {"status": "ok", "invoke_us": [9000.0, 9500.0, 9900.0], "env": {}},
        None,
        None,
    )
    page = run_html("r1", [agg, sampled])
    assert "aggregate-only" in page and "None" not in page
    assert "| fp32 | nnapi" in run_markdown("r1", [agg, sampled])
