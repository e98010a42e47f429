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
    assert index["arm64-v8a"]["sha256"] == sha and index["arm64-v8a"]["size"] == len(PAYLOAD)


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
