"""`harness run` end to end: the --json contract, accuracy and drift, the table, user errors."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from cli_helpers import assert_run_exit, assert_user_error, harness, with_custom_op

from harness.measure.pareto import pareto_front
from harness.report.document import run_document
from harness.store.store import Store

LATENCY_KEYS = {"init", "first", "median", "p90", "p99", "mean", "std", "ci_low", "ci_high", "n"}
CELL_KEYS = {
    "device",
    "variant",
    "delegate",
    "threads",
    "status",
    "reason",
    "latency_us",
    "end_to_end_us",
    "peak_rss_mb",
    "accuracy",
    "drift",
    "model_sha256",
    "size_bytes",
}
QUICK = ["--runs", "20", "--warmup", "2"]


@pytest.fixture(scope="module")
def json_run(variants, digits, tmp_path_factory):
    """One real run of all four variants on four delegates, with eval data, as JSON."""
    url = f"sqlite:///{tmp_path_factory.mktemp('json-run') / 'results.db'}"
    proc = harness(
        "run",
        variants.manifest_path.parent,
        "--delegates",
        "cpu,xnnpack,gpu,nnapi",
        *QUICK,
        "--eval",
        digits / "eval.npz",
        "--store",
        url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return doc, url


def _cell(doc: dict, variant: str, delegate: str, threads: int = 1) -> dict:
    (c,) = [
        c
        for c in doc["cells"]
        if (c["variant"], c["delegate"], c["threads"]) == (variant, delegate, threads)
    ]
    return c


# ----------------------------------------------------------------------------- JSON contract


def test_json_document_has_every_contract_field(json_run, variants):
    doc, _ = json_run
    assert doc["schema"] == 1
    assert isinstance(doc["run_id"], str) and doc["run_id"]
    assert doc["status"] == "complete"
    assert len(doc["cells"]) == 4 * 4
    info = {v.name: v.info for v in variants.variants}
    for c in doc["cells"]:
        assert set(c) >= CELL_KEYS, CELL_KEYS - set(c)
        assert set(c["latency_us"]) >= LATENCY_KEYS
        assert "median" in c["end_to_end_us"]
        assert set(c["drift"]) >= {"max_abs", "mean_abs", "top1_agreement"}
        assert c["device"] == "local" and c["threads"] == 1
        assert c["status"] in ("ok", "unsupported", "failed")
        assert c["model_sha256"] == info[c["variant"]].sha256
        assert c["size_bytes"] == info[c["variant"]].size_bytes


def test_ok_cells_have_consistent_latency(json_run):
    doc, _ = json_run
    ok = [c for c in doc["cells"] if c["status"] == "ok"]
    assert {(c["variant"], c["delegate"]) for c in ok} == {
        (v, d) for v in ("fp32", "fp16", "dynamic", "int8") for d in ("cpu", "xnnpack")
    }
    for c in ok:
        lat = c["latency_us"]
        assert c["reason"] is None
        assert lat["n"] == 20
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["ci_low"] <= lat["median"] <= lat["ci_high"]
        assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
        assert lat["init"] > 0 and lat["first"] > 0
        # every end-to-end sample wraps its invoke, so the medians keep that order
        assert c["end_to_end_us"]["median"] >= lat["median"]
        assert c["peak_rss_mb"] > 0


def test_unsupported_cells_carry_a_reason_and_no_numbers(json_run):
    doc, _ = json_run
    bad = [c for c in doc["cells"] if c["delegate"] in ("gpu", "nnapi")]
    assert len(bad) == 8
    for c in bad:
        assert c["status"] == "unsupported"
        assert c["reason"] and "\n" not in c["reason"]
        for key in ("median", "p90", "p99", "mean", "n", "ci_low", "ci_high"):
            assert c["latency_us"][key] is None
        assert c["end_to_end_us"]["median"] is None
        assert c["accuracy"] is None
        assert set(c["drift"].values()) == {None}
    assert "NNAPI" in _cell(doc, "fp32", "nnapi")["reason"]


def test_accuracy_and_drift_from_the_device(json_run):
    doc, _ = json_run
    ref = _cell(doc, "fp32", "cpu")
    assert ref["accuracy"] >= 0.9
    assert ref["drift"] == {"max_abs": 0.0, "mean_abs": 0.0, "top1_agreement": 1.0}
    int8 = _cell(doc, "int8", "cpu")
    assert int8["drift"]["max_abs"] > 0 and int8["drift"]["mean_abs"] > 0
    assert int8["accuracy"] >= 0.9
    for c in doc["cells"]:
        if c["status"] == "ok":
            d = c["drift"]
            assert 0.0 <= d["top1_agreement"] <= 1.0
            assert 0.0 <= d["mean_abs"] <= d["max_abs"]
            assert 0.0 <= c["accuracy"] <= 1.0
    # the XNNPACK fp32 kernels compute the same function as the reference
    assert _cell(doc, "fp32", "xnnpack")["drift"]["max_abs"] < 1e-3


def test_pareto_flags_match_the_front(json_run):
    doc, _ = json_run
    ok = [c for c in doc["cells"] if c["status"] == "ok"]
    front = pareto_front([(c["latency_us"]["median"], c["accuracy"]) for c in ok])
    assert [c["pareto"] for c in ok] == front and any(front)
    assert not any(c["pareto"] for c in doc["cells"] if c["status"] != "ok")


def test_json_document_is_what_the_store_holds(json_run):
    doc, url = json_run
    store = Store(url)
    records = store.cells(doc["run_id"])
    assert json.loads(json.dumps(run_document(doc["run_id"], records, "complete"))) == doc
    ok = [r for r in records if r.status == "ok"]
    rounds = store.get_run(doc["run_id"]).config["timing"].get("rounds", 1)
    for r in ok:  # every raw sample kept: the timed runs, and the warm-up of every round
        assert len(r.samples["invoke_us"]) == len(r.samples["e2e_us"]) == 20
        assert len(r.samples["warmup_us"]) == 2 * rounds
    assert all(r.env.get("runtime") == "ai-edge-litert" for r in records)


# ----------------------------------------------------------------------------- other models


def test_int8_io_model_runs_with_accuracy_and_no_made_up_drift(int8_io, digits, store_url):
    proc = harness(
        "run",
        int8_io.manifest_path.parent,
        "--delegates",
        "cpu,xnnpack",
        *QUICK,
        "--eval",
        digits / "eval.npz",
        "--store",
        store_url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    assert [c["status"] for c in cells] == ["ok", "ok"]
    for c in cells:
        assert c["accuracy"] >= 0.9
        assert set(c["drift"].values()) == {None}  # no fp32 variant here: no reference


def test_a_custom_op_model_is_an_unsupported_row(variants, tmp_path, store_url):
    model = tmp_path / "custom.tflite"
    model.write_bytes(with_custom_op((variants.manifest_path.parent / "fp32.tflite").read_bytes()))
    proc = harness("run", model, *QUICK, "--store", store_url, "--json")
    doc = assert_run_exit(proc)
    assert [(c["variant"], c["delegate"], c["status"]) for c in doc["cells"]] == [
        ("fp32", "cpu", "unsupported"),
        ("fp32", "xnnpack", "unsupported"),
    ]
    assert all("HarnessTestOp" in c["reason"] for c in doc["cells"])


# ----------------------------------------------------------------------------- table


def test_table_has_the_pareto_star_and_fits_80_columns(variants, digits, store_url):
    env = dict(os.environ, COLUMNS="80")
    proc = harness(
        "run",
        variants.manifest_path.parent,
        "--delegates",
        "cpu,xnnpack,gpu,nnapi",
        *QUICK,
        "--eval",
        digits / "eval.npz",
        "--store",
        store_url,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    *lines, stored = proc.stdout.splitlines()
    assert stored.startswith(f"stored in {store_url} as run ")  # a path: as long as it is
    assert max(len(ln) for ln in lines) <= 80, "\n".join(ln for ln in lines if len(ln) > 80)
    assert "\x1b[" not in proc.stdout  # no colour codes when not a terminal
    run_id = re.search(r"as run (\S+)", proc.stdout).group(1)
    doc = run_document(run_id, Store(store_url).cells(run_id))
    starred = set()
    for ln in lines:
        m = re.match(r"^\s*(fp32|fp16|dynamic|int8)(\*?)\s+(\S+)\s+(\d+)\s", ln)
        if m and m.group(2):
            starred.add((m.group(1), m.group(3), int(m.group(4))))
    front = {(c["variant"], c["delegate"], c["threads"]) for c in doc["cells"] if c["pareto"]}
    assert starred and starred == front
    assert "Pareto" in proc.stdout
    assert "unsupported" in proc.stdout and "NNAPI" in proc.stdout


# ----------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    "args, words",
    [
        (["--threads", "0"], ["threads", "'0'"]),
        (["--threads", "-2"], ["threads"]),
        (["--threads", "a"], ["threads", "'a'"]),
        (["--threads", "1,x"], ["threads"]),
        (["--delegates", "cpu,tpu"], ["tpu"]),
        (["--delegates", ""], ["delegate"]),
        (["--variants", "fp8"], ["fp8", "fp32"]),
        (["--resume", "19990101-000000-abcdef"], ["19990101-000000-abcdef"]),
    ],
)
def test_bad_run_options_are_one_line(variants, store_url, args, words):
    proc = harness("run", variants.manifest_path.parent, *QUICK, "--store", store_url, *args)
    assert_user_error(proc, *words)
    assert Store(store_url).list_runs() == []


def test_unknown_device_is_one_line(variants, store_url):
    # exit 2 when the adb server lists devices and this is none of them; exit 3 (device
    # error) when there is no adb server to ask
    proc = harness("run", variants.manifest_path.parent, "--store", store_url, "--device", "nope")
    assert_user_error(proc, "'nope'", codes=(2, 3))
    assert Store(store_url).list_runs() == []


def test_bad_model_paths_are_one_line(variants, tmp_path, store_url):
    (tmp_path / "random.tflite").write_bytes(np.random.default_rng(0).bytes(2048))
    (tmp_path / "empty").mkdir()
    for model, word in [
        (tmp_path / "missing", "not found"),
        (tmp_path / "random.tflite", "TFLite"),
        (tmp_path / "empty", "manifest.json"),
    ]:
        assert_user_error(harness("run", model, "--store", store_url), word)
    assert_user_error(harness("run", "--store", store_url), "MODEL")
    assert Store(store_url).list_runs() == []


@pytest.fixture(scope="module")
def bad_evals(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad-eval")
    rng = np.random.default_rng(0)
    files = {
        "wrong shape": dict(x=rng.random((5, 4, 4, 1), dtype=np.float32)),
        "strings": dict(x=np.full((5, 8, 8, 1), "a")),
        "no x": dict(images=rng.random((5, 8, 8, 1), dtype=np.float32)),
        "empty": dict(x=np.zeros((0, 8, 8, 1), np.float32)),
        "float labels": dict(x=rng.random((5, 8, 8, 1), dtype=np.float32), y=np.zeros(5)),
        "too few labels": dict(
            x=rng.random((5, 8, 8, 1), dtype=np.float32), y=np.zeros(4, np.int64)
        ),
    }
    paths = {}
    for name, arrays in files.items():
        paths[name] = root / f"{name.replace(' ', '_')}.npz"
        np.savez(paths[name], **arrays)
    paths["not an npz"] = root / "random.npz"
    paths["not an npz"].write_bytes(rng.bytes(1024))
    paths["missing"] = root / "missing.npz"
    return paths


@pytest.mark.parametrize(
    "case, words",
    [
        ("wrong shape", ["(4, 4, 1)", "(8, 8, 1)"]),
        ("strings", ["numeric"]),
        ("no x", ["'x'"]),
        ("empty", ["non-empty"]),
        ("float labels", ["label"]),
        ("too few labels", ["label"]),
        ("not an npz", ["random.npz"]),
        ("missing", ["not found"]),
    ],
)
def test_bad_eval_file_is_one_line_and_stores_nothing(variants, bad_evals, store_url, case, words):
    model = variants.manifest_path.parent
    proc = harness("run", model, *QUICK, "--eval", bad_evals[case], "--store", store_url)
    assert_user_error(proc, *words)
    assert Store(store_url).list_runs() == []


@pytest.mark.parametrize("args", [["--runs", "0"], ["--warmup", "-1"], ["--no-such-option"]])
def test_click_level_errors_exit_2_without_a_traceback(variants, store_url, args):
    proc = harness("run", variants.manifest_path.parent, "--store", store_url, *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert Store(store_url).list_runs() == []
