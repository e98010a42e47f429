"""Energy per inference from battery readings: pure functions over (time, current,
voltage) samples, so the integration is testable on series with known integrals.

The device samples its battery's current_now (µA) and voltage_now (µV) at about 10 Hz
(harness.runners.benchmark_model.energy), first while idle just before a cell, then
while the cell runs. Power is |I| x V (the sign of current_now differs between
vendors); energy is its trapezoidal integral over time. The idle power is subtracted
over the busy window and the rest divided by the inferences run: mJ per inference.
This is the WHOLE DEVICE's draw (screen, radios, every process) above its idle level,
not the SoC's alone; on a charging device the battery current includes the charger,
and the figure is marked meaningless.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# statuses of power_supply/battery/status under which the battery is the only source
ON_BATTERY = ("Discharging",)


@dataclass(frozen=True)
class PowerSample:
    """One reading: seconds (any origin), current in µA, voltage in µV."""

    t_s: float
    current_ua: float
    voltage_uv: float

    @property
    def watts(self) -> float:
        return abs(self.current_ua) * 1e-6 * self.voltage_uv * 1e-6


@dataclass(frozen=True)
class EnergyFigure:
    """A cell's energy: per inference (mJ), with what it rests on."""

    mj_per_inference: float | None
    joules_busy: float
    joules_net: float
    idle_w: float
    busy_w: float
    duration_s: float
    inferences: int
    rate_hz: float
    samples: int
    battery_status: str | None
    meaningful: bool
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def parse_samples(text: str) -> list[PowerSample]:
    """Lines `T CURRENT VOLTAGE` (as the device's sampler prints them); a line that is
    not three finite numbers (a file that vanished mid-read) is skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            t, i, v = (float(p) for p in parts)
        except ValueError:
            continue
        if all(math.isfinite(x) for x in (t, i, v)):
            out.append(PowerSample(t, i, v))
    return sorted(out, key=lambda s: s.t_s)


def integrate_joules(samples: Sequence[PowerSample]) -> float:
    """The trapezoidal integral of power over time, in joules (0 for < 2 samples)."""
    total = 0.0
    for a, b in zip(samples, samples[1:], strict=False):
        total += (b.t_s - a.t_s) * (a.watts + b.watts) / 2
    return total


def mean_power(samples: Sequence[PowerSample]) -> float:
    """Time-weighted mean power (W); one sample: its own power; none: 0."""
    if len(samples) < 2:
        return samples[0].watts if samples else 0.0
    span = samples[-1].t_s - samples[0].t_s
    return integrate_joules(samples) / span if span > 0 else samples[0].watts


def sample_rate(samples: Sequence[PowerSample]) -> float:
    """Samples per second actually achieved (not the rate asked for)."""
    span = samples[-1].t_s - samples[0].t_s if len(samples) > 1 else 0.0
    return (len(samples) - 1) / span if span > 0 else 0.0


def energy_per_inference(
    idle: Sequence[PowerSample],
    busy: Sequence[PowerSample],
    inferences: int,
    battery_status: str | None,
) -> EnergyFigure:
    """(busy energy - idle power x busy time) / inferences, in mJ; None with a note when
    the readings cannot give one. Not on battery: the figure is kept but marked
    meaningless (the charger's current is in the reading)."""
    joules = integrate_joules(busy)
    duration = busy[-1].t_s - busy[0].t_s if len(busy) > 1 else 0.0
    idle_w = mean_power(idle)
    net = joules - idle_w * duration
    meaningful = battery_status in ON_BATTERY
    notes = [] if meaningful else [f"battery status {battery_status!r}: not on battery alone"]
    per = net / inferences * 1e3 if inferences > 0 and duration > 0 else None
    if len(busy) < 2 or len(idle) < 1:
        per = None
        notes.append("too few battery readings (fewer than 2 during the cell)")
    elif per is not None and per <= 0:
        notes.append("the cell drew no more than idle: below what the battery readings resolve")
    note = "; ".join(notes) or None
    return EnergyFigure(
        mj_per_inference=per,
        joules_busy=joules,
        joules_net=net,
        idle_w=idle_w,
        busy_w=joules / duration if duration > 0 else 0.0,
        duration_s=duration,
        inferences=inferences,
        rate_hz=sample_rate(busy),
        samples=len(busy),
        battery_status=battery_status,
        meaningful=meaningful and per is not None and per > 0,
        note=note,
    )


MAX_READINGS = 36000  # kept per pass: an hour at 10 Hz; longer passes are evenly thinned


def readings_record(idle: Sequence[PowerSample], busy: Sequence[PowerSample]) -> dict:
    """The raw battery readings a figure rests on, as stored with the cell: rows of
    [t_s, current_ua, voltage_uv] (times from the device's uptime), at most
    MAX_READINGS per phase (every k-th when more, so the whole span stays)."""

    def rows(samples: Sequence[PowerSample]) -> list[list[float]]:
        step = max(1, -(-len(samples) // MAX_READINGS))
        return [[s.t_s, s.current_ua, s.voltage_uv] for s in samples[::step]]

    return {"columns": ["t_s", "current_ua", "voltage_uv"], "idle": rows(idle), "busy": rows(busy)}


def pool_energy(rounds: Sequence[dict]) -> dict:
    """Several rounds' EnergyFigure dicts as one: joules and inferences summed, so the
    figure is total net energy over total inferences; meaningful only if every round
    was. Each round's own figure is kept (`round_mj`: one reading per round, the unit a
    comparison of two runs' energy rests on) and so are its raw readings."""
    n = sum(int(r.get("inferences") or 0) for r in rounds)
    net = sum(float(r.get("joules_net") or 0.0) for r in rounds)
    busy = sum(float(r.get("joules_busy") or 0.0) for r in rounds)
    duration = sum(float(r.get("duration_s") or 0.0) for r in rounds)
    per = (
        net / n * 1e3
        if n > 0 and all(r.get("mj_per_inference") is not None for r in rounds)
        else None
    )
    notes = sorted({r["note"] for r in rounds if r.get("note")})
    return EnergyFigure(
        mj_per_inference=per,
        joules_busy=busy,
        joules_net=net,
        idle_w=sum(float(r.get("idle_w") or 0.0) for r in rounds) / len(rounds),
        busy_w=busy / duration if duration > 0 else 0.0,
        duration_s=duration,
        inferences=n,
        rate_hz=min(float(r.get("rate_hz") or 0.0) for r in rounds),
        samples=sum(int(r.get("samples") or 0) for r in rounds),
        battery_status=rounds[-1].get("battery_status"),
        meaningful=all(r.get("meaningful") for r in rounds),
        note="; ".join(notes) or None,
    ).to_dict() | {
        "round_mj": [r.get("mj_per_inference") for r in rounds],
        "readings": [r["readings"] for r in rounds if isinstance(r.get("readings"), dict)],
    }
