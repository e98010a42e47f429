"""The daemon: configuration, the listening socket, connection threads, emulator announce."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.adbd.auth import AuthError, scan_authorized_keys
from harness.adbd.connection import AdbConnection, ConnectionSettings
from harness.adbd.faults import Fault, FaultInjector
from harness.adbd.packets import ALLOWED_MAXDATA, MAX_PAYLOAD
from harness.adbd.props import PropStore, banner, default_props
from harness.adbd.sandbox import DEVICE_TMP, Sandbox
from harness.errors import HarnessError

log = logging.getLogger(__name__)

# No cmd/abb/apex/remount_shell (install paths we do not serve), never sendrecv_v2 or
# delayed_ack (they change the wire format for newer hosts); see ADB_SPEC.md §1.4.
DEFAULT_FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")


class DaemonConfigError(HarnessError):
    """A daemon configuration the user has to fix (e.g. --no-auth on a public address)."""


@dataclass(frozen=True)
class DaemonConfig:
    """How to run the daemon.

    ``authorized_keys=None`` turns authentication off, which is only allowed on a
    loopback address. ``root=None`` uses a fresh temporary directory, removed on stop.
    ``props`` override the Linux-board defaults from ``props.default_props()``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    root: Path | None = None
    props: Mapping[str, str] = field(default_factory=dict)
    authorized_keys: Path | None = None
    maxdata: int = MAX_PAYLOAD
    features: tuple[str, ...] = DEFAULT_FEATURES
    boot_delay_s: float = 0.0
    max_connections: int = 64
    max_streams: int = 64
    announce_to_adb_server: int | None = None  # adb server port: register as emulator
    faults: tuple[Fault, ...] = ()  # injected on purpose (tests, --inject-fault); see faults.py
    python: str | None = None  # ro.harness.python unless props set it; None: sys.executable


