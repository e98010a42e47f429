"""`harness run` on an ADB device: the project's daemon on loopback, reached with adb-shell.

The daemon requires RSA auth here (the default); the host key is a fresh pair in tmp.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest
from cli_helpers import cell_shapes, harness

from harness.adbd.keys import generate_adb_keypair
from harness.adbd.server import AdbDaemon, DaemonConfig
from harness.devices.adb_direct import DirectTransport
from harness.devices.remote import WORKDIR, AdbDevice
from harness.errors import DeviceError
from harness.run import RunSpec, run_sweep
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store


@pytest.fixture
def board(tmp_path, host_key):
    """A Linux board: the daemon with auth, its Python being this test's interpreter."""
    root = tmp_path / "board"
    config = DaemonConfig(
        root=root,
        authorized_keys=host_key,
        props={"ro.harness.python": sys.executable},
    )
    daemon = AdbDaemon(config)
    port = daemon.start()
    yield {"port": port, "root": root, "serial": f"127.0.0.1:{port}"}
    daemon.stop()


def _open(board) -> AdbDevice:
    transport = DirectTransport("127.0.0.1", board["port"])
    transport.connect()
    return AdbDevice(transport)


@pytest.mark.slow
def test_run_over_adb_gives_the_same_kind_of_table_as_local(board, variants, digits, store_url):
    args = [
        "run",
        str(variants.manifest_path.parent),
        "--threads",
        "1",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--eval",
        str(digits / "eval.npz"),
        "--store",
        store_url,
        "--json",
    ]
    remote = harness(*args, "--device", board["serial"])
    assert remote.returncode == 0, remote.stderr
    local = harness(*args, "--device", "local")
    assert local.returncode == 0, local.stderr

    r_doc, l_doc = json.loads(remote.stdout), json.loads(local.stdout)
    assert cell_shapes(r_doc) == cell_shapes(l_doc)
    assert {c["device"] for c in r_doc["cells"]} == {board["serial"]}
    fp32 = next(c for c in r_doc["cells"] if (c["variant"], c["delegate"]) == ("fp32", "cpu"))
    assert fp32["accuracy"] >= 0.9
    assert fp32["drift"]["top1_agreement"] == 1.0
    # The models really went to the device's sandbox, content-addressed.
    blobs = board["root"] / WORKDIR.lstrip("/") / "blobs"
    shas = {v.info.sha256 for v in variants.variants}
    assert shas <= {p.name.removesuffix(".tflite") for p in blobs.glob("*.tflite")}


def test_second_run_pushes_nothing(board, variants, store_url):
    device = _open(board)
    pushes: list[str] = []
    real_push = device.transport.push

    def counting_push(local, remote, timeout):
        pushes.append(remote)
        real_push(local, remote, timeout)

    device.transport.push = counting_push
    spec = RunSpec(
        model=variants.manifest_path.parent,
        device=board["serial"],
        variants=("fp32", "int8"),
        delegates=("xnnpack",),
        timing=TimingConfig(runs=3, warmup=0),
    )
    store = Store(store_url)
    run_sweep(spec, store, device)
    first = [p for p in pushes if "/blobs/" in p]
    assert len(first) == 3  # the runner and two models
    pushes.clear()
    run_sweep(spec, store, device)
    assert [p for p in pushes if "/blobs/" in p] == []  # only the job file moves
    device.close()


def test_shell_exit_code_and_stderr_apart(board):
    device = _open(board)
    result = device.shell(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
    device.close()


def test_hostile_model_name_arrives_as_a_name(board, variants, tmp_path, store_url):
    evil = (
        tmp_path / "evil dir $(touch pwned1)" / "my model; touch pwned2 `touch pwned3` 'q\".tflite"
    )
    evil.parent.mkdir()
    shutil.copy(variants.manifest_path.parent / "fp32.tflite", evil)
    proc = harness(
        "run",
        str(evil),
        "--device",
        board["serial"],
        "--delegates",
        "cpu",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--store",
        store_url,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    (cell,) = json.loads(proc.stdout)["cells"]
    assert cell["status"] == "ok"
    for where in (board["root"], Path.cwd(), tmp_path, evil.parent):
        assert not list(Path(where).rglob("pwned*"))


def test_wrong_key_is_refused_with_one_line(board, tmp_path, variants, store_url):
    stranger = generate_adb_keypair(tmp_path / "stranger" / "adbkey")
    env = dict(os.environ, HARNESS_ADB_KEY=str(stranger.private_key))
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        board["serial"],
        "--store",
        store_url,
        env=env,
    )
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unauthorized" in lines[0] or "no answer" in lines[0]
    assert "Traceback" not in proc.stderr


def test_refused_port_is_one_line(variants, store_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    proc = harness(
        "run",
        str(variants.manifest_path.parent),
        "--device",
        f"127.0.0.1:{port}",
        "--store",
        store_url,
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "refused" in proc.stderr


class DroppingProxy:
    """Forwards TCP to the daemon; cuts each of the first `drops` connections after
    `after` bytes from the client, mid-push."""

    def __init__(self, target_port: int, after: int, drops: int):
        self.target, self.after, self.drops = target_port, after, drops
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = self.after if self.drops > 0 else None
            self.drops -= 1
            threading.Thread(target=self._pipe, args=(client, upstream, limit), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


def _blob(board, sha: str) -> Path:
    return board["root"] / WORKDIR.lstrip("/") / "blobs" / f"{sha}.tflite"


def test_connection_lost_mid_push_is_retried_on_a_fresh_connection(board, variants):
    v = variants.variants[0]
    model = variants.manifest_path.parent / v.file
    proxy = DroppingProxy(board["port"], after=v.info.size_bytes // 2, drops=1)
    transport = DirectTransport("127.0.0.1", proxy.port)
    device = AdbDevice(transport)
    try:
        device.stage(model, v.info.sha256, ".tflite")
    finally:
        device.close()
        proxy.close()
    assert _blob(board, v.info.sha256).read_bytes() == model.read_bytes()


def test_connection_lost_for_good_leaves_no_file_under_the_final_name(board, variants):
    v = variants.variants[0]
    model = variants.manifest_path.parent / v.file
    proxy = DroppingProxy(board["port"], after=v.info.size_bytes // 2, drops=100)
    device = AdbDevice(DirectTransport("127.0.0.1", proxy.port))
    try:
        with pytest.raises(DeviceError):
            device.stage(model, v.info.sha256, ".tflite")
    finally:
        device.close()
        proxy.close()
    assert not _blob(board, v.info.sha256).exists()


def test_device_interface_push_stat_pull(board, tmp_path):
    device = _open(board)
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(300_000))
    device.push(src, "/data/local/tmp/x y;.bin")
    st = device.stat("/data/local/tmp/x y;.bin")
    assert st.exists and st.size == 300_000
    device.pull("/data/local/tmp/x y;.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
    assert not device.stat("/data/local/tmp/missing").exists
    device.close()
