"""`harness run --eval DIR --preprocess ...` end to end on the real digits CNN: the held-out
digits written as upscaled PNG files with a labels CSV give the accuracy the .npz gives,
the recipe is recorded in the run, the prepared inputs come from the cache the second
time, and bad image sets are one line and exit 2 before any device time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, harness
from PIL import Image

from harness.store.store import Store

RUN = ("--device", "local", "--delegates", "xnnpack", "--threads", "1", "--runs", "4",
       "--rounds", "2", "--warmup", "1")  # fmt: skip
UPSCALE = 4  # 8x8 digits saved as 32x32 PNGs: the recipe must bring them back to 8x8
# 0..255 PNG pixels -> the [0, 1] floats models/digits.py trains on, from 32x32 by
# averaging each 4x4 block (exact for a nearest-upscaled image)
RECIPE = "resize=8,resample=box,mean=0,std=255"


@pytest.fixture(scope="module")
def digit_pngs(digits, tmp_path_factory):
    """The held-out digits of eval.npz as grey 32x32 PNG files plus labels.csv."""
    root = tmp_path_factory.mktemp("digit-pngs")
    with np.load(digits / "eval.npz") as npz:
        x, y = npz["x"], npz["y"]
    rows = ["file,label"]
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        pixels = np.round(img[..., 0] * 255).astype(np.uint8)
        big = np.kron(pixels, np.ones((UPSCALE, UPSCALE), np.uint8))
        Image.fromarray(big).save(root / f"digit_{i:04d}.png")
        rows.append(f"digit_{i:04d}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def run_json(*args) -> dict:
    proc = harness("run", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def accuracies(doc: dict) -> dict[str, float]:
    return {c["variant"]: c["accuracy"] for c in doc["cells"] if c["status"] == "ok"}


def test_image_directory_matches_the_npz_accuracy_and_records_its_recipe(
    variants, digits, digit_pngs, store_url, tmp_path
):
    model = variants.manifest_path.parent
    common = (model, *RUN, "--variants", "fp32,int8", "--store", store_url)
    by_npz = run_json(*common, "--eval", digits / "eval.npz")
    (tmp_path / "prep.toml").write_text(
        '[preprocess]\nresize = 8\nresample = "box"\nmean = 0\nstd = 255\n'
    )
    by_dir = run_json(*common, "--eval", digit_pngs, "--preprocess", tmp_path / "prep.toml")

    npz_acc, dir_acc = accuracies(by_npz), accuracies(by_dir)
    print("accuracy npz", npz_acc, "image dir", dir_acc)
    assert set(npz_acc) == set(dir_acc) == {"fp32", "int8"}
    with np.load(digits / "eval.npz") as npz:
        n = len(npz["y"])
    for variant in npz_acc:
        # the PNGs hold 8-bit pixels: x differs from the .npz by at most 0.5/255, which
        # may flip a borderline sample or two, never more
        assert abs(npz_acc[variant] - dir_acc[variant]) <= 2 / n + 1e-9, (npz_acc, dir_acc)
    assert dir_acc["fp32"] > 0.9

    config = Store(store_url).get_run(by_dir["run_id"]).config
    prov = config["eval_data"]
    assert prov["format"] == "images" and prov["n"] == n
    assert prov["recipe"]["resize"] == [8] and prov["recipe"]["std"] == [255.0]
    assert prov["recipe"]["resample"] == "box" and prov["layout"] == "nhwc"
    assert config["preprocess"]["resample"] == "box"  # what --resume rebuilds the run from
    assert Store(store_url).get_run(by_npz["run_id"]).config["eval_data"]["format"] == "npz"
    # the prepared inputs are the .npz's images, to the 8-bit rounding of the PNGs
    with np.load(prov["cache_file"]) as cached, np.load(digits / "eval.npz") as npz:
        assert cached["x"].shape == npz["x"].shape and cached["x"].dtype == np.float32
        assert np.abs(cached["x"] - npz["x"]).max() <= 0.5 / 255 + 1e-6
        assert np.array_equal(cached["y"], npz["y"])


def test_second_run_takes_the_cached_inputs(variants, digit_pngs, store_url):
    model = variants.manifest_path.parent
    args = (model, *RUN, "--variants", "fp32", "--eval", digit_pngs, "--preprocess", RECIPE)
    first = run_json(*args, "--store", store_url)
    store = Store(store_url)
    cache = store.get_run(first["run_id"]).config["eval_data"]["cache_file"]
    before = Path(cache).stat()
    second = run_json(*args, "--store", store_url)
    prov = store.get_run(second["run_id"]).config["eval_data"]
    after = Path(cache).stat()
    # the same file, not rewritten: nothing was decoded or preprocessed again
    assert prov["cache_file"] == cache
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert accuracies(first) == accuracies(second)


def test_int8_input_model_takes_the_image_set_quantised_on_the_device(
    int8_io, digits, digit_pngs, store_url
):
    model = int8_io.manifest_path.parent
    by_npz = run_json(model, *RUN, "--eval", digits / "eval.npz", "--store", store_url)
    by_dir = run_json(
        model, *RUN, "--eval", digit_pngs, "--preprocess", RECIPE, "--store", store_url
    )
    with np.load(digits / "eval.npz") as npz:
        n = len(npz["y"])
    assert abs(accuracies(by_npz)["int8"] - accuracies(by_dir)["int8"]) <= 2 / n + 1e-9
    assert accuracies(by_dir)["int8"] > 0.9


@pytest.fixture
def small_pngs(digits, tmp_path):
    """Five digits as 8x8 PNGs: a set each bad-input case then spoils."""
    root = tmp_path / "pngs"
    root.mkdir()
    with np.load(digits / "eval.npz") as npz:
        x, y = npz["x"][:5], npz["y"][:5]
    rows = ["file,label"]
    for i, img in enumerate(x):
        Image.fromarray(np.round(img[..., 0] * 255).astype(np.uint8)).save(root / f"d{i}.png")
        rows.append(f"d{i}.png,{y[i]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _labels(text):
    return lambda r: (r / "labels.csv").write_text(text)


@pytest.mark.parametrize(
    "spoil, recipe, words",
    [
        (lambda r: (r / "d3.png").write_bytes(b"GIF89a broken"), "std=255",
         ["d3.png", "decodable"]),
        (lambda r: (r / "d1.png").unlink(), "std=255", ["d1.png", "not found"]),
        (_labels("file,label\nd0.png,1\nd1.png,2\n"), "std=255", ["no label", "2 labels for 5"]),
        (_labels("file,label\nd0.png,one\nd1.png,2\nd2.png,3\nd3.png,4\nd4.png,5\n"), "std=255",
         ["'one'", "not a number"]),
        (_labels("d0.png,1\n"), "std=255", ["header 'file,label'"]),
        (_labels("file,label\nd0.png;1\n"), "std=255", ["labels.csv:2", "'file,label'"]),
        (lambda r: None, "std=255,flip=1", ["unknown preprocessing key 'flip'"]),
        (lambda r: None, "std=255,order=grb", ["order", "rgb, bgr"]),
        (lambda r: None, "resize=-3", ["resize", "N or WxH"]),
        (lambda r: None, "crop=16", ["crop 16x16 is larger"]),
    ],
)  # fmt: skip
def test_bad_image_sets_are_one_line_exit_2_and_store_nothing(
    variants, small_pngs, store_url, spoil, recipe, words
):
    spoil(small_pngs)
    model = variants.manifest_path.parent
    # --device names a device that cannot be opened: the error must come before it is tried
    proc = harness(
        "run", model, "--device", "127.0.0.1:9", "--eval", small_pngs, "--preprocess", recipe,
        "--store", store_url,
    )  # fmt: skip
    assert_user_error(proc, *words)
    assert Store(store_url).list_runs() == []


def test_float_labels_for_top1_are_refused_before_the_device(variants, small_pngs, store_url):
    (small_pngs / "labels.csv").write_text(
        "file,label\n" + "".join(f"d{i}.png,{i}.5\n" for i in range(5))
    )
    proc = harness(
        "run", variants.manifest_path.parent, "--device", "127.0.0.1:9",
        "--eval", small_pngs, "--preprocess", "std=255", "--store", store_url,
    )  # fmt: skip
    assert_user_error(proc, "label")
