"""Battery sampling on an Android device around a benchmark_model pass (--energy), and
`dumpsys battery unplug` for the run (--unplug), restored however the run ends.

The sampler is a shell loop on the device: every SAMPLE_PERIOD_S it prints
`UPTIME CURRENT_NOW VOLTAGE_NOW` (/proc/uptime's seconds; power_supply/battery's µA
and µV) into a file in the workdir, in the background, while the command it wraps runs;
the host reads the file back afterwards, so no ADB round trip enters a reading or a
latency. Sysfs is read under $HARNESS_SYSFS when set (tests give the daemon a fake
tree), else /sys. The integration is harness.measure.energy's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.devices.base import Device
from harness.errors import DeviceError, HarnessError
from harness.measure.energy import (
    EnergyFigure,
    energy_per_inference,
    parse_samples,
    readings_record,
)

SAMPLE_PERIOD_S = 0.1  # about 10 Hz: what current_now is refreshed at on most phones
IDLE_S = 2.0  # the idle baseline, measured just before each cell's timed pass
MAX_SAMPLES_BYTES = 4 << 20

SAMPLER = r"""
B="${HARNESS_SYSFS:-/sys}/class/power_supply/battery"
out="$1"; period="$2"; shift 2
( while :; do
    read -r up _ < /proc/uptime
    i=$(cat "$B/current_now" 2>/dev/null); v=$(cat "$B/voltage_now" 2>/dev/null)
    printf '%s %s %s\n' "$up" "$i" "$v"
    sleep "$period"
  done ) > "$out" 2>/dev/null &
pid=$!
"$@"
code=$?
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit "$code"
"""

PROBE = r"""
B="${HARNESS_SYSFS:-/sys}/class/power_supply/battery"
if [ -r "$B/current_now" ] && [ -r "$B/voltage_now" ]; then
  printf 'status %s\n' "$(cat "$B/status" 2>/dev/null)"
else
  echo none
fi
"""


def battery_status(device: Device) -> str | None:
    """power_supply/battery/status ("Discharging", "Charging", ...); None when the device
    has no battery current and voltage to read (a board, an emulator without one)."""
    out = device.shell(["sh", "-c", PROBE], 30.0).stdout.strip()
    if not out.startswith("status"):
        return None
    return out.removeprefix("status").strip() or "unknown"


def sampled(argv: list[str], out_file: str) -> list[str]:
    """argv wrapped so the battery is sampled into out_file while it runs."""
    return ["sh", "-c", SAMPLER, "sh", out_file, f"{SAMPLE_PERIOD_S:g}", *argv]


def read_samples(device: Device, path: str) -> str:
    try:
        return device.pull_bytes(path, MAX_SAMPLES_BYTES).decode("utf-8", "replace")
    finally:
        device.run_in_workdir(["rm", "-f", path], 30.0)


def measure(
    device: Device, run, timed_argv: list[str], inferences_of, status: str | None, tag: str
) -> tuple[object, EnergyFigure, dict]:
    """Idle baseline (IDLE_S of `sleep`), then the timed pass under the sampler.

    `run(argv)` runs a command on the device (the session's own invoke, pinned);
    `inferences_of(result)` counts the inferences the pass ran. Returns the pass's
    result, its energy figure and the raw readings (measure.energy.readings_record)."""
    idle_file, busy_file = f"energy-idle-{tag}.txt", f"energy-busy-{tag}.txt"
    run(sampled(["sleep", f"{IDLE_S:g}"], idle_file))
    idle = parse_samples(read_samples(device, idle_file))
    result = run(sampled(timed_argv, busy_file))
    busy = parse_samples(read_samples(device, busy_file))
    inferences = inferences_of(result)
    figure = energy_per_inference(idle, busy, inferences, status)
    return result, figure, readings_record(idle, busy)


@contextlib.contextmanager
def unplugged(device: Device, enabled: bool) -> Iterator[None]:
    """`dumpsys battery unplug` for the block, `dumpsys battery reset` after it, even when
    the block fails. A device that refuses dumpsys is one HarnessError before anything
    is measured."""
    if not enabled:
        yield
        return
    result = device.run_in_workdir(["dumpsys", "battery", "unplug"], 30.0)
    said = (result.stdout + result.stderr).strip()
    if result.exit_code != 0 or "not found" in said.lower() or "error" in said.lower():
        raise HarnessError(
            f"--unplug: {device.name} refused `dumpsys battery unplug` "
            f"(exit {result.exit_code}{': ' + said[:160] if said else ''})"
        )
    try:
        yield
    finally:
        with contextlib.suppress(DeviceError):  # a lost link cannot restore; say nothing more
            device.run_in_workdir(["dumpsys", "battery", "reset"], 30.0)
