"""Push throughput to the harness ADB daemon on loopback: harness's direct transport
(adb-shell underneath, with harness's numpy checksum) vs Debian's adb.

For each maxdata (1 MiB and 4096) one daemon runs; each client pushes the same file to
it, three times; the medians in MB/s (10**6 bytes per second) and the ratios are printed.
``adb push`` is timed around the whole client process (start-up included); adb's own
figure is shown beside it (it divides by 2**20, not 10**6). adb-shell at 4096 pushes
a smaller file so the run stays short.

    .venv/bin/python benchmarks/adb_push.py [--size-mib 64] [--small-size-mib 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.adbd import AdbDaemon, DaemonConfig
from harness.devices.adb_direct import DirectTransport

ADB_RATE = re.compile(rb"([\d.]+) MB/s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def push_adb_shell(port: int, src: Path, device_path: str) -> float:
    """Seconds for one push through harness's direct transport (adb-shell underneath,
    connection set up beforehand)."""
    transport = DirectTransport("127.0.0.1", port)
    transport.connect()
    try:
        start = time.perf_counter()
        transport.push(src, device_path, timeout=600)
        return time.perf_counter() - start
    finally:
        transport.close()


def push_adb(env: dict[str, str], serial: str, src: Path, device_path: str) -> tuple[float, float]:
    """(wall seconds of the adb process, adb's self-reported MB/s)."""
    start = time.perf_counter()
    result = subprocess.run(
        ["adb", "-s", serial, "push", str(src), device_path],
        env=env,
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    match = ADB_RATE.search(result.stdout)
    return seconds, float(match.group(1)) if match else float("nan")


def mb_per_s(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def bench_maxdata(maxdata: int, files: dict[str, Path], env: dict | None, repeat: int) -> dict:
    """Median MB/s per client for one daemon configured with ``maxdata``."""
    root = Path(tempfile.mkdtemp(prefix="adb-push-root-"))
    daemon = AdbDaemon(DaemonConfig(port=0, root=root, maxdata=maxdata))
    daemon.start()
    results: dict[str, float] = {}
    try:
        shell_file = files["small" if maxdata == 4096 else "big"]
        rates = [
            mb_per_s(shell_file.stat().st_size, push_adb_shell(daemon.port, shell_file, "/x"))
            for _ in range(repeat)
        ]
        results["adb-shell"] = statistics.median(rates)
        results["adb-shell file MiB"] = shell_file.stat().st_size / 2**20
        if env is not None:
            subprocess.run(
                ["adb", "connect", daemon.serial], env=env, check=True, capture_output=True
            )
            runs = [push_adb(env, daemon.serial, files["big"], "/y") for _ in range(repeat)]
            size = files["big"].stat().st_size
            results["adb"] = statistics.median(mb_per_s(size, s) for s, _ in runs)
            results["adb self-reported"] = statistics.median(r for _, r in runs)
            subprocess.run(["adb", "disconnect", daemon.serial], env=env, capture_output=True)
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
    return results


def start_adb_server(home: Path) -> dict[str, str] | None:
    if shutil.which("adb") is None:
        print("adb not installed: adb-shell figures only", file=sys.stderr)
        return None
    env = dict(os.environ, HOME=str(home), ANDROID_ADB_SERVER_PORT=str(free_port()), ADB_EMU="0")
    subprocess.run(["adb", "start-server"], env=env, check=True, capture_output=True)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--small-size-mib", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adb-push-bench-") as work:
        files = {"big": Path(work, "big.bin"), "small": Path(work, "small.bin")}
        files["big"].write_bytes(os.urandom(args.size_mib * 2**20))
        files["small"].write_bytes(os.urandom(args.small_size_mib * 2**20))
        env = start_adb_server(Path(work))
        try:
            table = {m: bench_maxdata(m, files, env, args.repeat) for m in (1 << 20, 4096)}
        finally:
            if env is not None:
                subprocess.run(["adb", "kill-server"], env=env, capture_output=True)
    print(f"push to harness adbd on 127.0.0.1, median of {args.repeat}, MB/s = 10^6 B/s")
    for maxdata, row in table.items():
        line = (
            f"maxdata {maxdata:>7}: harness {row['adb-shell']:8.1f} MB/s "
            f"({row['adb-shell file MiB']:.0f} MiB)"
        )
        if "adb" in row:
            line += (
                f" | adb push {row['adb']:8.1f} MB/s ({args.size_mib} MiB, adb says "
                f"{row['adb self-reported']:.1f}) | harness / adb = "
                f"{row['adb-shell'] / row['adb']:.2f}x"
            )
        print(line)
    if all("adb" in row for row in table.values()):
        big, small = table[1 << 20], table[4096]
        print(
            f"harness 1 MiB / 4096 = {big['adb-shell'] / small['adb-shell']:.2f}x; "
            f"adb 1 MiB / 4096 = {big['adb'] / small['adb']:.2f}x"
        )


if __name__ == "__main__":
    main()