def is_loopback(host: str) -> bool:
    """True if every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def validate_config(config: DaemonConfig) -> None:
    """Raise DaemonConfigError for settings that are unsafe or cannot work."""
    if config.authorized_keys is None and not is_loopback(config.host):
        raise DaemonConfigError(
            f"refusing to serve without authentication on {config.host}: "
            "--no-auth is only allowed on a loopback address (use --authorized-keys FILE)"
        )
    if config.authorized_keys is not None and not Path(config.authorized_keys).is_file():
        raise DaemonConfigError(f"authorized keys file not found: {config.authorized_keys}")
    if config.authorized_keys is not None:
        check_authorized_keys(config.authorized_keys)
    if config.maxdata not in ALLOWED_MAXDATA:
        allowed = ", ".join(map(str, ALLOWED_MAXDATA))
        raise DaemonConfigError(f"maxdata must be one of {allowed}, got {config.maxdata}")
    if not 0 <= config.port <= 65535:
        raise DaemonConfigError(f"port out of range: {config.port}")
    if config.boot_delay_s < 0:
        raise DaemonConfigError("boot delay must not be negative")


def check_authorized_keys(path: Path) -> list[str]:
    """Refuse a keys file that lets nobody in (a daemon would start and serve no one,
    silently); return one warning per line that is not a key, naming its number."""
    try:
        scan = scan_authorized_keys(path)
    except AuthError as exc:
        raise DaemonConfigError(str(exc)) from exc
    if not scan.keys:
        raise DaemonConfigError(
            f"{path} holds no valid ADB public key (adbkey.pub lines): no host could connect"
        )
    return [
        f"warning: {path} line {n}: not an ADB public key, skipped ({why})"
        for n, why in scan.bad_lines
    ]


def announce_emulator(adb_server_port: int, device_port: int, timeout_s: float = 5.0) -> None:
    """Ask an adb server to attach ``127.0.0.1:device_port`` as ``emulator-<port-1>``.

    This is the host request an emulator sends at boot (ADB_SPEC.md §4); the server
    sends no reply, it just connects back to the port.
    """
    request = f"host:emulator:{device_port}".encode("ascii")
    try:
        with socket.create_connection(("127.0.0.1", adb_server_port), timeout=timeout_s) as sock:
            sock.sendall(b"%04x" % len(request) + request)
    except OSError as exc:
        raise DaemonConfigError(
            f"cannot reach the adb server on port {adb_server_port}: {exc.strerror or exc}"
        ) from exc


class AdbDaemon:
    """An ADB device on a TCP port. ``start()`` runs it in the background."""

    def __init__(self, config: DaemonConfig) -> None:
        validate_config(config)
        self.config = config
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[AdbConnection] = set()
        self._lock = threading.Lock()
        self._cleanup: list[str] = []
        self._props: PropStore | None = None
        self._settings: ConnectionSettings | None = None
        self._halted = threading.Event()  # set while the accept loop must end (stop/reboot)
        self._reboot_lock = threading.Lock()
        self.faults = FaultInjector(tuple(config.faults), self.reboot)
        self.reboots = 0
        self.sandbox: Sandbox | None = None
        self.port: int | None = None

    @property
    def serial(self) -> str:
        """How ``adb connect`` will name this device (``host:port``)."""
        return f"{self.config.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections being served now (bounded by ``max_connections``)."""
        with self._lock:
            return len(self._connections)

    def start(self) -> int:
        """Bind, listen and serve in a background thread; return the bound port."""
        if self._thread is not None:
            assert self.port is not None
            return self.port
        try:
            self._settings = self._prepare()
            self._listener = self._bind(self.config.port)
            self.port = self._listener.getsockname()[1]
            self._start_accepting()
            if self.config.announce_to_adb_server is not None:
                announce_emulator(self.config.announce_to_adb_server, self.port)
        except BaseException:
            self.stop()  # no half-started daemon, no leftover temporary directories
            raise
        log.info("adbd listening on %s:%d, root %s", self.config.host, self.port, self.sandbox.root)
        return self.port

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()`` is called from another thread."""
        self.start()
        self._stopping.wait()

    def stop(self) -> None:
        """Close the listener and every connection (their shells get SIGHUP)."""
        self._stopping.set()
        with self._reboot_lock:  # a reboot in progress finishes (or sees _stopping) first
            self._halt()
        if self._props is not None:
            self._props.cancel()
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup.clear()

    def reboot(self, down_s: float = 0.5) -> None:
        """Power-cycle: every connection and shell goes, the port stays closed for
        ``down_s``, then the same port and root serve again (the sandbox keeps its files).
        """
        with self._reboot_lock:
            if self._stopping.is_set() or self._settings is None:
                return
            log.warning("adbd rebooting (down %.1f s)", down_s)
            self._halt()
            time.sleep(down_s)
            if self._stopping.is_set():
                return
            self._listener = self._bind(self.port or 0)
            self.reboots += 1
            self._start_accepting()

    def _start_accepting(self) -> None:
        self._halted = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop,
            args=(self._listener, self._settings, self._halted),
            name="adbd-accept",
            daemon=True,
        )
        self._thread.start()

    def _halt(self) -> None:
        """Close the listener and every connection; wait for the accept loop to end."""
        self._halted.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> AdbDaemon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _prepare(self) -> ConnectionSettings:
        """Create the sandbox and the getprop shim; build what connections share."""
        root = self.config.root
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="harness-device-root-"))
            self._cleanup.append(str(root))
        self.sandbox = Sandbox(root)
        self.sandbox.ensure_layout()
        workdir = Path(tempfile.mkdtemp(prefix="harness-adbd-"))  # outside the sandbox
        self._cleanup.append(str(workdir))
        props = {**default_props(self.config.python), **self.config.props}
        self._props = PropStore(props, self.config.boot_delay_s, workdir)
        self._props.install()
        return ConnectionSettings(
            sandbox=self.sandbox,
            shell_env=self._shell_env(self._props.bin_dir),
            banner=banner(props, self.config.features),
            maxdata=self.config.maxdata,
            max_streams=self.config.max_streams,
            authorized_keys=str(self.config.authorized_keys)
            if self.config.authorized_keys
            else None,
            faults=self.faults if self.config.faults else None,
        )

    def _shell_env(self, bin_dir: Path) -> dict[str, str]:
        assert self.sandbox is not None
        root = self.sandbox.root
        env = dict(os.environ)
        env.update(
            HOME=root,
            TMPDIR=self.sandbox.host_path_lexical(DEVICE_TMP),
            ADBD_ROOT=root,
            SHELL="/bin/sh",
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        )
        return env

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.config.host, port))
        except OSError as exc:
            listener.close()
            raise DaemonConfigError(
                f"cannot listen on {self.config.host}:{port}: {exc.strerror or exc}"
            ) from exc
        listener.listen(16)
        listener.settimeout(0.25)  # lets the loop notice stop() without relying on close()
        return listener

    def _accept_loop(
        self, listener: socket.socket, settings: ConnectionSettings, halted: threading.Event
    ) -> None:
        while not halted.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # listener closed by stop() or reboot()
            self._admit(sock, address, settings)

    def _admit(self, sock: socket.socket, address: tuple, settings: ConnectionSettings) -> None:
        with self._lock:
            if len(self._connections) >= self.config.max_connections:
                log.warning("refusing %s: %d connections open", address, len(self._connections))
                sock.close()
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = AdbConnection(sock, settings, f"{address[0]}:{address[1]}")
            self._connections.add(connection)
        threading.Thread(
            target=self._run_connection, args=(connection,), name="adbd-conn", daemon=True
        ).start()

    def _run_connection(self, connection: AdbConnection) -> None:
        try:
            connection.serve()
        finally:
            with self._lock:
                self._connections.discard(connection)


def serve_until_stopped(config: DaemonConfig, report: Callable[[str], None]) -> None:
    """Run a daemon in the foreground until Ctrl-C or SIGTERM (the CLI's entry point)."""
    daemon = AdbDaemon(config)
    port = daemon.start()
    assert daemon.sandbox is not None
    auth = "no auth" if config.authorized_keys is None else f"keys {config.authorized_keys}"
    report(f"serving ADB device on {config.host}:{port} (root {daemon.sandbox.root}, {auth})")
    if config.announce_to_adb_server is not None:
        report(f"announced to adb server :{config.announce_to_adb_server} as emulator-{port - 1}")
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (systemd, CI) should close connections and hang up shells like Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    try:
        daemon.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        daemon.stop()
