"""--together: several models served at once on the Python runner, through the real CLI
as the README shows it, with the user's mistakes around it (one line, exit 2) and the
figures' reduction on known numbers."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest
from cli_helpers import assert_run_exit, assert_user_error, harness, with_custom_op

from harness.cells import Cell
from harness.measure.summarize import summarize
from harness.measure.together import together_summary
from harness.runners.python_runner import pool_together

WINDOWS = ["--rounds", "3", "--min-secs", "0.9", "--warmup", "2"]  # 0.3 s a window


@pytest.fixture
def two_models(variants, tmp_path):
    """The digits fp32 and int8 variants as two models, `base` and `quant`."""
    src = variants.manifest_path.parent
    a, b = tmp_path / "base.tflite", tmp_path / "quant.tflite"
    shutil.copy(src / "fp32.tflite", a)
    shutil.copy(src / "int8.tflite", b)
    return a, b


def test_two_models_served_together_then_reported(two_models, tmp_path):
    """README: `harness run A B --together`. Every cell's samples are its requests under
    contention, its alone window sits beside them, and the slowdown is the median of
    the rounds' own ratios."""
    a, b = two_models
    url = f"sqlite:///{tmp_path / 'r.db'}"
    proc = harness("run", a, b, "--together", "--delegates", "xnnpack", *WINDOWS,
                   "--store", url, "--json")  # fmt: skip
    doc = assert_run_exit(proc)
    cells = {c["model"]: c for c in doc["cells"]}
    assert set(cells) == {"base", "quant"}
    for model, c in cells.items():
        assert c["status"] == "ok", c["reason"]
        t = c["extra"]["together"]
        assert t["with"] == [{"base": "quant", "quant": "base"}[model]]
        assert t["members"] == 2 and len(t["slowdown_rounds"]) == 3
        # the record's samples are the requests served together, every one of them
        assert c["latency_us"]["n"] == t["requests"] > 0 and t["alone_requests"] > 0
        assert t["median_us"] == pytest.approx(c["latency_us"]["median"])
        assert t["slowdown"] == pytest.approx(statistics.median(t["slowdown_rounds"]))
        # both windows of a round are as long as asked (0.3 s) and neither is empty
        assert 0.9 <= t["window_s"] < 3 and 0.9 <= t["alone_window_s"] < 3
        assert t["rate_rps"] == pytest.approx(t["requests"] / t["window_s"])
    # the terminal table names the partner and the slowdown; so do HTML and Markdown
    run_id = doc["run_id"]
    table = harness("report", run_id, "--store", url)
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())  # the line may fold at the terminal's width
    assert "base fp32/xnnpack/t1 with quant: p50" in text
    assert "quant fp32/xnnpack/t1 with base: p50" in text
    assert "together (" in text and "x, median of 3 rounds)" in text
    html = tmp_path / "r.html"
    assert harness("report", run_id, "--store", url, "--html", html).returncode == 0
    assert "served together" in html.read_text()
    md = harness("report", run_id, "--store", url, "--markdown")
    assert "| p50 alone | p50 together | slowdown |" in md.stdout
    # paired compare works on them: round r of each from the same shared window
    cmp = harness("compare", run_id, "--a", "base", "--b", "quant", "--store", url, "--json")
    assert cmp.returncode in (0, 1) and json.loads(cmp.stdout)["paired"] is True


def test_a_partner_that_cannot_run_leaves_the_other_unsupported_not_timed_alone(variants, tmp_path):
    """A together cell whose partner cannot open is an unsupported row naming why, never
    a figure measured alone under the together name."""
    good = tmp_path / "good.tflite"
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", good)
    bad = tmp_path / "custom.tflite"
    bad.write_bytes(with_custom_op(good.read_bytes(), "NoSuchOpAnywhere"))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    proc = harness("run", good, bad, "--together", "--delegates", "cpu", *WINDOWS,
                   "--store", url, "--json")  # fmt: skip
    cells = {c["model"]: c for c in assert_run_exit(proc)["cells"]}
    assert cells["custom"]["status"] == "unsupported"
    assert "NoSuchOpAnywhere" in cells["custom"]["reason"]
    assert cells["good"]["status"] == "unsupported"
    reason = cells["good"]["reason"]
    assert reason.startswith("--together: another model of its group failed beside it")
    assert "NoSuchOpAnywhere" in reason
    assert proc.returncode == 4  # nothing was measured


