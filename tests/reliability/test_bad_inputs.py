"""Bad inputs the other suites do not already try: each is one clear line, or a row.

Counted by category in the reliability tally (the `bad_input` marker). Cases already
covered elsewhere (tests/test_convert.py, tests/test_cli.py, tests/lab/test_config.py,
tests/devices/test_run_over_adb.py) are counted from there, not repeated here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as schema
from cli_helpers import assert_run_exit, assert_user_error, harness, harness_argv, with_custom_op

from harness.store.store import Store

QUICK = ["--runs", "2", "--warmup", "0", "--rounds", "1"]
HOSTILE_DIR = b"dir \xff\n$(touch pwned1)"
HOSTILE_FILE = b"m\xfe\nodel `touch pwned2`; 'q\" $(touch pwned3).tflite"


def _fp32(variants) -> bytes:
    return (variants.manifest_path.parent / "fp32.tflite").read_bytes()


def _rewrite(data: bytes, change) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    change(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _no_runs(url: str) -> None:
    assert Store(url).list_runs() == []


def _no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not list(Path(root).rglob("pwned*")), root


# ----------------------------------------------------------------------------- files


@pytest.mark.bad_input("files")
@pytest.mark.parametrize(
    "case, words",
    [
        ("empty", ["not a TFLite model"]),
        ("truncated", ["cut.tflite"]),
        ("flatbuffer, not a model", ["not a TFLite model"]),
        ("model with no subgraph", ["subgraph"]),
    ],
)
def test_a_model_file_that_is_not_a_model_is_one_line(case, words, variants, tmp_path, store_url):
    data = _fp32(variants)
    builder = flatbuffers.Builder(0)
    builder.StartObject(0)
    builder.Finish(builder.EndObject())
    contents = {
        "empty": b"",
        "truncated": data[: len(data) // 3],
        "flatbuffer, not a model": bytes(builder.Output()),
        "model with no subgraph": _rewrite(data, lambda m: setattr(m, "subgraphs", [])),
    }
    path = tmp_path / ("cut.tflite" if case == "truncated" else "model.tflite")
    path.write_bytes(contents[case])
    proc = harness("run", path, *QUICK, "--store", store_url)
    assert_user_error(proc, *words)
    _no_runs(store_url)


@pytest.mark.bad_input("files")
def test_a_model_needing_newer_op_versions_is_an_unsupported_row(variants, tmp_path, store_url):
    def bump(model) -> None:
        for code in model.operatorCodes:
            code.version = 99

    path = tmp_path / "future.tflite"
    path.write_bytes(_rewrite(_fp32(variants), bump))
    proc = harness("run", path, *QUICK, "--store", store_url, "--json")
    cells = assert_run_exit(proc)["cells"]
    assert [c["status"] for c in cells] == ["unsupported", "unsupported"]
    for c in cells:
        assert "version" in c["reason"] and "\n" not in c["reason"], c["reason"]


@pytest.mark.bad_input("files")
def test_a_custom_op_model_is_an_unsupported_row_on_an_adb_board(
    board, variants, tmp_path, store_url
):
    b = board()
    path = tmp_path / "custom.tflite"
    path.write_bytes(with_custom_op(_fp32(variants), "NoSuchOpAnywhere"))
    args = ["run", path, "--device", b.serial, "--delegates", "cpu", *QUICK]
    proc = harness(*args, "--store", store_url, "--json")
    (cell,) = assert_run_exit(proc)["cells"]
    assert cell["status"] == "unsupported" and "NoSuchOpAnywhere" in cell["reason"]


# ----------------------------------------------------------------------------- CLI and config

LAB_FILES = {
    "syntax error": ("models = [\n", ["TOML syntax error"]),
    "wrong type": ('threads = "four"\n[[models]]\nsource = "{model}"\n', ["threads"]),
    "unknown key": ('colour = "red"\n[[models]]\nsource = "{model}"\n', ["colour", "unknown"]),
    "missing model": ('[[models]]\nsource = "missing.keras"\n', ["models[0].source"]),
}


@pytest.mark.bad_input("cli and config")
@pytest.mark.parametrize("case", list(LAB_FILES))
def test_a_bad_lab_file_is_one_line(case, variants, tmp_path, store_url):
    body, words = LAB_FILES[case]
    lab = tmp_path / "lab.toml"
    lab.write_text(body.format(model=variants.manifest_path.parent))
    assert_user_error(harness("lab", "run", lab, "--store", store_url), *words)
    _no_runs(store_url)


@pytest.mark.bad_input("cli and config")
@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", ["cannot open store", "refused"]),
        ("sqlite:////proc/no/such/dir/results.db", ["cannot create store directory"]),
        ("nosuchdb://x", ["bad store URL"]),
    ],
)
def test_a_store_that_cannot_be_reached_is_one_line(url, words, variants):
    line = assert_user_error(harness("run", variants.manifest_path.parent, *QUICK, "--store", url))
    for word in words:
        assert word in line
    assert "secret" not in line  # the password is not echoed


@pytest.mark.bad_input("cli and config")
def test_an_output_path_that_is_not_writable_is_one_line(variants, tmp_path, store_url):
    model = variants.manifest_path.parent
    ran = harness(
        "run", model, "--variants", "fp32", "--delegates", "cpu", *QUICK, "--store", store_url
    )
    assert ran.returncode == 0, ran.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = harness("report", "latest", "--store", store_url, "--html", blocker / "report.html")
    assert_user_error(proc, "cannot write")
    assert len(Store(store_url).list_runs()) == 1  # the store is as it was


@pytest.mark.bad_input("cli and config")
@pytest.mark.parametrize(
    "spec, word", [("explode:push", "unknown fault"), ("drop:push:after=x", "not a number")]
)
def test_a_bad_fault_spec_is_one_line(spec, word):
    proc = harness("serve-device", "--no-auth", "--port", "0", "--inject-fault", spec)
    assert_user_error(proc, word)


@pytest.mark.bad_input("cli and config")
@pytest.mark.parametrize(
    "name, value",
    [("HARNESS_ADB_TIMEOUT", "ten"), ("HARNESS_STREAM_IDLE_TIMEOUT", "-5")],
)
def test_a_bad_timeout_variable_is_one_line(name, value, start_daemon, variants, store_url):
    daemon = start_daemon()
    env = dict(os.environ, **{name: value})
    proc = harness(
        "run", variants.manifest_path.parent, "--device", daemon.serial, *QUICK,
        "--store", store_url, env=env,
    )  # fmt: skip
    assert_user_error(proc, f"${name} must be a positive number of seconds")
    store = Store(store_url)
    assert not any(store.cells(r.run_id) for r in store.list_runs())  # nothing half-stored


# ----------------------------------------------------------------------------- hostile names


def _hostile_copy(variants, tmp_path) -> Path:
    directory = os.path.join(os.fsencode(tmp_path), HOSTILE_DIR)
    os.mkdir(directory)
    path = os.path.join(directory, HOSTILE_FILE)
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", path)
    return Path(os.fsdecode(path))


@pytest.mark.bad_input("hostile names")
@pytest.mark.parametrize("where", ["local", "adb board"])
def test_non_utf8_and_newlines_in_names_arrive_as_names(
    where, board, variants, tmp_path, store_url, monkeypatch
):
    model = _hostile_copy(variants, tmp_path)
    device = "local" if where == "local" else board().serial
    monkeypatch.chdir(tmp_path)
    args = ["run", model, "--device", device, "--delegates", "cpu", *QUICK, "--json"]
    proc = harness(*args, "--store", store_url)
    assert proc.returncode == 0, proc.stderr
    (cell,) = json.loads(proc.stdout)["cells"]
    assert cell["status"] == "ok", cell["reason"]
    assert cell["model"] == "m\\xfe\nodel `touch pwned2`; 'q\" $(touch pwned3)"
    _no_pwned(tmp_path)
    # the exact path survives in the run config: --resume finds the same file
    (run,) = Store(store_url).list_runs()
    assert os.fsencode(run.config["model"]) == os.fsencode(model)


@pytest.mark.bad_input("hostile names")
def test_a_hostile_convert_output_directory_is_a_name(variants, digits, tmp_path):
    out = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out \xff;$(touch pwned4)\n`x`")))
    source = digits / "digits.keras"
    argv = harness_argv("convert", source, "-o", out, "--variants", "fp32")
    proc = subprocess.run(argv, capture_output=True, timeout=300)  # bytes: the name is not UTF-8
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert (out / "manifest.json").is_file() and (out / "fp32.tflite").is_file()
    _no_pwned(tmp_path, Path.cwd())
