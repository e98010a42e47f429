"""Fixtures for device tests: the adbd tests' daemon and isolated adb server, reused."""

from __future__ import annotations

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
