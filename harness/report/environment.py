"""The environment of a run's cells and the warnings a reader needs: pure functions.

Device snapshots (harness.devices.snapshot) taken before and after are read from each
cell's env (``before``/``after``, or ``snapshot_before``/``snapshot_after``).
"""

from __future__ import annotations

from harness.cells import CellRecord
from harness.report.svg import esc

SNAPSHOT_KEYS = ("before", "after", "snapshot_before", "snapshot_after")
OUTLIER_SHARE = 0.05
WIDE_CI = 0.10


def display_status(r: CellRecord) -> str:
    """ok / partially delegated / unsupported / failed."""
    if r.status == "ok" and r.extra.get("fully_accelerated") is False:
        return "partially delegated"
    return r.status


def environment_section(rows: list[CellRecord]) -> str:
    """Facts shared by the device's cells, what varies, and the before/after device state."""
    envs = [r.env for r in rows if r.env]
    if not envs:
        return ""
    keys = [k for k in dict.fromkeys(k for e in envs for k in e) if k not in SNAPSHOT_KEYS]
    same = [k for k in keys if all(e.get(k) == envs[0].get(k) for e in envs)]
    varies = [k for k in keys if k not in same]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(_env_value(envs[0].get(k)))}</dd>" for k in same)
    html = f"<h3>environment</h3><dl class='env'>{dl}</dl>"
    if varies:
        html += f"<p class='note'>varies per cell: {esc(', '.join(varies))}</p>"
    before, after = snapshots(envs)
    if before or after:
        names = list(dict.fromkeys([*before, *after]))
        trs = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(_env_value(before.get(k)))}</td>"
            f"<td>{esc(_env_value(after.get(k)))}</td></tr>"
            for k in names
        )
        html += (
            "<table class='snap'><thead><tr><th>device state</th><th>before first cell</th>"
            f"<th>after last cell</th></tr></thead><tbody>{trs}</tbody></table>"
        )
    return html


def _env_value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return ", ".join("-" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)
                         for x in v)  # fmt: skip
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def snapshots(envs: list[dict]) -> tuple[dict, dict]:
    """(first cell's before, last cell's after) device snapshots, flattened; {} if absent."""
    before = next((b for e in envs if isinstance(b := _snap(e, "before"), dict)), None)
    after = next((a for e in reversed(envs) if isinstance(a := _snap(e, "after"), dict)), None)
    return flatten_snapshot(before or {}), flatten_snapshot(after or {})


def _snap(env: dict, which: str):
    return env.get(which) or env.get(f"snapshot_{which}")


def flatten_snapshot(snap: dict) -> dict:
    """A device snapshot (harness.devices.snapshot) as flat name -> value rows.

    Battery, thermal status, the hottest thermal zone, governors and props; any other
    scalar field is kept under its own name, so a plain {"temp_c": 41} works too.
    """
    out: dict = {}
    for k, v in snap.items():
        if k in ("taken_at", "device"):
            continue
        if k == "battery" and isinstance(v, dict):
            out |= {f"battery {bk}": bv for bk, bv in v.items() if bk != "source"}
        elif k == "thermal_status" and isinstance(v, dict):
            out["thermal status"] = f"{v.get('name')} ({v.get('level')})"
            out["thermal status level"] = v.get("level")
        elif k == "thermal_zones" and isinstance(v, list):
            temps = [z for z in v if isinstance(z, dict) and _is_num(z.get("temp_c"))]
            if temps:
                hot = max(temps, key=lambda z: z["temp_c"])
                out["hottest zone temp_c"] = hot["temp_c"]
                out["hottest zone"] = f"{hot.get('zone')} {hot.get('type') or ''}".strip()
        elif k == "governors" and isinstance(v, dict):
            govs = sorted({str(g.get("governor")) for g in v.values() if isinstance(g, dict)})
            out["governors"] = ", ".join(govs)
            freqs = [g.get("cur_freq_khz") for g in v.values() if isinstance(g, dict)]
            if any(isinstance(f, int) for f in freqs):
                out["cur_freq_khz"] = freqs
        elif k == "props" and isinstance(v, dict):
            out |= v
        elif not isinstance(v, dict | list) or k == "loadavg":
            out[k] = v
    return out


# -- warnings -------------------------------------------------------------------------


def warnings(records: list[CellRecord]) -> list[str]:
    """What should make a reader distrust or qualify the figures."""
    out = []
    for device in dict.fromkeys(r.cell.device for r in records):
        rows = [r for r in records if r.cell.device == device]
        envs = [r.env for r in rows]
        before, after = snapshots(envs)
        if (
            device.startswith("emulator")
            or any(
                e.get("emulator") is True or str(e.get("ro.kernel.qemu", "")) == "1" for e in envs
            )
            or "1" in {str(before.get(k)) for k in ("ro.kernel.qemu", "ro.boot.qemu")}
        ):
            out.append(f"{device}: an emulator; its timings say little about a real phone")
        level = after.get("thermal status level")
        if any(r.env.get("throttled") or r.extra.get("throttled") for r in rows) or (
            isinstance(level, int) and level > 0
        ):
            out.append(f"{device}: the device reported thermal throttling during the run")
        out += [f"{device}: {w}" for w in _temperature_rise(before, after)]
        ok = [r for r in rows if r.status == "ok" and r.latency]
        noisy = [r for r in ok if (r.latency.outliers or 0) > OUTLIER_SHARE * r.latency.n]
        if noisy:
            out.append(
                f"{device}: {len(noisy)} of {len(ok)} ok cells have more than "
                f"{OUTLIER_SHARE:.0%} outlier samples (kept in every figure; medians are robust)"
            )
        wide = [
            r
            for r in ok
            if r.latency.median and r.latency.ci_low is not None and _ci_width(r) > WIDE_CI
        ]
        if wide:
            out.append(
                f"{device}: {len(wide)} cells have a median CI wider than {WIDE_CI:.0%} "
                "of the median; time them longer (--runs / --min-secs)"
            )
        partial = [r for r in ok if display_status(r) == "partially delegated"]
        if partial:
            out.append(f"{device}: {len(partial)} cells ran only partly on the delegate")
        failed = [r for r in rows if r.status == "failed"]
        if failed:
            out.append(f"{device}: {len(failed)} cells failed (reasons in the table)")
    return out


def _ci_width(r: CellRecord) -> float:
    return (r.latency.ci_high - r.latency.ci_low) / r.latency.median


def _temperature_rise(before: dict, after: dict, threshold: float = 5.0) -> list[str]:
    out = []
    for k, v in before.items():
        w = after.get(k)
        if "temp" in k.lower() and _is_num(v) and _is_num(w) and w - v >= threshold:
            out.append(f"{k} rose from {v:g} to {w:g} during the run (throttling likely)")
    return out


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
