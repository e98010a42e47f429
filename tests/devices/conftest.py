"""Fixtures for device tests: the adbd tests' daemon and isolated adb server, reused."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

# tests/ is on sys.path (rootdir conftest); tests/adbd is a plain directory, so its
# conftest imports as adbd.conftest. Re-exported here, the fixtures serve tests/devices.
from adbd.conftest import (  # noqa: F401
    AdbServer,
    adb_server,
    device_root,
    free_port,
    require_tool,
    start_daemon,
)


@pytest.fixture
def server_env(adb_server: AdbServer, monkeypatch: pytest.MonkeyPatch) -> AdbServer:  # noqa: F811
    """The isolated adb server, also the one this process's ServerTransports talk to."""
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb_server.port))
    return adb_server


@pytest.fixture
def fake_sdk(tmp_path, monkeypatch) -> Path:
    """$SDK/emulator/emulator that starts the daemon as a booting emulator (test double)."""
    sdk = tmp_path / "sdk"
    (sdk / "emulator").mkdir(parents=True)
    props = tmp_path / "emulator.props"
    props.write_text(
        f"ro.kernel.qemu=1\nro.product.model=fake_emu\nro.harness.python={sys.executable}\n"
    )
    script = sdk / "emulator" / "emulator"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            # Test double for the Android emulator: no SDK or KVM here.
            if [ "$1" = "-list-avds" ]; then echo test_avd; exit 0; fi
            [ "$2" = test_avd ] || {{ echo "unknown AVD $2" >&2; exit 1; }}
            echo $$ > {tmp_path / "emulator.pid"}
            exec {sys.executable} -m harness.cli serve-device --no-auth --port {free_port()} \\
              --boot-delay 1 --props {props} --announce-emulator "$ANDROID_ADB_SERVER_PORT"
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("ANDROID_SDK_ROOT", str(sdk))
    return sdk
