"""Image eval sets on the host: each preprocessing step on small known arrays, the recipe
parser, the content-hash cache, and bad inputs as one HarnessError line each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.convert.tflite_info import TensorSpec
from harness.data import images
from harness.data.images import (
    Target,
    cast,
    center_crop,
    channel_order,
    decode,
    normalize,
    prepare_eval,
    resize,
    target_for,
    to_layout,
)
from harness.data.recipe import Recipe, load_recipe
from harness.errors import HarnessError


def spec(*dims: int, dtype: str = "float32") -> TensorSpec:
    return TensorSpec("image", (1, *dims), (-1, *dims), dtype)


# --- the steps, on arrays whose answer is known ------------------------------------


def test_decode_gives_rgb_or_luma_grey(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(decode(tmp_path / "a.png", 3), rgb)
    grey = decode(tmp_path / "a.png", 1)
    assert grey.shape == (2, 2, 1)
    # Pillow's ITU-R 601 luma: L = R*299/1000 + G*587/1000 + B*114/1000
    assert grey[0, 0, 0] == 76 and grey[0, 1, 0] == 150 and grey[1, 0, 0] == 29


def test_resize_shorter_side_keeps_aspect_and_wxh_is_exact():
    pixels = np.zeros((40, 80, 3), np.uint8)
    assert resize(pixels, (20,), "bilinear").shape == (20, 40, 3)  # shorter side (h) -> 20
    assert resize(pixels.transpose(1, 0, 2), (20,), "bilinear").shape == (40, 20, 3)
    assert resize(pixels, (10, 30), "bilinear").shape == (30, 10, 3)  # W x H


def test_resize_box_averages_blocks_and_nearest_repeats():
    block = np.array([[0, 4], [8, 12]], np.uint8)[..., None]  # 2x2 grey
    up = resize(block, (4, 4), "nearest")
    assert np.array_equal(up[..., 0], np.kron(block[..., 0], np.ones((2, 2), np.uint8)))
    assert np.array_equal(resize(up, (2, 2), "box"), block)  # the 2x2 blocks averaged back
    assert resize(up, (1, 1), "box")[0, 0, 0] == 6  # mean of 0, 4, 8, 12


def test_center_crop_takes_the_middle_window():
    pixels = np.arange(5 * 6).reshape(5, 6, 1).astype(np.uint8)
    out = center_crop(pixels, (2, 3))  # w=2, h=3
    assert out.shape == (3, 2, 1)
    assert np.array_equal(out[..., 0], [[8, 9], [14, 15], [20, 21]])
    with pytest.raises(HarnessError, match="larger than the image"):
        center_crop(pixels, (7, 2))


def test_normalize_per_channel_and_scalar():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    out = normalize(pixels, (127.5,), (127.5,))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [-1.0, 0.5 / 127.5, 1.0], rtol=1e-6)
    out = normalize(pixels, (0.0, 128.0, 255.0), (1.0, 2.0, 5.0))
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.0])
    with pytest.raises(HarnessError, match="3 values"):
        normalize(np.zeros((1, 1, 1), np.uint8), (1.0, 2.0, 3.0), (1.0,))


def test_channel_order_and_layout():
    x = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], np.float32)  # H=1, W=2, C=3
    assert np.array_equal(channel_order(x, "bgr")[0, 1], [6.0, 5.0, 4.0])
    assert channel_order(x, "rgb") is x
    grey = np.ones((2, 2, 1), np.float32)
    assert channel_order(grey, "bgr").shape == (2, 2, 1)
    chw = to_layout(x, "nchw")
    assert chw.shape == (3, 1, 2) and np.array_equal(chw[:, 0, 1], [4.0, 5.0, 6.0])
    assert to_layout(x, "nhwc") is x


def test_cast_rounds_integers_and_refuses_what_does_not_fit():
    x = np.array([0.4, 1.6, 254.5, -0.4], np.float32)
    assert np.array_equal(cast(x, "uint8"), np.array([0, 2, 254, 0], np.uint8))
    assert cast(x, "float16").dtype == np.float16
    with pytest.raises(HarnessError, match="int8"):
        cast(np.array([200.0]), "int8")


def test_target_layout_from_the_model_or_the_recipe():
    assert target_for(spec(8, 8, 1), Recipe()) == Target(8, 8, 1, "nhwc")
    assert target_for(spec(3, 224, 200), Recipe()) == Target(224, 200, 3, "nchw")
    assert target_for(spec(3, 3, 3), Recipe(layout="nchw")).layout == "nchw"
    assert target_for(spec(-1, -1, 3), Recipe()) == Target(None, None, 3, "nhwc")
    with pytest.raises(HarnessError, match="channels"):
        target_for(spec(8, 8, 5), Recipe())
    with pytest.raises(HarnessError, match="H, W, C"):
        target_for(spec(30), Recipe())


# --- the recipe --------------------------------------------------------------------


def test_recipe_from_flags_and_toml_agree(tmp_path):
    flags = load_recipe("resize=256,crop=224,mean=123.7/116.3/103.5,std=58.4,order=BGR")
    (tmp_path / "prep.toml").write_text(
        "[preprocess]\nresize = 256\ncrop = [224, 224]\nmean = [123.7, 116.3, 103.5]\n"
        'std = 58.4\norder = "bgr"\n'
    )
    assert load_recipe(str(tmp_path / "prep.toml")) == flags
    assert flags.resize == (256,) and flags.crop == (224, 224) and flags.order == "bgr"
    assert flags.mean == (123.7, 116.3, 103.5) and flags.std == (58.4,)
    # what --resume rebuilds from the run's stored (JSON) config
    assert Recipe.from_dict(json.loads(json.dumps(flags.to_dict()))) == flags
    assert load_recipe("resize=32x24,dtype=float16").resize == (32, 24)
    assert load_recipe(None) is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("size=224", ["unknown preprocessing key 'size'"]),
        ("resize=0", ["resize", "N or WxH"]),
        ("resize=abc", ["resize"]),
        ("crop=3x4x5", ["crop"]),
        ("mean=1/2", ["mean", "three"]),
        ("std=0", ["std", "0"]),
        ("order=rbg", ["order", "rgb, bgr"]),
        ("layout=hwc", ["layout"]),
        ("dtype=int64", ["dtype"]),
        ("resample=cubic", ["resample"]),
        ("resize", ["KEY=VALUE"]),
        ("resize=8,resize=9", ["twice"]),
    ],
)
def test_bad_recipe_flags_are_one_line(text, words):
    with pytest.raises(HarnessError) as err:
        load_recipe(text)
    assert "\n" not in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_bad_recipe_files_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("resize = true\n")
    with pytest.raises(HarnessError, match="resize"):
        load_recipe(str(bad))
    bad.write_text("resize = [\n")
    with pytest.raises(HarnessError, match="not a readable TOML"):
        load_recipe(str(bad))
    with pytest.raises(HarnessError, match="not found"):
        load_recipe(str(tmp_path / "missing.toml"))


# --- a directory: (x, y), the cache, bad inputs ------------------------------------


def write_set(root, arrays, labels, header="file,label"):
    root.mkdir(parents=True, exist_ok=True)
    rows = [header]
    for i, (a, label) in enumerate(zip(arrays, labels, strict=True)):
        Image.fromarray(a).save(root / f"img{i}.png")
        rows.append(f"img{i}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def small_set(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    return write_set(tmp_path / "set", arrays, [2, 0, 1]), arrays


def test_a_directory_becomes_the_x_and_y_of_the_recipe(tmp_path):
    root, arrays = small_set(tmp_path)
    recipe = Recipe(crop=(4, 4), mean=(127.5,), std=(127.5,), order="bgr", layout="nchw")
    prepared = prepare_eval(root, recipe, spec(3, 4, 4))
    with np.load(prepared.npz) as npz:
        x, y = npz["x"], npz["y"]
    assert y.dtype == np.int64 and y.tolist() == [2, 0, 1]
    assert x.shape == (3, 3, 4, 4) and x.dtype == np.float32
    want = (arrays[1][1:5, 2:6, ::-1].astype(np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(x[1], want.transpose(2, 0, 1), rtol=1e-6)
    p = prepared.provenance
    assert p["format"] == "images" and p["n"] == 3 and p["recipe"]["order"] == "bgr"
    assert p["recipe"]["crop"] == (4, 4) and p["layout"] == "nchw"
    assert prepared.npz.parent == images.cache_dir() and prepared.npz.stem == p["sha256"]


def test_labels_csv_path_works_like_its_directory(tmp_path):
    root, _ = small_set(tmp_path)
    by_dir = prepare_eval(root, None, spec(6, 8, 3))
    by_csv = prepare_eval(root / "labels.csv", None, spec(6, 8, 3))
    assert by_dir.npz == by_csv.npz


def test_float_labels_are_regression_targets(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (2, 2), dtype=np.uint8) for _ in range(2)]
    root = write_set(tmp_path / "reg", arrays, ["0.5", "-3"])
    with np.load(prepare_eval(root, None, spec(2, 2, 1)).npz) as npz:
        assert npz["y"].dtype == np.float64 and npz["y"].tolist() == [0.5, -3.0]


def test_second_prepare_reads_the_cache_and_decodes_nothing(tmp_path, monkeypatch):
    root, _ = small_set(tmp_path)
    first = prepare_eval(root, None, spec(6, 8, 3))
    mtime = first.npz.stat().st_mtime_ns

    def no_decoding(*_a, **_k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "decode", no_decoding)
    again = prepare_eval(root, None, spec(6, 8, 3))
    assert again.npz == first.npz and again.npz.stat().st_mtime_ns == mtime
    # a changed image, label or recipe is another key: built afresh (and decoded)
    monkeypatch.undo()
    other = prepare_eval(root, Recipe(std=(2.0,)), spec(6, 8, 3))
    assert other.npz != first.npz
    (root / "labels.csv").write_text("file,label\nimg0.png,1\nimg1.png,0\nimg2.png,1\n")
    assert prepare_eval(root, None, spec(6, 8, 3)).npz not in (first.npz, other.npz)


def test_recipe_with_an_npz_is_refused(tmp_path):
    np.savez(tmp_path / "e.npz", x=np.zeros((1, 2)))
    with pytest.raises(HarnessError, match="--preprocess applies"):
        prepare_eval(tmp_path / "e.npz", Recipe(), spec(2, 2, 1))
    assert prepare_eval(tmp_path / "e.npz", None, spec(2)).provenance["sha256"]


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda r: (r / "img1.png").write_bytes(b"\x89PNG not really"), ["img1.png", "decodable"]),
        (lambda r: (r / "img2.png").unlink(), ["labels.csv:4", "img2.png", "not found"]),
        (lambda r: (r / "labels.csv").write_text("img0.png,1\n"), ["header 'file,label'"]),
        (lambda r: (r / "labels.csv").write_text("name,class\nimg0.png,1\n"), ["header"]),
        (
            lambda r: (r / "labels.csv").write_text("file,label\nimg0.png,1,extra\n"),
            ["labels.csv:2", "'file,label'"],
        ),
        (
            lambda r: (r / "labels.csv").write_text("file,label\nimg0.png,\n"),
            ["labels.csv:2"],
        ),
        (
            lambda r: (r / "labels.csv").write_text(
                "file,label\nimg0.png,cat\nimg1.png,1\nimg2.png,0\n"
            ),
            ["'cat'", "not a number"],
        ),
        (
            lambda r: (r / "labels.csv").write_text("file,label\nimg0.png,1\nimg1.png,0\n"),
            ["no label", "img2.png", "2 labels for 3 images"],
        ),
        (
            lambda r: (r / "labels.csv").write_text("file,label\nimg0.png,1\nimg0.png,0\n"),
            ["labelled twice"],
        ),
        (lambda r: (r / "labels.csv").unlink(), ["labels file not found"]),
        (lambda r: (r / "labels.csv").write_text("file,label\n"), ["no labelled images"]),
    ],
)
def test_bad_image_sets_are_one_line(tmp_path, mutate, words):
    root, _ = small_set(tmp_path)
    mutate(root)
    with pytest.raises(HarnessError) as err:
        prepare_eval(root, None, spec(6, 8, 3))
    assert "\n" not in str(err.value)
    for w in words:
        assert w in str(err.value)


def test_images_of_the_wrong_size_say_how_to_fix_it(tmp_path):
    root, _ = small_set(tmp_path)
    with pytest.raises(HarnessError, match=r"img0.png: preprocessed to 8x6.*4x4.*resize="):
        prepare_eval(root, None, spec(4, 4, 3))
    prepared = prepare_eval(root, Recipe(resize=(4, 4)), spec(4, 4, 3))
    with np.load(prepared.npz) as npz:
        assert npz["x"].shape == (3, 4, 4, 3)
