"""harness.adbd: an ADB device daemon (the device side of ADB) in pure Python.

Makes a Linux board, or a test, an ADB device reachable by adb-shell and by the
real ``adb`` client. Public API::

    from harness.adbd import AdbDaemon, DaemonConfig, generate_adb_keypair
    with AdbDaemon(DaemonConfig(root=path)) as daemon:   # port 0 = a free port
        print(daemon.port)

Only the sync service (push/pull/ls/stat) is confined to the root; shell commands run
on the host as the daemon's user (see ``harness.adbd.shell``).
"""

from harness.adbd.keys import AdbKeyPair, ensure_adb_keypair, generate_adb_keypair
from harness.adbd.server import (
    DEFAULT_FEATURES,
    AdbDaemon,
    DaemonConfig,
    DaemonConfigError,
    announce_emulator,
)

__all__ = [
    "DEFAULT_FEATURES",
    "AdbDaemon",
    "AdbKeyPair",
    "DaemonConfig",
    "DaemonConfigError",
    "announce_emulator",
    "ensure_adb_keypair",
    "generate_adb_keypair",
]
