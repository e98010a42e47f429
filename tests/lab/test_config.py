"""The lab file: typed values, and every mistake as one line naming its place (exit 2)."""

from __future__ import annotations

import pytest
from cli_helpers import assert_user_error, harness

from harness.lab.config import LabConfigError, load_lab_config

from .conftest import write_lab

GOOD = """\
name = "nightly"
store = "sqlite:///results.db"
baseline = "tag:golden"
devices = ["local", "127.0.0.1:5601", { avd = "Pixel_7" }]
delegates = ["cpu", "xnnpack", "nnapi"]
threads = [1, 4]
eval = "eval.npz"

[timing]
runs = 5
warmup = 1
rounds = 3
cell_timeout_s = 30

[compare]
latency_threshold = "3%"
accuracy_threshold = 0.25

[[models]]
source = "m.tflite"

[[models]]
source = "net.keras"
variants = ["fp32", "int8"]
calibration = "cal.npz"
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "other").mkdir()
    for name in ("m.tflite", "net.keras", "cal.npz", "eval.npz", "other/m.tflite"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_a_good_file_becomes_typed_values(files):
    cfg = load_lab_config(write_lab(files, GOOD))
    assert cfg.name == "nightly" and cfg.baseline == "tag:golden"
    assert [d.label for d in cfg.devices] == ["local", "127.0.0.1:5601", "avd:Pixel_7"]
    assert cfg.delegates == ("cpu", "xnnpack", "nnapi") and cfg.threads == (1, 4)
    assert (cfg.timing.runs, cfg.timing.warmup, cfg.timing.rounds) == (5, 1, 3)
    assert cfg.timing.cell_timeout_s == 30
    assert cfg.compare.latency_threshold == pytest.approx(0.03)
    assert cfg.compare.accuracy_threshold_pp == 0.25
    m0, m1 = cfg.models
    assert (m0.name, m0.source, m0.eval_path) == ("m", files / "m.tflite", files / "eval.npz")
    assert (m1.name, m1.variants, m1.calibration) == ("net", ("fp32", "int8"), files / "cal.npz")
    assert cfg.night_tag("2026-05-01") == "lab:nightly:2026-05-01"


def test_defaults(files):
    cfg = load_lab_config(write_lab(files, '[[models]]\nsource = "m.tflite"\n', "mini.toml"))
    assert cfg.name == "mini" and cfg.baseline == "previous"
    assert [d.label for d in cfg.devices] == ["local"] and cfg.delegates == ("cpu", "xnnpack")


BAD = [
    ("name = \n", "line 1", "TOML syntax error"),
    ('colour = "red"\n' + GOOD.split("\n", 1)[1], "colour: unknown key", "allowed:"),
    (
        GOOD.replace('source = "m.tflite"', 'source = "x.keras"'),
        "models[0].source: file not found: x.keras",
        "",
    ),
    (
        GOOD.replace('calibration = "cal.npz"', 'calibration = "nope.npz"'),
        "models[1].calibration: file not found: nope.npz",
        "",
    ),
    (GOOD.replace('"nnapi"]', '"tpu"]'), "delegates: unknown delegate 'tpu'", "choose from"),
    (GOOD.replace("threads = [1, 4]", 'threads = ["1"]'), "threads: must be a non-empty", ""),
    (GOOD.replace("runs = 5", "runs = 0"), "timing.runs: must be an integer >= 1", ""),
    (GOOD.replace("runs = 5", "runs = true"), "timing.runs: must be an integer", ""),
    (GOOD.replace("rounds = 3", "round = 3"), "timing.round: unknown key", ""),
    (GOOD.replace('"3%"', '"fast"'), "compare.latency_threshold:", "percentage"),
    (GOOD.replace('"tag:golden"', '"yesterday"'), "baseline: must be previous", ""),
    (GOOD.replace('{ avd = "Pixel_7" }', '"local"'), "devices[2]: device 'local'", "twice"),
    (GOOD.replace('{ avd = "Pixel_7" }', "{ avd = 7 }"), "devices[2].avd: must be a string", ""),
    (
        GOOD.replace('variants = ["fp32", "int8"]', 'variants = ["fp64"]'),
        "models[1].variants: unknown variant 'fp64'",
        "",
    ),
    (GOOD.replace('calibration = "cal.npz"\n', ""), "models[1].calibration:", "int8"),
    (
        GOOD.replace('source = "net.keras"', 'source = "other/m.tflite"'),
        "models[1].source: model name 'm' is already used by models[0]",
        "",
    ),
    (
        GOOD.replace('[[models]]\nsource = "m.tflite"\n', '[[models]]\nvariants = ["fp32"]\n'),
        "models[0].source: missing",
        "",
    ),
    (
        "\n".join(
            ln
            for ln in GOOD.splitlines()
            if "models" not in ln
            and "source" not in ln
            and "variants" not in ln
            and "calibration" not in ln
        ),
        "models: missing",
        "",
    ),
]


@pytest.mark.parametrize(("body", "place", "word"), BAD, ids=[b[1][:30] for b in BAD])
def test_each_mistake_is_one_line_naming_its_place(files, body, place, word):
    path = write_lab(files, body)
    with pytest.raises(LabConfigError) as info:
        load_lab_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert place in msg and word in msg


def test_batch_and_concurrency_are_sweep_axes_of_the_lab(files):
    axes = "threads = [1]\nbatch = [1, 8]\nconcurrency = [1, 4]"
    cfg = load_lab_config(write_lab(files, GOOD.replace("threads = [1, 4]", axes)))
    assert (cfg.batches, cfg.concurrency, cfg.load) == ((1, 8), (1, 4), True)
    plain = load_lab_config(write_lab(files, GOOD))
    assert (plain.batches, plain.concurrency, plain.load) == ((1,), (1,), False)
    for line, place in [
        ("batch = [0]", "batch: must be a non-empty array of positive"),
        ("concurrency = [65]", "concurrency: 65 is above the limit of 64"),
    ]:
        with pytest.raises(LabConfigError, match=place):
            load_lab_config(write_lab(files, GOOD.replace("threads = [1, 4]", line)))


def test_the_cli_exits_2_with_one_line(files):
    path = write_lab(files, GOOD.replace('source = "m.tflite"', 'source = "x.keras"'))
    line = assert_user_error(harness("lab", "run", path), "models[0].source: file not found")
    assert str(path) in line
    assert_user_error(harness("lab", "run", files / "absent.toml"), "lab file not found")


def test_models_choose_metrics_and_compare_takes_a_metric_threshold(files):
    text = GOOD.replace(
        'calibration = "cal.npz"', 'calibration = "cal.npz"\nmetrics = ["auc", "f1:threshold=0.3"]'
    ).replace("accuracy_threshold = 0.25", "accuracy_threshold = 0.25\nmetric_threshold = 1.5")
    cfg = load_lab_config(write_lab(files, text))
    assert cfg.models[1].metrics == ("auc", "f1:threshold=0.3") and cfg.models[0].metrics == ()
    assert cfg.compare.metric_threshold == 1.5
    bad = GOOD.replace('calibration = "cal.npz"', 'calibration = "cal.npz"\nmetrics = ["top2"]')
    with pytest.raises(LabConfigError, match=r"models\[1\]\.metrics: unknown metric 'top2'"):
        load_lab_config(write_lab(files, bad))


def test_sustained_energy_and_unplug_are_how_every_cell_is_measured(files):
    keys = 'threads = [1]\nsustained = "5m"\nenergy = true\nunplug = true'
    cfg = load_lab_config(write_lab(files, GOOD.replace("threads = [1, 4]", keys)))
    assert (cfg.sustained_s, cfg.energy, cfg.unplug) == (300.0, True, True)
    assert cfg.runner_options["energy"] is True and cfg.runner_options["unplug"] is True
    assert load_lab_config(write_lab(files, GOOD.replace("[timing]", "sustained = 90\n[timing]")))
    plain = load_lab_config(write_lab(files, GOOD))
    assert (plain.sustained_s, plain.energy, plain.unplug, plain.runner_options) == (
        None,
        False,
        False,
        {},  # as the lab stored before the keys existed: old nights meet new ones
    )
    # unplug alone is taken, as `harness run --unplug` takes it without --energy
    alone = load_lab_config(write_lab(files, GOOD.replace("[timing]", "unplug = true\n[timing]")))
    assert (alone.energy, alone.unplug) == (False, True)


def test_sustained_sets_the_timing_as_harness_run_does(files):
    from harness.lab.prepare import timing_config

    timed = GOOD.replace("[timing]", 'sustained = "10m"\n[timing]')
    t = timing_config(load_lab_config(write_lab(files, timed)))
    # one long round per cell, the watchdog above the cell's length, the job bound from
    # the cells (a fixed hour would kill a night of several 10-minute cells)
    assert (t.rounds, t.cell_timeout_s, t.timeout_s) == (1, 720.0, None)
    longer = timed.replace("cell_timeout_s = 30", "cell_timeout_s = 900")
    assert timing_config(load_lab_config(write_lab(files, longer))).cell_timeout_s == 900.0
    plain = timing_config(load_lab_config(write_lab(files, GOOD)))
    assert (plain.rounds, plain.cell_timeout_s, plain.timeout_s) == (3, 30.0, 3600.0)


SUSTAINED_BAD = [
    ('sustained = "5s"', "sustained: '5s' must be from 10s to 24h"),
    ('sustained = "25h"', "sustained: '25h' must be from 10s to 24h"),
    ('sustained = "soon"', "sustained: 'soon' must be from 10s to 24h"),
    ("sustained = true", 'sustained: must be a duration like "5m"'),
    ('sustained = "5m"\nconcurrency = [1, 4]', "sustained: runs one instance per cell: drop"),
    ('sustained = "5m"\nconcurrency = [1]', "sustained: runs one instance per cell: drop"),
    ('energy = "yes"', "energy: must be true or false, got a string"),
    ("unplug = 1", "unplug: must be true or false, got an integer"),
]


@pytest.mark.parametrize(("line", "place"), SUSTAINED_BAD, ids=[b[0] for b in SUSTAINED_BAD])
def test_bad_sustained_energy_or_unplug_is_one_line(files, line, place):
    path = write_lab(files, GOOD.replace("[timing]", f"{line}\n[timing]"))
    with pytest.raises(LabConfigError) as info:
        load_lab_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and place in msg, msg


def test_a_bad_sustained_or_energy_exits_2_through_the_cli(files):
    for line, word in [('sustained = "5s"', "sustained: '5s'"), ('energy = "yes"', "energy:")]:
        path = write_lab(files, GOOD.replace("[timing]", f"{line}\n[timing]"))
        assert str(path) in assert_user_error(harness("lab", "run", path), word)
