"""Start an Android emulator for a run, wait until it has booted, stop it afterwards.

`$SDK/emulator/emulator -avd NAME -no-window -no-audio -no-snapshot-save`: the emulator
announces itself to the adb server (serial emulator-<console port>); we wait for that
serial to appear in state "device" and for `getprop sys.boot_completed` to say 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.devices.adb_server import ServerNotRunning, ServerTransport, list_devices
from harness.errors import DeviceError

BOOT_TIMEOUT = 600.0
POLL_S = 0.5
STOP_WAIT_S = 20.0

Progress = Callable[[str], None]

_INSTALL_HINT = (
    "install the Android SDK emulator and a system image "
    "(sdkmanager 'emulator' 'platform-tools' 'system-images;android-34;google_apis;x86_64'), "
    "create an AVD (avdmanager create avd -n NAME -k SYSTEM_IMAGE), "
    "and set ANDROID_SDK_ROOT (or ANDROID_HOME) to the SDK directory"
)


def sdk_root() -> Path:
    """$ANDROID_SDK_ROOT, else $ANDROID_HOME; a clear message when neither is set."""
    for var in ("ANDROID_SDK_ROOT", "ANDROID_HOME"):
        if value := os.environ.get(var):
            path = Path(value)
            if not path.is_dir():
                raise DeviceError(f"{var}={value} is not a directory; {_INSTALL_HINT}")
            return path
    raise DeviceError(
        f"--avd needs the Android SDK, but ANDROID_SDK_ROOT and ANDROID_HOME "
        f"are unset; {_INSTALL_HINT}"
    )


def emulator_binary(sdk: Path) -> Path:
    binary = sdk / "emulator" / "emulator"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise DeviceError(f"no emulator in the SDK at {binary}; {_INSTALL_HINT}")
    return binary


def list_avds(binary: Path) -> list[str]:
    """`emulator -list-avds`: the AVD names this SDK can start."""
    try:
        out = subprocess.run(
            [str(binary), "-list-avds"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"cannot run {binary} -list-avds: {exc}") from exc
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _emulator_serials() -> set[str]:
    try:
        return {d.serial for d in list_devices() if d.is_emulator}
    except ServerNotRunning:
        from harness.devices.discovery import start_adb_server

        start_adb_server()  # --avd is an explicit request; the emulator needs a server
        return {d.serial for d in list_devices() if d.is_emulator}


@contextlib.contextmanager
def launched_emulator(
    avd: str,
    keep: bool = False,
    boot_timeout: float = BOOT_TIMEOUT,
    progress: Progress | None = None,
) -> Iterator[str]:
    """Start AVD `avd`, yield its serial once booted; stop it on exit unless `keep`."""
    say = progress or (lambda _msg: None)
    binary = emulator_binary(sdk_root())
    avds = list_avds(binary)
    if avd not in avds:
        known = ", ".join(avds) or "none"
        raise DeviceError(
            f"no AVD named {avd!r} (available: {known}); create one with "
            "avdmanager create avd -n NAME -k SYSTEM_IMAGE"
        )
    before = _emulator_serials()
    fd, log_name = tempfile.mkstemp(prefix=f"harness-emulator-{avd}-", suffix=".log")
    log = Path(log_name)
    say(f"starting emulator {avd} (log: {log})")
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "-avd", avd, "-no-window", "-no-audio", "-no-snapshot-save"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches qemu too
        )
    stopped = False
    try:
        serial = wait_for_boot(proc, before, boot_timeout, say, log)
        yield serial
    except BaseException:
        stop_emulator(proc, say)
        stopped = True
        raise
    finally:
        if not stopped:
            if keep:
                say(f"leaving {avd} running (pid {proc.pid})")
            else:
                stop_emulator(proc, say)


def wait_for_boot(
    proc: subprocess.Popen | None,
    before: set[str],
    timeout: float,
    say: Progress,
    log: Path | None = None,
) -> str:
    """Wait for a new emulator serial in state device, then for sys.boot_completed=1."""
    start = time.monotonic()
    deadline = start + timeout
    serial, last_state, announced = None, None, 0.0
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DeviceError(
                f"the emulator exited with status {proc.returncode} before it "
                f"booted{_log_tail(log)}"
            )
        if serial is None:
            new = [d for d in list_devices() if d.is_emulator and d.serial not in before]
            if new:
                serial = new[0].serial
                say(f"{serial} appeared; waiting for it to boot")
        if serial is not None:
            state = next((d.state for d in list_devices() if d.serial == serial), "gone")
            if state != last_state:
                say(f"{serial}: {state}")
                last_state = state
            if state == "device" and _booted(serial):
                say(f"{serial} booted in {time.monotonic() - start:.0f}s")
                return serial
        if time.monotonic() - announced >= 10:
            say(f"waiting for boot ({time.monotonic() - start:.0f}s of {timeout:.0f}s)")
            announced = time.monotonic()
        time.sleep(POLL_S)
    what = f"{serial} did not finish booting" if serial else "no new emulator appeared"
    raise DeviceError(f"{what} within {timeout:.0f}s{_log_tail(log)}")


def _booted(serial: str) -> bool:
    try:
        out = ServerTransport(serial).shell("getprop sys.boot_completed", 10.0)
    except DeviceError:
        return False  # adbd in the image may not be ready for shells yet
    return out.exit_code == 0 and out.stdout.strip() == "1"


def stop_emulator(proc: subprocess.Popen, say: Progress) -> None:
    """SIGTERM the emulator's process group (qemu exits cleanly), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    say("stopping the emulator")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_WAIT_S)


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").strip().splitlines()[-3:]
    return f" (emulator log {log}: {' | '.join(lines)[:300]})" if lines else f" (log: {log})"
