"""`harness tools fetch|add|list` against a local HTTP server (nothing leaves the host)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading

import pytest
from cli_helpers import harness as run_harness

from harness.errors import HarnessError
from harness.runners.benchmark_model import tools

PAYLOAD = b"\x7fELF" + bytes(range(256)) * 64  # looks like a binary; content is irrelevant


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = PAYLOAD
        length = len(body)
        if self.path.endswith("/truncated"):
            body = body[: len(body) // 2]  # announce all, send half, hang up
        if self.path.endswith("/missing"):
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tools"


def _snapshot(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_fetch_records_sha256_and_size(server, cache):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    b = tools.fetch("arm64-v8a", f"{server}/ok", sha256=sha)
    assert (b.sha256, b.size, b.source) == (sha, len(PAYLOAD), f"{server}/ok")
    assert b.path.read_bytes() == PAYLOAD and os.access(b.path, os.X_OK)
    assert tools.binary_for_abi("arm64-v8a") == b
    index = json.loads((cache / "index.json").read_text())
    entry = index["tflite/arm64-v8a"]
    assert entry["sha256"] == sha and entry["size"] == len(PAYLOAD) and entry["tool"] == "tflite"


@pytest.mark.parametrize(
    "path, sha, message",
    [
        ("/truncated", None, "truncated download"),
        ("/ok", "0" * 64, "checksum mismatch"),
        ("/missing", None, "HTTP 404"),
    ],
)
def test_bad_downloads_leave_the_cache_untouched(server, cache, path, sha, message):
    good = tools.fetch("arm64-v8a", f"{server}/ok")
    before = _snapshot(cache)
    with pytest.raises(HarnessError, match=message):
        tools.fetch("arm64-v8a", f"{server}{path}", sha256=sha)
    assert _snapshot(cache) == before
    assert tools.binary_for_abi("arm64-v8a") == good


def test_unreachable_url_suggests_tools_add(cache):
    with pytest.raises(HarnessError, match="tools add"):
        tools.fetch("x86_64", "http://127.0.0.1:9/none", timeout=2)
    assert not (cache / "index.json").exists()


def test_default_url_is_the_documented_nightly():
    assert tools.official_url("arm64-v8a").endswith(
        "/lite/tools/nightly/latest/android_aarch64_benchmark_model"
    )
    assert tools.official_url("armeabi-v7a").endswith("android_arm_benchmark_model")


def test_add_copies_and_hashes(tmp_path):
    src = tmp_path / "my_benchmark_model"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    b = tools.add(src, "x86_64")
    assert b.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    src.write_bytes(b"changed later")  # the cache keeps its own copy
    assert tools.binary_for_abi("x86_64").path.read_bytes() == b"#!/bin/sh\necho hi\n"


def test_missing_or_tampered_binary_names_both_commands(tmp_path):
    with pytest.raises(HarnessError) as exc:
        tools.binary_for_abi("arm64-v8a")
    assert "harness tools fetch --abi arm64-v8a" in str(exc.value)
    assert "harness tools add PATH --abi arm64-v8a" in str(exc.value)
    src = tmp_path / "bm"
    src.write_bytes(b"original")
    tools.add(src, "arm64-v8a").path.write_bytes(b"tampered")
    with pytest.raises(HarnessError, match="missing or changed"):
        tools.binary_for_abi("arm64-v8a")


def test_cli_add_and_list(tmp_path, server):
    src = tmp_path / "bm"
    src.write_bytes(b"binary")

    def harness(*args):
        return run_harness("tools", *args)

    assert harness("add", str(src), "--abi", "armeabi-v7a").returncode == 0
    fetched = harness("fetch", "--abi", "arm64-v8a", "--url", f"{server}/truncated")
    assert fetched.returncode != 0 and "truncated download" in fetched.stderr
    listed = json.loads(harness("list", "--json").stdout)
    assert [b["abi"] for b in listed] == ["armeabi-v7a"]
    assert listed[0]["sha256"] == hashlib.sha256(b"binary").hexdigest()


# -- issue 12, points 7 and 8: ABIs, tool kinds --------------------------------------


def test_no_official_x86_64_benchmark_model():
    # TF's measurement.md lists android_aarch64 and android_arm only; the linux_x86-64
    # build is not an Android binary, so x86_64 has no official download.
    with pytest.raises(HarnessError, match="no official Android x86_64 benchmark_model") as exc:
        tools.official_url("x86_64")
    assert "harness tools add PATH --abi x86_64" in str(exc.value)
    assert "linux_x86-64_benchmark_model" not in str(exc.value)


def test_cli_fetch_x86_64_without_url_is_one_line(cache):
    res = run_harness("tools", "fetch", "--abi", "x86_64")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "harness tools add PATH --abi x86_64" in res.stderr
    assert not (cache / "index.json").exists()


def test_litert_official_url_is_the_bucket_under_the_litert_version():
    import importlib.metadata

    version = importlib.metadata.version("ai-edge-litert")
    assert tools.official_url("arm64-v8a", "litert") == (
        f"https://storage.googleapis.com/litert/binaries/{version}/android_arm64/benchmark_model"
    )
    with pytest.raises(HarnessError, match="no official"):
        tools.official_url("armeabi-v7a", "litert")  # litert-cli downloads arm64 only


def test_kinds_are_kept_apart(tmp_path, server, cache):
    src = tmp_path / "bm"
    src.write_bytes(b"tflite binary")
    tflite = tools.add(src, "arm64-v8a")
    litert = tools.fetch("arm64-v8a", f"{server}/ok", tool="litert")
    assert tflite.path != litert.path
    assert tools.binary_for_abi("arm64-v8a").path.read_bytes() == b"tflite binary"
    assert tools.binary_for_abi("arm64-v8a", "litert").path.read_bytes() == PAYLOAD
    index = json.loads((cache / "index.json").read_text())
    assert {k: v["tool"] for k, v in index.items()} == {
        "tflite/arm64-v8a": "tflite",
        "litert/arm64-v8a": "litert",
    }
    with pytest.raises(HarnessError) as exc:
        tools.binary_for_abi("x86_64", "litert")
    assert "harness tools add PATH --tool litert --abi x86_64" in str(exc.value)


def test_a_litert_download_that_fails_leaves_the_tflite_entry(tmp_path, server, cache):
    src = tmp_path / "bm"
    src.write_bytes(b"tflite binary")
    tools.add(src, "arm64-v8a")
    before = _snapshot(cache)
    with pytest.raises(HarnessError, match="checksum mismatch"):
        tools.fetch("arm64-v8a", f"{server}/ok", sha256="0" * 64, tool="litert")
    assert _snapshot(cache) == before


def test_an_index_from_before_kinds_is_read_as_tflite(tmp_path, cache):
    src = tmp_path / "bm"
    src.write_bytes(b"old")
    b = tools.add(src, "arm64-v8a")
    legacy = b.to_dict()
    del legacy["tool"]
    (cache / "index.json").write_text(json.dumps({"arm64-v8a": legacy}))
    assert tools.binary_for_abi("arm64-v8a").tool == "tflite"
    with pytest.raises(HarnessError, match="no LiteRT"):
        tools.binary_for_abi("arm64-v8a", "litert")


def test_npu_libraries_keep_their_names(tmp_path):
    libs = []
    for name in ("libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so"):
        (tmp_path / name).write_bytes(name.encode())
        libs.append(tools.add(tmp_path / name, "arm64-v8a", tool="litert-npu"))
    found = tools.npu_libraries("arm64-v8a")
    assert sorted(b.path.name for b in found) == ["libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so"]
    assert tools.npu_libraries("armeabi-v7a") == []
    libs[1].path.write_bytes(b"tampered")
    with pytest.raises(HarnessError, match="libQnnHtp.so .* missing or changed"):
        tools.npu_libraries("arm64-v8a")
    with pytest.raises(HarnessError, match="vendor's SDK"):
        tools.fetch("arm64-v8a", "http://127.0.0.1:9/x", tool="litert-npu")


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "{src}", "--abi", "arm64-v8a", "--tool", "tensorrt"], "tensorrt"),
        (["add", "{src}", "--abi", "mips"], "mips"),
        (["add", "{missing}", "--abi", "arm64-v8a", "--tool", "litert"], "no such file"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    src = tmp_path / "bm"
    src.write_bytes(b"x")
    argv = [a.format(src=src, missing=tmp_path / "nope") for a in args]
    res = run_harness("tools", *argv)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert message in res.stderr


def test_tool_kind_is_checked_in_the_library_too(tmp_path):
    src = tmp_path / "bm"
    src.write_bytes(b"x")
    with pytest.raises(HarnessError, match="unknown tool kind 'tensorrt'"):
        tools.add(src, "arm64-v8a", tool="tensorrt")


X86_EMULATOR = {"ro.product.cpu.abi": "x86_64", "ro.product.cpu.abilist": "x86_64,arm64-v8a"}


def test_x86_64_emulator_with_native_bridge_takes_the_arm64_binary(tmp_path):
    src = tmp_path / "bm"
    src.write_bytes(b"arm64")
    tools.add(src, "arm64-v8a")
    choice = tools.choose_for_device(X86_EMULATOR)
    assert choice.binary.abi == "arm64-v8a"
    assert choice.env() == {"abi": "arm64-v8a", "device_abi": "x86_64", "native_bridge": True}
    tools.add(src, "x86_64")  # a registered android_x86_64 build wins
    assert tools.choose_for_device(X86_EMULATOR).env()["native_bridge"] is False


def test_x86_64_device_without_a_binary_is_told_to_add_one():
    with pytest.raises(HarnessError) as exc:
        tools.choose_for_device(X86_EMULATOR)
    text = str(exc.value)
    assert "\n" not in text
    assert "harness tools add PATH --abi x86_64" in text and "android_x86_64" in text
    assert "native bridge" in text  # the abilist has arm64-v8a: say so
    with pytest.raises(HarnessError) as exc:
        tools.choose_for_device({"ro.product.cpu.abi": "x86_64"}, tool="litert")
    assert "harness tools add PATH --tool litert --abi x86_64" in str(exc.value)
    assert "native bridge" not in str(exc.value)


def test_cli_list_shows_kinds(tmp_path):
    src = tmp_path / "bm"
    src.write_bytes(b"binary")
    assert (
        run_harness("tools", "add", str(src), "--abi", "arm64-v8a", "--tool", "litert").returncode
        == 0
    )
    listed = json.loads(run_harness("tools", "list", "--json").stdout)
    assert [(b["tool"], b["abi"]) for b in listed] == [("litert", "arm64-v8a")]
    plain = run_harness("tools", "list").stdout
    assert plain.startswith("litert ")
