"""A device's environment at one moment: props, battery, thermal state, governors.

Taken before and after a run so a slow result can be traced to a hot or throttled
device. One shell command reads everything (sysfs, then `dumpsys` where the device has
it); what a device does not expose is simply absent from the snapshot.

`$HARNESS_SYSFS` (default /sys) is read on the device side: tests point it at a fake
sysfs tree, real devices never set it.
"""

from __future__ import annotations

import platform
import re
import time

SNAPSHOT_PROPS = (
    "ro.product.model",
    "ro.product.cpu.abi",
    "ro.build.version.sdk",
    "ro.build.fingerprint",
    "ro.harness.device_class",
    "ro.kernel.qemu",
    "ro.boot.qemu",
)
MAX_OUTPUT = 256 * 1024

SNAPSHOT_SCRIPT = r"""
S="${HARNESS_SYSFS:-/sys}"
for d in "$S"/class/power_supply/*; do
  [ -r "$d/capacity" ] || continue
  n="${d##*/}"
  printf 'battery %s capacity %s\n' "$n" "$(cat "$d/capacity" 2>/dev/null)"
  [ -r "$d/temp" ] && printf 'battery %s temp %s\n' "$n" "$(cat "$d/temp" 2>/dev/null)"
  [ -r "$d/status" ] && printf 'battery %s status %s\n' "$n" "$(cat "$d/status" 2>/dev/null)"
done
for z in "$S"/class/thermal/thermal_zone*; do
  t=$(cat "$z/temp" 2>/dev/null) || continue
  printf 'zone %s %s %s\n' "${z##*/}" "$t" "$(cat "$z/type" 2>/dev/null)"
done
for c in "$S"/devices/system/cpu/cpu[0-9]*; do
  g=$(cat "$c/cpufreq/scaling_governor" 2>/dev/null) || continue
  printf 'governor %s %s %s\n' "${c##*/cpu}" "$g" "$(cat "$c/cpufreq/scaling_cur_freq" 2>/dev/null)"
done
if command -v dumpsys >/dev/null 2>&1; then
  dumpsys battery 2>/dev/null | head -n 40 | sed 's/^/dumpsys-battery /'
  dumpsys thermalservice 2>/dev/null | head -n 40 | sed 's/^/dumpsys-thermal /'
fi
"""


def snapshot(device) -> dict:
    """Props, battery, thermal status and zones, CPU governors of an AdbDevice or LocalDevice."""
    result = device.shell(["sh", "-c", SNAPSHOT_SCRIPT], timeout=30.0)
    snap = parse_snapshot(result.stdout[:MAX_OUTPUT])
    snap["taken_at"] = time.time()
    snap["device"] = device.name
    snap["props"] = _props(device)
    return snap


def _props(device) -> dict[str, str]:
    if hasattr(device, "props"):
        props = device.props()
        return {k: props[k] for k in SNAPSHOT_PROPS if props.get(k)}
    return {  # the host: what `uname` knows
        "ro.product.model": platform.node(),
        "ro.product.cpu.abi": platform.machine(),
        "ro.harness.device_class": "linux",
        "ro.build.fingerprint": f"{platform.system()}/{platform.release()}/{platform.version()}",
    }


def parse_snapshot(text: str) -> dict:
    """Turn SNAPSHOT_SCRIPT output into {battery, thermal_zones, governors, thermal_status}."""
    battery: dict = {}
    zones: list[dict] = []
    governors: dict[str, dict] = {}
    dumpsys_battery: list[str] = []
    dumpsys_thermal: list[str] = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "battery":
            _battery_line(battery, rest)
        elif kind == "zone":
            parts = rest.split(" ", 2)
            if len(parts) >= 2 and _is_int(parts[1]):
                zones.append(
                    {
                        "zone": parts[0],
                        "type": parts[2] if len(parts) > 2 else "",
                        "temp_c": _sysfs_celsius(int(parts[1])),
                    }
                )
        elif kind == "governor":
            parts = rest.split()
            if len(parts) >= 2:
                cur = int(parts[2]) if len(parts) > 2 and _is_int(parts[2]) else None
                governors[parts[0]] = {"governor": parts[1], "cur_freq_khz": cur}
        elif kind == "dumpsys-battery":
            dumpsys_battery.append(rest)
        elif kind == "dumpsys-thermal":
            dumpsys_thermal.append(rest)
    if not battery and dumpsys_battery:
        battery = parse_dumpsys_battery("\n".join(dumpsys_battery))
    return {
        "battery": battery or None,
        "thermal_status": parse_thermal_status("\n".join(dumpsys_thermal)),
        "thermal_zones": zones,
        "governors": governors,
    }


def _battery_line(battery: dict, rest: str) -> None:
    parts = rest.split(" ", 2)
    if len(parts) < 3 or battery.get("source", parts[0]) != parts[0]:
        return  # keep the first supply that reports a capacity
    battery["source"] = parts[0]
    name, value = parts[1], parts[2].strip()
    if name == "capacity" and _is_int(value):
        battery["level"] = int(value)
    elif name == "temp" and _is_int(value):
        battery["temp_c"] = int(value) / 10  # power_supply temp is in tenths of a degree
    elif name == "status":
        battery["status"] = value


def parse_dumpsys_battery(text: str) -> dict:
    """`dumpsys battery`: level (percent) and temperature (tenths of a degree C)."""
    out: dict = {}
    if m := re.search(r"^\s*level:\s*(\d+)", text, re.M):
        out["level"] = int(m[1])
    if m := re.search(r"^\s*temperature:\s*(-?\d+)", text, re.M):
        out["temp_c"] = int(m[1]) / 10
    if out:
        out["source"] = "dumpsys"
    return out


_THERMAL_NAMES = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")


def parse_thermal_status(text: str) -> dict | None:
    """`dumpsys thermalservice`: `Thermal Status: N` (Android 10+), named as in the SDK."""
    m = re.search(r"Thermal Status:\s*(\d+)", text)
    if not m:
        return None
    level = int(m[1])
    name = _THERMAL_NAMES[level] if level < len(_THERMAL_NAMES) else str(level)
    return {"level": level, "name": name}


def _sysfs_celsius(raw: int) -> float:
    """thermal_zone temp is millidegrees on most kernels, whole degrees on a few."""
    return raw / 1000 if abs(raw) >= 1000 else float(raw)


def _is_int(s: str) -> bool:
    return bool(re.fullmatch(r"-?\d+", s.strip()))
