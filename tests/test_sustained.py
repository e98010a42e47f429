"""--sustained: window series, throttling onset and steady-state ratio on known series, the
sysfs sampler on a fake tree, and a short real run through the CLI."""

from __future__ import annotations

import json
import os

import pytest
from cli_helpers import assert_user_error, harness

from harness.measure.sustained import analyse, steady_ratio, window_series


def _windows(medians: list[float]) -> list[dict]:
    return [{"t_s": float(i + 1), "median_us": m} for i, m in enumerate(medians)]


def test_steady_ratio_is_last_minute_over_first_ten_seconds():
    # 5 minutes: 100 µs for the first minute, 130 µs for the rest
    ws = _windows([100.0] * 60 + [130.0] * 240)
    assert steady_ratio(ws) == pytest.approx(1.30)
    # a short run: its second half over its first 10 s
    assert steady_ratio(_windows([100.0] * 10 + [150.0] * 10)) == pytest.approx(1.5)
    assert steady_ratio(_windows([100.0])) is None


def test_the_onset_is_the_step_up_and_only_a_lasting_one():
    noise = [0.0, 0.4, -0.3, 0.2, -0.1]
    flat_then_hot = [100 + noise[i % 5] for i in range(40)] + [
        125 + noise[i % 5] for i in range(80)
    ]
    got = analyse(_windows(flat_then_hot))
    assert got["onset"]["index"] == 40 and got["onset"]["t_s"] == 40.0
    assert got["onset"]["change"] == pytest.approx(0.25, abs=0.01)
    assert got["steady_ratio"] == pytest.approx(1.25, abs=0.01)
    # a step up that came back down: the steady state is no slower, so no onset
    blip = [100.0] * 20 + [130.0] * 10 + [100.0] * 30
    assert analyse(_windows(blip))["onset"] is None
    # faster later (a warm cache, a governor ramping up) is not throttling either
    assert analyse(_windows([120.0] * 20 + [100.0] * 40))["onset"] is None


def test_window_series_keeps_figures_and_refuses_garbage():
    raw = {
        "duration_s": 2,
        "window_s": 1,
        "missing": ["thermal_zone*/temp"],
        "windows": [
            {"t_s": 1.0, "n": 6, "invoke_us": [5, 1, 3, 2, 4], "freq_khz": [1, 2], "temp_c": None},
            {"t_s": 2.0, "n": 2, "invoke_us": [7, 9], "freq_khz": None, "temp_c": 41.5},
        ],
    }
    s = window_series(raw)
    assert [w["median_us"] for w in s["windows"]] == [3.0, 8.0]
    assert [(w["n"], w["kept"]) for w in s["windows"]] == [(6, 5), (2, 2)]
    assert s["windows"][1]["temp_c"] == 41.5 and s["missing"] == ["thermal_zone*/temp"]
    assert window_series({"windows": [{"invoke_us": ["x"]}]}) is None
    assert window_series({"windows": "no"}) is None


def test_sysfs_sampler_reads_the_fake_tree(tmp_path):
    from device_scripts.runner import Sysfs

    _fake_sysfs(tmp_path, freqs=(1200000, 1800000), temps=(45000, 51500))
    got = Sysfs(str(tmp_path)).sample()
    assert got == {"freq_khz": [1200000, 1800000], "temp_c": 51.5}
    bare = Sysfs(str(tmp_path / "none"))
    assert bare.sample() == {"freq_khz": None, "temp_c": None}
    assert bare.missing == ["cpufreq/scaling_cur_freq", "thermal_zone*/temp"]


def _fake_sysfs(root, freqs, temps) -> None:
    for i, f in enumerate(freqs):
        d = root / f"devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{f}\n")
    for i, t in enumerate(temps):
        d = root / f"class/thermal/thermal_zone{i}"
        d.mkdir(parents=True)
        (d / "temp").write_text(f"{t}\n")


@pytest.mark.parametrize("value", ["5s", "9.5", "abc", "0"])
def test_sustained_shorter_than_ten_seconds_is_one_line(variants, store_url, value):
    proc = harness("run", variants.manifest_path.parent, "--sustained", value, "--store", store_url)
    assert_user_error(proc, "--sustained", "10s")


@pytest.mark.slow
def test_sustained_run_on_a_fake_sysfs(variants, store_url, tmp_path):
    """Ten 1 s windows of the int8 digits CNN through the CLI, the runner reading CPU
    frequencies and the hottest zone from a fake sysfs tree ($HARNESS_SYSFS, as the
    daemon presents one); the same run on a device without them still has its latency
    series and says what is missing, in the table and the HTML report."""
    _fake_sysfs(tmp_path / "sys", freqs=(1200000, 1800000), temps=(45000, 51500))
    env = os.environ | {"HARNESS_SYSFS": str(tmp_path / "sys")}
    args = ["run", variants.manifest_path.parent, "--variants", "int8", "--delegates",
            "xnnpack", "--sustained", "10s", "--store", store_url]  # fmt: skip
    proc = harness(*args, "--json", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    [cell] = json.loads(proc.stdout)["cells"]
    s = cell["extra"]["sustained"]
    assert cell["status"] == "ok" and len(s["windows"]) == 10 and s["missing"] == []
    assert all(w["freq_khz"] == [1200000, 1800000] and w["temp_c"] == 51.5 for w in s["windows"])
    times = [w["t_s"] for w in s["windows"]]
    assert times == sorted(times) and 9.9 <= times[-1] < 12
    assert cell["latency_us"]["n"] == sum(w["kept"] for w in s["windows"])
    assert s["steady_ratio"] is not None

    bare = os.environ | {"HARNESS_SYSFS": str(tmp_path / "nothing")}
    shown = harness(*args, env=bare, timeout=600)
    assert shown.returncode == 0, shown.stderr
    assert "sustained 10 s" in shown.stdout and "has no cpufreq" in " ".join(shown.stdout.split())
    run_id = shown.stdout.strip().split()[-1]
    html = tmp_path / "r.html"
    rep = harness("report", run_id, "--html", html, "--store", store_url)
    assert rep.returncode == 0, rep.stderr
    page = html.read_text()
    assert 'class="chart sustained"' in page and "median latency" in page
    assert "hottest zone" not in page  # nothing to draw on a device without the files
