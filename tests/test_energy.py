"""Energy per inference: the integration on series with known integrals, and --energy on a
Linux board without a battery (an unsupported row with its reason)."""

from __future__ import annotations

import os

import pytest
from cli_helpers import assert_run_exit, harness

from harness.errors import HarnessError
from harness.measure.energy import (
    PowerSample,
    energy_per_inference,
    integrate_joules,
    mean_power,
    parse_samples,
    pool_energy,
    sample_rate,
)


def _series(t0: float, seconds: float, hz: float, current_ua, voltage_uv=4_000_000.0):
    n = int(seconds * hz) + 1
    return [
        PowerSample(t0 + k / hz, current_ua(k / hz) if callable(current_ua) else current_ua,
                    voltage_uv)
        for k in range(n)
    ]  # fmt: skip


def test_constant_and_linear_power_integrate_exactly():
    # 0.5 A at 4 V for 2 s: 2 W x 2 s = 4 J
    assert integrate_joules(_series(0, 2, 10, 500_000)) == pytest.approx(4.0)
    # current ramping 0 -> 1 A over 1 s at 4 V: mean 2 W, 2 J (trapezoids are exact)
    assert integrate_joules(_series(0, 1, 10, lambda t: 1e6 * t)) == pytest.approx(2.0)
    # the sign of current_now differs between vendors: power uses its magnitude
    assert integrate_joules(_series(0, 2, 10, -500_000)) == pytest.approx(4.0)
    assert mean_power(_series(5, 3, 10, 250_000)) == pytest.approx(1.0)
    assert sample_rate(_series(0, 2, 10, 1)) == pytest.approx(10.0)
    assert integrate_joules([]) == 0.0


def test_idle_power_is_subtracted_and_the_rest_shared_by_the_inferences():
    idle = _series(0, 2, 10, 250_000)  # 1 W
    busy = _series(10, 2, 10, 750_000)  # 3 W for 2 s: 6 J, of which 2 J idle
    e = energy_per_inference(idle, busy, 100, "Discharging")
    assert e.joules_busy == pytest.approx(6.0) and e.joules_net == pytest.approx(4.0)
    assert e.mj_per_inference == pytest.approx(40.0)  # 4 J over 100 inferences
    assert (e.idle_w, e.busy_w, e.duration_s) == pytest.approx((1.0, 3.0, 2.0))
    assert e.meaningful and e.rate_hz == pytest.approx(10.0) and e.samples == 21
    charging = energy_per_inference(idle, busy, 100, "Charging")
    assert charging.mj_per_inference == pytest.approx(40.0) and not charging.meaningful
    assert "Charging" in charging.note
    flat = energy_per_inference(idle, _series(10, 2, 10, 250_000), 100, "Discharging")
    assert not flat.meaningful and "idle" in flat.note
    assert energy_per_inference(idle, busy[:1], 100, "Discharging").mj_per_inference is None


def test_rounds_pool_by_energy_and_inferences_not_by_averaging_rates():
    idle = _series(0, 1, 10, 250_000)
    a = energy_per_inference(idle, _series(0, 1, 10, 500_000), 10, "Discharging").to_dict()
    b = energy_per_inference(idle, _series(0, 3, 10, 500_000), 90, "Discharging").to_dict()
    pooled = pool_energy([a, b])
    # (1 J + 3 J net) over 100 inferences = 40 mJ (the mean of 100 and 33.3 would be 66.7)
    assert pooled["mj_per_inference"] == pytest.approx(40.0)
    assert pooled["inferences"] == 100 and pooled["meaningful"]


def test_sampler_lines_are_parsed_and_garbage_skipped():
    text = "12.50 -500000 4000000\n12.60 500000 4000000\nbroken line\n12.70 x 1\n"
    got = parse_samples(text)
    assert [s.t_s for s in got] == [12.5, 12.6] and got[0].watts == pytest.approx(2.0)


def test_energy_on_a_linux_board_without_a_battery_is_an_unsupported_row(
    variants, store_url, tmp_path
):
    env = os.environ | {"HARNESS_SYSFS": str(tmp_path / "no-battery")}
    proc = harness(
        "run", variants.manifest_path.parent, "--variants", "int8", "--delegates", "xnnpack",
        "--energy", "--runs", "2", "--rounds", "1", "--store", store_url, "--json", env=env,
    )  # fmt: skip
    [cell] = assert_run_exit(proc)["cells"]
    assert cell["status"] == "unsupported" and cell["latency_us"]["median"] is None
    assert "no battery" in cell["reason"] and "current_now" in cell["reason"]


