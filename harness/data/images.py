"""A directory of images with a labels CSV, preprocessed on the host by a declared
recipe into the (x, y) an .npz eval file holds, and cached by content hash.

The runners only ever see an .npz: the prepared one is a file under the harness cache
dir (`$HARNESS_CACHE_DIR/eval/<sha256>.npz`), so Linux boards and Android get the same
samples, and a quantised input is still quantised on the device from its own tensor
parameters, exactly as for a user's .npz.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.convert.tflite_info import TensorSpec
from harness.data.recipe import Recipe
from harness.errors import HarnessError

LABELS_CSV = "labels.csv"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
# bump when a step changes what it produces: old cache entries then stop matching
PREP_VERSION = 1
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class PreparedEval:
    """The .npz the run uses, and where it came from (stored in the run's config)."""

    npz: Path
    provenance: dict


@dataclass(frozen=True)
class Target:
    """What one sample must look like for the model's first input."""

    height: int | None  # None: the model takes any size (dynamic dimension)
    width: int | None
    channels: int
    layout: str  # "nhwc" or "nchw"


def is_image_source(path: Path) -> bool:
    """A directory (holding labels.csv) or a labels .csv file: an image eval set."""
    return path.is_dir() or path.suffix.lower() == ".csv"


def prepare_eval(path: Path, recipe: Recipe | None, spec: TensorSpec) -> PreparedEval:
    """The .npz for `--eval PATH`: the file itself, or the cached result of the recipe
    applied to an image directory. Every mistake is one HarnessError line."""
    path = Path(path)
    if not is_image_source(path):
        if recipe is not None:
            raise HarnessError(
                f"--preprocess applies to an image directory or labels .csv, not {path}"
            )
        return PreparedEval(path, _npz_provenance(path))
    csv_path = path / LABELS_CSV if path.is_dir() else path
    rows = read_labels(csv_path)
    y = parse_labels([label for _, label, _ in rows], csv_path)
    files = _image_files(csv_path, rows)
    recipe = recipe or Recipe()
    target = target_for(spec, recipe)
    key = _content_key(csv_path, [name for name, _, _ in rows], files, recipe, target)
    out = cache_dir() / f"{key}.npz"
    if not out.is_file():  # a hit: same images, labels and recipe -> nothing decoded
        x = np.stack([preprocess_file(f, recipe, target) for f in files])
        _save_atomic(out, x, y)
    provenance = {
        "format": "images",
        "path": str(path),
        "labels": str(csv_path),
        "n": len(files),
        "sha256": key,
        "recipe": recipe.to_dict(),
        "layout": target.layout,
        "cache_file": str(out),
    }
    return PreparedEval(out, provenance)


def cache_dir() -> Path:
    """$HARNESS_CACHE_DIR/eval, else $XDG_CACHE_HOME/harness/eval (beside the variants)."""
    if env := os.environ.get("HARNESS_CACHE_DIR"):
        return Path(env) / "eval"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "harness" / "eval"


def read_labels(csv_path: Path) -> list[tuple[str, str, int]]:
    """(file, label text, line number) per row of a `file,label` CSV with that header."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # a BOM from spreadsheets is fine
    except FileNotFoundError:
        raise HarnessError(
            f"labels file not found: {csv_path} (an image eval set needs one)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{csv_path}: not a readable labels CSV ({exc})") from None
    lines = list(csv.reader(text.splitlines()))
    header = [h.strip().lower() for h in lines[0]] if lines else []
    if header != ["file", "label"]:
        raise HarnessError(f"{csv_path}: the first line must be the header 'file,label'")
    rows, seen = [], set()
    for number, row in enumerate(lines[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue  # blank lines (a trailing newline) are not rows
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise HarnessError(
                f"{csv_path}:{number}: a row must be 'file,label' with both set, not {row!r}"
            )
        name = row[0].strip()
        if name in seen:
            raise HarnessError(f"{csv_path}:{number}: {name} is labelled twice")
        seen.add(name)
        rows.append((name, row[1].strip(), number))
    if not rows:
        raise HarnessError(f"{csv_path}: no labelled images")
    return rows


def parse_labels(texts: list[str], csv_path: Path) -> np.ndarray:
    """Class ids (all integers) as int64, else regression targets as float64."""
    if all(_INT.match(t) for t in texts):
        return np.array([int(t) for t in texts], dtype=np.int64)
    values = []
    for i, t in enumerate(texts):
        try:
            v = float(t)
        except ValueError:
            v = float("nan")
        if not np.isfinite(v):
            raise HarnessError(
                f"{csv_path}: label {t!r} of row {i + 1} is not a number "
                "(labels are class ids or numeric targets)"
            )
        values.append(v)
    return np.array(values, dtype=np.float64)


def _image_files(csv_path: Path, rows: list[tuple[str, str, int]]) -> list[Path]:
    """The listed files (relative to the CSV's directory), each present, and no image in
    that directory without a label: one label per sample, as in an .npz."""
    root = csv_path.parent
    files = []
    for name, _, number in rows:
        f = root / name
        if not f.is_file():
            raise HarnessError(f"{csv_path}:{number}: {name} not found in {root}")
        files.append(f)
    listed = {f.resolve() for f in files}
    unlabelled = sorted(
        p.name
        for p in root.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in listed
    )
    if unlabelled:
        raise HarnessError(
            f"{csv_path}: {len(unlabelled)} image(s) in {root} have no label "
            f"(e.g. {unlabelled[0]}): {len(rows)} labels for {len(rows) + len(unlabelled)} images"
        )
    return files


def target_for(spec: TensorSpec, recipe: Recipe) -> Target:
    """The sample shape the model's first input takes, in the recipe's (or its own) layout."""
    dims = tuple(spec.shape_signature[1:])
    if len(dims) != 3:
        raise HarnessError(
            f"an image eval set needs a model input of [batch, H, W, C] or [batch, C, H, W], "
            f"not {list(spec.shape_signature)}"
        )
    layout = recipe.layout
    if layout == "auto":
        # channels first only when it is plainly so: a colour/grey count ahead, none last
        layout = "nchw" if dims[0] in (1, 3) and dims[2] not in (1, 3) else "nhwc"
    c, h, w = (dims[0], dims[1], dims[2]) if layout == "nchw" else (dims[2], dims[0], dims[1])
    if c not in (1, 3):
        raise HarnessError(
            f"the model's input {list(spec.shape_signature)} has {c} channels in {layout}: "
            "images give 1 (grey) or 3 (colour); set layout=nhwc or layout=nchw"
        )
    return Target(h if h > 0 else None, w if w > 0 else None, c, layout)


def preprocess_file(path: Path, recipe: Recipe, target: Target) -> np.ndarray:
    """One image file through every step of the recipe: one sample of x."""
    pixels = decode(path, target.channels)
    if recipe.resize is not None:
        pixels = resize(pixels, recipe.resize, recipe.resample)
    if recipe.crop is not None:
        pixels = center_crop(pixels, recipe.crop, path)
    h, w = pixels.shape[:2]
    if (target.height or h, target.width or w) != (h, w):
        raise HarnessError(
            f"{path.name}: preprocessed to {w}x{h}, the model takes "
            f"{target.width}x{target.height}: set resize=/crop= in --preprocess"
        )
    x = normalize(pixels, recipe.mean, recipe.std)
    x = channel_order(x, recipe.order)
    return cast(to_layout(x, target.layout), recipe.dtype, path)


def decode(path: Path, channels: int) -> np.ndarray:
    """H x W x channels uint8 pixels (RGB, or grey by Pillow's luma for one channel)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Pillow raises several types for truncated or corrupt files; name the file
        raise HarnessError(f"{path}: not a decodable image ({exc})") from None
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def resize(pixels: np.ndarray, size: tuple[int, ...], resample: str) -> np.ndarray:
    """(n,): shorter side to n, aspect kept (the longer side rounded); (w, h): exactly."""
    from PIL import Image

    h, w = pixels.shape[:2]
    if len(size) == 1:
        n = size[0]
        new = (n, max(1, round(h * n / w))) if w <= h else (max(1, round(w * n / h)), n)
    else:
        new = (size[0], size[1])
    if new == (w, h):
        return pixels
    img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    filt = getattr(Image.Resampling, resample.upper())
    out = np.asarray(img.resize(new, filt), dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def center_crop(pixels: np.ndarray, size: tuple[int, int], path: Path | None = None) -> np.ndarray:
    """The (w, h) window at the centre (offsets rounded down, like torchvision's)."""
    h, w = pixels.shape[:2]
    cw, ch = size
    if cw > w or ch > h:
        name = f"{path.name}: " if path else ""
        raise HarnessError(f"{name}crop {cw}x{ch} is larger than the image ({w}x{h}): resize first")
    top, left = (h - ch) // 2, (w - cw) // 2
    return pixels[top : top + ch, left : left + cw]


def normalize(pixels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(pixel - mean) / std as float32; three values apply per channel (R, G, B)."""
    c = pixels.shape[-1]
    for name, vals in (("mean", mean), ("std", std)):
        if len(vals) not in (1, c):
            raise HarnessError(f"{name} has {len(vals)} values, the images have {c} channel(s)")
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    return ((pixels.astype(np.float32) - m) / s).astype(np.float32)


def channel_order(x: np.ndarray, order: str) -> np.ndarray:
    """RGB as decoded, or reversed to BGR (a grey image has one channel: unchanged)."""
    return x[..., ::-1] if order == "bgr" and x.shape[-1] == 3 else x


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """H x W x C as is (nhwc), or C x H x W (nchw)."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 0)) if layout == "nchw" else x


def cast(x: np.ndarray, dtype: str, path: Path | None = None) -> np.ndarray:
    """The recipe's dtype; integer dtypes take rounded values that must fit."""
    want = np.dtype(dtype)
    if np.issubdtype(want, np.integer):
        info = np.iinfo(want)
        r = np.round(x)
        if r.min() < info.min or r.max() > info.max:
            name = f"{path.name}: " if path else ""
            raise HarnessError(
                f"{name}values {r.min():g}..{r.max():g} do not fit dtype={dtype} "
                f"({info.min}..{info.max}): check mean/std"
            )
        return r.astype(want)
    return x.astype(want)


def _content_key(
    csv_path: Path, names: list[str], files: list[Path], recipe: Recipe, target: Target
) -> str:
    """sha256 of what x and y depend on: the labels file, every image's bytes (under its
    name in the CSV, so moving the set elsewhere keeps its key), the recipe and the
    model's input shape."""
    h = hashlib.sha256()
    head = {"v": PREP_VERSION, "recipe": recipe.to_dict(), "target": target.__dict__}
    h.update(json.dumps(head, sort_keys=True).encode())
    h.update(hashlib.sha256(csv_path.read_bytes()).digest())
    for name, f in zip(names, files, strict=True):
        h.update(name.encode() + b"\0")
        with f.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def _save_atomic(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    # a half-written cache file would later be read as a hit: write aside, then rename
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, x=x, y=y)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npz_provenance(path: Path) -> dict:
    """An .npz's identity: its path and content hash (when it exists; load_eval says
    what is wrong with it otherwise)."""
    doc: dict = {"format": "npz", "path": str(path)}
    if path.is_file():
        with path.open("rb") as fh:
            doc["sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()
    return doc
