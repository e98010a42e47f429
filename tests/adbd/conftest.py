"""Fixtures for the ADB daemon tests: real daemons on 127.0.0.1, an isolated adb server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.adbd import AdbDaemon, DaemonConfig
from harness.adbd.packets import A_CNXN, A_VERSION_MIN, Packet, PacketReader, encode_packet

# adb servers probe these ports for emulators; tests must never use them (ADB_SPEC.md §4).
EMULATOR_PORTS = range(5554, 5586)


def free_port() -> int:
    """A currently free loopback TCP port outside the emulator range."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in EMULATOR_PORTS and port - 1 not in EMULATOR_PORTS:
            return port


def require_tool(name: str) -> str:
    """Path of ``name``; skip the test if missing, fail instead under HARNESS_REQUIRE_ALL=1."""
    path = shutil.which(name)
    if path is None:
        reason = f"`{name}` is not installed (apt-get install -y {name})"
        if os.environ.get("HARNESS_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; HARNESS_REQUIRE_ALL=1 requires it")
        pytest.skip(reason)
    return path


DaemonFactory = Callable[..., AdbDaemon]


@pytest.fixture
def device_root(tmp_path: Path) -> Path:
    """The sandbox directory that is '/' on the test device."""
    root = tmp_path / "device-root"
    root.mkdir()
    return root


@pytest.fixture
def start_daemon(device_root: Path) -> Iterator[DaemonFactory]:
    """Factory: ``start_daemon(maxdata=4096, authorized_keys=...)`` → a started daemon."""
    daemons: list[AdbDaemon] = []

    def start(**overrides: object) -> AdbDaemon:
        config = replace(DaemonConfig(host="127.0.0.1", port=0, root=device_root), **overrides)
        daemon = AdbDaemon(config)
        daemon.start()
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> AdbDaemon:
    """A no-auth daemon with default settings."""
    return start_daemon()


@dataclass
class AdbServer:
    """A private adb server: own port and HOME, no emulator probing."""

    port: int
    home: Path
    env: dict[str, str]

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``adb ARGS`` against this server; stdin is empty unless ``input`` is given."""
        return subprocess.run(
            ["adb", *args],
            env=self.env,
            input=input if input is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, input: bytes | None = None) -> str:
        """Run adb and return stdout as text; fail the test on a non-zero exit."""
        result = self.run(*args, input=input)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout.decode()

    @property
    def public_key(self) -> Path:
        """The server's own key, created at start-up in its private HOME."""
        return self.home / ".android" / "adbkey.pub"

    def wait_for_state(self, serial: str, state: str, attempts: int = 100) -> str:
        """Poll ``adb devices`` until ``serial`` shows ``state``; return the listing."""
        listing = ""
        for _ in range(attempts):
            listing = self.ok("devices")
            if f"{serial}\t{state}" in listing:
                return listing
            time.sleep(0.1)
        raise AssertionError(f"{serial} never became {state!r}:\n{listing}")


@pytest.fixture
def adb_server(tmp_path: Path) -> Iterator[AdbServer]:
    """An isolated, started adb server; killed in teardown."""
    require_tool("adb")
    home = tmp_path / "adb-home"
    home.mkdir()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "ANDROID_ADB_SERVER_PORT": str(port),
        "ADB_EMU": "0",
        "LANG": "C.UTF-8",
    }
    server = AdbServer(port=port, home=home, env=env)
    server.ok("start-server")
    try:
        yield server
    finally:
        server.run("kill-server", timeout=30)


class RawClient:
    """A hand-driven host side, for packets no real client would send."""

    def __init__(self, port: int, handshake: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = PacketReader(self.sock)
        if handshake:
            self.send(A_CNXN, A_VERSION_MIN, 1 << 20, b"host::\0")
            reply = self.reader.read_packet(1 << 20)
            assert reply.command == A_CNXN

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        self.sock.sendall(encode_packet(command, arg0, arg1, data))

    def read(self) -> Packet:
        return self.reader.read_packet(1 << 20)

    def is_closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client() -> Iterator[Callable[..., RawClient]]:
    """Factory: ``raw_client(port, handshake=True)``; sockets closed in teardown."""
    clients: list[RawClient] = []

    def connect(port: int, handshake: bool = True) -> RawClient:
        clients.append(RawClient(port, handshake))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()
