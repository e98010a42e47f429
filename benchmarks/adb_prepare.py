"""Device preparation on a second run: unchanged models must not be pushed again.

Starts the harness ADB daemon on loopback (auth on, a throwaway key), stages the four
digits-sized variants plus the runner twice through harness's direct transport, and
prints the per-model preparation time of the cold (push) and warm (verify-only) pass.
Target: warm < 0.3 s per model.

Usage: python benchmarks/adb_prepare.py [--repeat 5] [--model-mib 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness.adbd import AdbDaemon, DaemonConfig
from harness.adbd.keys import generate_adb_keypair
from harness.convert.sources import file_sha256
from harness.devices.adb_direct import DirectTransport
from harness.devices.remote import AdbDevice


def stage_all(device: AdbDevice, files: list[Path]) -> float:
    start = time.perf_counter()
    for f in files:
        device.stage(f, file_sha256(f), ".tflite")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--model-mib", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        key = generate_adb_keypair(work / "adbkey")
        os.environ["HARNESS_ADB_KEY"] = str(key.private_key)
        files = []
        for i in range(args.models):
            f = work / f"model{i}.tflite"
            f.write_bytes(os.urandom(int(args.model_mib * 2**20)))
            files.append(f)
        cold, warm = [], []
        for _ in range(args.repeat):
            daemon = AdbDaemon(DaemonConfig(root=work / "root", authorized_keys=key.public_key))
            port = daemon.start()
            transport = DirectTransport("127.0.0.1", port)
            transport.connect()
            device = AdbDevice(transport)
            device.shell(["rm", "-rf", str(work / "root" / "data")])  # a fresh device
            cold.append(stage_all(device, files) / len(files))
            warm.append(stage_all(device, files) / len(files))
            device.close()
            daemon.stop()
    print(f"{args.models} models x {args.model_mib:g} MiB, median of {args.repeat}")
    print(f"cold (push + verify) per model: {statistics.median(cold) * 1e3:8.1f} ms")
    print(
        f"warm (verify only)   per model: {statistics.median(warm) * 1e3:8.1f} ms  "
        "(target < 300 ms)"
    )
    print(f"warm / cold: {statistics.median(warm) / statistics.median(cold):.3f}")


if __name__ == "__main__":
    main()