class _Shell:
    """Records the device commands unplugged() sends; dumpsys answers as told."""

    def __init__(self, exit_code: int = 0, said: str = ""):
        self.name, self.calls, self.exit_code, self.said = "phone", [], exit_code, said

    def run_in_workdir(self, argv, timeout):
        from harness.devices.base import ShellResult

        self.calls.append(argv)
        return ShellResult(self.exit_code, self.said, "")


def test_unplug_is_reset_even_when_the_run_fails():
    from harness.errors import HarnessError
    from harness.runners.benchmark_model.energy import unplugged

    device = _Shell()
    with pytest.raises(RuntimeError), unplugged(device, True):
        assert device.calls == [["dumpsys", "battery", "unplug"]]
        raise RuntimeError("a cell blew up")
    assert device.calls[-1] == ["dumpsys", "battery", "reset"]
    refusing = _Shell(exit_code=255, said="Can't find service: battery")
    refused = pytest.raises(HarnessError, match="refused `dumpsys battery unplug`")
    with refused, unplugged(refusing, True):
        pytest.fail("nothing runs on a device that refused")
    assert refusing.calls == [["dumpsys", "battery", "unplug"]]  # nothing to reset


def test_energy_figures_reach_the_html_report_and_markdown():
    """What the mJ rests on (idle and busy W, joules, rate, battery) is in both reports,
    and a charging cell's figure is marked with its reason; a run without --energy has
    no energy section at all."""
    from report.builders import ok

    from harness.report.energy_view import energy_rows
    from harness.report.html import run_html
    from harness.report.markdown import run_markdown
    from harness.report.svg import esc

    idle, busy = _series(0, 2, 10, 250_000), _series(10, 2, 10, 750_000)  # 1 W, 3 W
    on_battery = energy_per_inference(idle, busy, 100, "Discharging").to_dict()
    charging = energy_per_inference(idle, busy, 100, "Charging").to_dict()
    records = [
        ok("int8", "xnnpack", extra={"energy": on_battery}),
        ok("fp32", "xnnpack", extra={"energy": charging}),
    ]
    rows = energy_rows(records)
    assert rows[0][2:9] == ("40", "1.000", "3.000", "4", "100", "21 at 10.0 Hz", "Discharging")
    assert rows[1][2] == "40 ⁿ" and "not on battery alone" in rows[1][9]  # the charging one
    html, md = run_html("r", records), run_markdown("r", records)
    assert "energy per inference" in html
    assert all(f"<td>{esc(x)}</td>" in html for x in rows[0] + rows[1])
    assert all(f"| {' | '.join(r)} |" in md for r in rows)
    plain = [ok()]
    assert "energy per inference" not in run_html("r", plain)
    assert "mJ / inference" not in run_markdown("r", plain)


def test_recommend_holds_cells_to_an_energy_budget():
    """--max-energy: the cheaper cell on battery qualifies; a charging cell's figure is
    not evidence (kept out), nor is a cell measured without --energy."""
    from report.builders import ok

    from harness.report.recommend import Budget, recommend

    idle = _series(0, 2, 10, 250_000)  # 1 W
    costly = energy_per_inference(idle, _series(10, 2, 10, 750_000), 100, "Discharging")
    cheap = energy_per_inference(idle, _series(10, 2, 10, 500_000), 100, "Discharging")
    charging = energy_per_inference(idle, _series(10, 2, 10, 300_000), 100, "Charging")
    records = [
        ok("fp32", "xnnpack", median=500, accuracy=0.99, extra={"energy": costly.to_dict()}),
        ok("int8", "xnnpack", median=900, accuracy=0.97, extra={"energy": cheap.to_dict()}),
        ok("fp16", "xnnpack", median=700, accuracy=0.98, extra={"energy": charging.to_dict()}),
        ok("dynamic", "xnnpack", median=600, accuracy=0.98),
    ]
    assert (costly.mj_per_inference, cheap.mj_per_inference) == pytest.approx((40.0, 20.0))
    [pick] = recommend(records, Budget(1e6, max_energy_mj=30))
    assert pick.best.cell.variant == "int8" and pick.eligible == 1
    assert pick.best.to_dict()["energy_mj"] == pytest.approx(20.0)
    [unbounded] = recommend(records, Budget(1e6))
    assert unbounded.eligible == 4  # without the budget energy changes nothing
    [none] = recommend(records, Budget(1e6, max_energy_mj=5))
    assert not none.met and "5 mJ per inference or less" in " ".join(none.notes)
    with pytest.raises(HarnessError, match="energy budget must be positive"):
        Budget(1e6, max_energy_mj=0)