def test_a_setting_only_one_model_has_is_an_unsupported_row(variants, tmp_path):
    """Model A is a convert output (four variants), model B one .tflite (fp32 only):
    A's fp32 is served beside B's, A's other variants have no partner and say so."""
    single = tmp_path / "single.tflite"
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", single)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    proc = harness("run", variants.manifest_path.parent, single, "--together",
                   "--delegates", "xnnpack", *WINDOWS, "--store", url, "--json")  # fmt: skip
    cells = assert_run_exit(proc)["cells"]
    ok = sorted((c["model"], c["variant"]) for c in cells if c["status"] == "ok")
    assert ok == [("digits", "fp32"), ("single", "fp32")]
    lone = [c for c in cells if c["status"] != "ok"]
    assert sorted(c["variant"] for c in lone) == ["dynamic", "fp16", "int8"]
    for c in lone:
        assert c["status"] == "unsupported"
        assert c["reason"] == (
            f"--together: no other model of this run has {c['variant']}/xnnpack/t1 "
            "to serve beside it"
        )


@pytest.mark.parametrize(
    "extra, words",
    [
        ((), ("--together", "two or more")),
        (("--concurrency", "2"), ("--together with --concurrency",)),
        (("--sustained", "10s"), ("--together with --sustained",)),
        (("--precision", "2%"), ("--together with --precision",)),
    ],
)
def test_together_mistakes_are_one_line(extra, words, two_models, store_url):
    models = two_models[:1] if not extra else two_models
    proc = harness("run", *models, "--together", *extra, "--store", store_url)
    assert_user_error(proc, *words)


def test_android_groups_and_script_quote_every_word(tmp_path):
    """The Android runner runs a together group as one unit and starts its processes
    with every word quoted: a hostile file name reaches the tool as a name."""
    import subprocess

    from harness.runners.benchmark_model.runner import (
        split_load_output,
        together_groups,
        together_script,
    )
    from harness.runners.python_runner import JobCell

    def cell(i, group=None, together=False):
        return JobCell(f"c{i}", "m.tflite", "0" * 64, "cpu", 1, group=group, together=together)

    plan = [cell(0, "g", True), cell(1), cell(2, "g", True), cell(3, "h")]
    assert [[c.id for c in g] for g in together_groups(plan)] == [["c0", "c2"], ["c1"], ["c3"]]
    hostile = "a b'c\"$(touch pwned);`id`.tflite"
    script = together_script([["echo", hostile], ["sh", "-c", "echo two; exit 3"]], "t$x")
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    texts, codes = split_load_output(done.stdout, 2)
    assert texts == [hostile + "\n", "two\n"] and codes == [0, 3]
    assert list(tmp_path.iterdir()) == []  # nothing ran from the name; outputs removed


def _round(alone: list[float], window: float = 1.0) -> dict:
    return {
        "members": 2,
        "requests": 10,
        "window_s": window,
        "alone_requests": len(alone),
        "alone_window_s": window,
        "alone_stride": 1,
        "alone_us": alone,
    }


def test_the_slowdown_is_the_median_of_the_rounds_own_ratios():
    # round 1 ran while the host was slow: both its medians doubled, its ratio did not
    rounds = [_round([100.0, 100.0, 100.0]), _round([200.0, 200.0]), _round([100.0] * 3)]
    shared = [[150.0] * 10, [300.0] * 10, [200.0] * 10]
    pooled = pool_together(rounds, shared)
    t = together_summary(pooled, [x for xs in shared for x in xs])
    assert t["slowdown_rounds"] == [1.5, 1.5, 2.0]
    assert t["slowdown"] == 1.5
    assert t["slowdown_pooled"] == pytest.approx(200.0 / 100.0)  # mixes the slow round
    assert t["requests"] == 30 and t["window_s"] == 3.0 and t["rate_rps"] == 10.0
    assert t["alone_requests"] == 8 and t["alone_rate_rps"] == pytest.approx(8 / 3)


@pytest.mark.parametrize(
    "bad",
    [
        {"requests": "10"},
        {"window_s": 0},
        {"alone_us": [1.0, float("nan")]},
        {"round_medians": [[1.0]]},
        {"round_medians": [[0.0, 1.0]]},
    ],
)
def test_malformed_together_windows_fail_the_cell(bad):
    pooled = pool_together([_round([100.0, 120.0])], [[150.0] * 10]) | bad
    raw = {"status": "ok", "invoke_us": [150.0] * 10, "e2e_us": [], "together": pooled}
    cell = Cell("local", "m", "fp32", "cpu", 1)
    record = summarize(cell, "0" * 64, 1, raw, None, None)
    assert record.status == "failed" and "malformed --together" in record.reason


def test_compare_says_when_one_side_was_served_together():
    from dataclasses import replace

    from harness.measure.compare import CompareConfig, compare_cell

    cell = Cell("local", "m", "fp32", "cpu", 1)
    raw = {"status": "ok", "invoke_us": [100.0] * 30, "e2e_us": [], "round_sizes": [10] * 3}
    alone = summarize(cell, "0" * 64, 1, raw, None, None)
    beside = replace(alone, extra=alone.extra | {"together": {"with": ["twin"]}})
    note = compare_cell(alone, beside, CompareConfig()).note
    assert "measured differently: baseline alone, candidate together with twin" in note
    assert "measured differently" not in (compare_cell(alone, alone, CompareConfig()).note or "")
