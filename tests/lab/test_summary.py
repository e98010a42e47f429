"""The night's outputs parsed back: Markdown, JSON, JUnit XML; and the exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from harness.cells import Cell
from harness.lab.capabilities import Capabilities
from harness.lab.night import Baseline, CellResult, NightResult
from harness.lab.summary import write_outputs
from harness.lab.worker import DeviceOutcome, ModelOutcome


def _cell(device, variant, delegate="cpu"):
    return Cell(device, "digits", variant, delegate, 1)


def _night(devices, cells) -> NightResult:
    return NightResult(
        "nightly",
        "2026-05-02",
        "lab:nightly:2026-05-02",
        "postgresql+psycopg2://lab:s3cret@db/h",
        Baseline("previous", "2026-05-01", ("r0",)),
        tuple(devices),
        tuple(cells),
    )


CAPS = Capabilities("linux", ("cpu", "xnnpack"))


def _mixed() -> NightResult:
    a, b = "127.0.0.1:5601", "127.0.0.1:5602"
    cells = [
        CellResult(
            _cell(a, "fp32"),
            "ok",
            median_us=900.0,
            ci_low_us=880.0,
            ci_high_us=920.0,
            verdict="same",
            change=0.004,
        ),
        CellResult(
            _cell(a, "int8"), "ok", median_us=1300.0, verdict="slower", change=0.31, note="p < 0.01"
        ),
        CellResult(_cell(a, "fp16"), "failed", "runner process died (exit -11)"),
        CellResult(_cell(a, "fp32", "nnapi"), "filtered", "nnapi is an Android delegate"),
        CellResult(_cell(b, "fp32"), "lost", "device lost mid-sweep: refused"),
        CellResult(_cell(b, "int8"), "unsupported", "custom op"),
        CellResult(
            _cell(a, "dynamic"),
            "ok",
            median_us=1000.0,
            verdict="inconclusive",
            change=0.07,
            note="between-round CV 6.0% over 3 rounds; about 14 rounds per run would resolve ±5%",
        ),
    ]
    models = (ModelOutcome("digits", "r1", ()),)
    devices = [DeviceOutcome(a, a, models, CAPS), DeviceOutcome(b, b, models, CAPS, "lost")]
    return _night(devices, cells)


def test_junit_has_one_case_per_cell_with_failures_and_skips(tmp_path):
    write_outputs(_mixed(), tmp_path)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 7
    by_name = {(c.get("classname"), c.get("name")): c for c in cases}
    slow = by_name[("lab.nightly.127.0.0.1:5601.digits", "int8/cpu/t1")]
    assert slow.find("failure").get("type") == "regression"
    assert "slower" in slow.find("failure").get("message")
    crashed = by_name[("lab.nightly.127.0.0.1:5601.digits", "fp16/cpu/t1")]
    assert "exit -11" in crashed.find("failure").get("message")
    lost = by_name[("lab.nightly.127.0.0.1:5602.digits", "fp32/cpu/t1")]
    assert lost.find("failure").get("type") == "lost"
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(skipped) == 3
    unsure = by_name[("lab.nightly.127.0.0.1:5601.digits", "dynamic/cpu/t1")]
    message = unsure.find("skipped").get("message")
    assert message.startswith("inconclusive:") and "14 rounds per run would resolve" in message
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    s1 = suites["nightly.127.0.0.1:5601"]
    assert (s1.get("tests"), s1.get("failures"), s1.get("skipped")) == ("5", "2", "2")


def test_json_and_markdown(tmp_path):
    write_outputs(_mixed(), tmp_path)
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["exit_code"] == 1 and doc["regressions"] == 1
    assert doc["counts"] == {"passed": 1, "failure": 3, "skipped": 3, "inconclusive": 1}
    assert doc["store"] == "postgresql+psycopg2://lab:***@db/h"  # no password in summaries
    assert [c["outcome"] for c in doc["cells"]].count("skipped") == 3
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# Lab `nightly` — night 2026-05-02")
    assert "## Regressions" in md and "| +31.0% | slower |" in md
    assert "## Failed cells" in md and "runner process died" in md
    assert "## Not measured on purpose" in md and "nnapi is an Android delegate" in md
    assert "1 inconclusive, 2 not measured" in md
    assert "## Inconclusive" in md and "| +7.0% | between-round CV 6.0%" in md
    assert "s3cret" not in md


def test_exit_codes():
    ok = CellResult(_cell("d", "fp32"), "ok", median_us=1.0, verdict="same")
    dev = DeviceOutcome("d", "d", (), CAPS)
    assert _night([dev], [ok]).exit_code == 0
    faster = CellResult(_cell("d", "int8"), "ok", median_us=1.0, verdict="faster")
    assert _night([dev], [ok, faster]).exit_code == 0
    acc = CellResult(_cell("d", "int8"), "ok", verdict="accuracy down")
    assert _night([dev], [ok, acc]).exit_code == 1
    gone = DeviceOutcome("e", "e", (), None, "device unreachable: refused")
    lost = CellResult(_cell("e", "fp32"), "lost", "refused")
    assert _night([dev, gone], [ok, lost]).exit_code == 1
    assert _night([gone], [lost]).exit_code == 2  # every device unreachable
