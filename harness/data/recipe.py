"""The preprocessing recipe of an image eval set: `--preprocess KEY=VALUE,...` or a TOML
file. Parsing only; the steps themselves are in harness.data.images."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import HarnessError

ORDERS = ("rgb", "bgr")
LAYOUTS = ("auto", "nhwc", "nchw")
DTYPES = ("float32", "float16", "uint8", "int8")
RESAMPLES = ("nearest", "bilinear", "bicubic", "box", "lanczos")
KEYS = ("resize", "crop", "mean", "std", "order", "layout", "dtype", "resample")


@dataclass(frozen=True)
class Recipe:
    """How an image becomes one sample of x, in this order: decode (grey when the model
    takes one channel), resize, centre crop, (pixel - mean) / std, channel order,
    layout, dtype. Pixel values are 0..255 before mean/std.

    resize: None, (n,) = shorter side to n keeping the aspect, or (w, h) exactly.
    crop: None, or (w, h) of the centre crop (a square crop is (n, n)).
    mean, std: one value, or one per channel (in RGB order, as the image decodes).
    """

    resize: tuple[int, ...] | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    order: str = "rgb"
    layout: str = "auto"
    dtype: str = "float32"
    resample: str = "bilinear"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        return _build(d, "stored recipe")


def load_recipe(text: str | None) -> Recipe | None:
    """`--preprocess`'s value: a TOML file (a path ending in .toml) or KEY=VALUE,...;
    None when not given. A mistake is a HarnessError (one line, exit 2)."""
    if text is None:
        return None
    if text.strip().lower().endswith(".toml"):
        return _from_toml(Path(text))
    items: dict = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise HarnessError(f"--preprocess: {part.strip()!r} is not KEY=VALUE")
        if key in ("mean", "std"):
            # per-channel values use '/' on the command line (the comma separates keys)
            value = [v for v in value.split("/")]
        if key in items:
            raise HarnessError(f"--preprocess: {key} is given twice")
        items[key] = value
    return _build(items, "--preprocess")


def _from_toml(path: Path) -> Recipe:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"--preprocess: recipe file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"--preprocess: {path} is not a readable TOML file ({exc})") from None
    # the keys may sit at the top level or under [preprocess], so one file can hold more
    if set(doc) == {"preprocess"} and isinstance(doc["preprocess"], dict):
        doc = doc["preprocess"]
    return _build(doc, str(path))


def _build(items: dict, where: str) -> Recipe:
    unknown = sorted(set(items) - set(KEYS))
    if unknown:
        raise HarnessError(
            f"{where}: unknown preprocessing key {unknown[0]!r} (known: {', '.join(KEYS)})"
        )
    fields: dict = {}
    if items.get("resize") is not None:
        fields["resize"] = _size(items["resize"], "resize", where, allow_one=True)
    if items.get("crop") is not None:
        crop = _size(items["crop"], "crop", where, allow_one=True)
        fields["crop"] = crop * 2 if len(crop) == 1 else crop
    for key in ("mean", "std"):
        if key in items:
            fields[key] = _numbers(items[key], key, where)
    if any(s == 0 for s in fields.get("std", ())):
        raise HarnessError(f"{where}: std must not be 0")
    for key, allowed in (("order", ORDERS), ("layout", LAYOUTS), ("dtype", DTYPES)):
        if key in items:
            fields[key] = _choice(items[key], key, allowed, where)
    if "resample" in items:
        fields["resample"] = _choice(items["resample"], "resample", RESAMPLES, where)
    return Recipe(**fields)


def _size(value, key: str, where: str, allow_one: bool) -> tuple[int, ...]:
    """224 -> (224,); "224x160" or [224, 160] -> (224, 160): positive integers."""
    if isinstance(value, list | tuple):
        parts = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        parts = str(value).lower().split("x")
    try:
        # bool is an int to Python; a TOML `resize = true` is a mistake, not 1
        if any(isinstance(p, bool | float) for p in parts):
            raise ValueError
        sizes = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        sizes = ()
    if not (len(sizes) == 2 or (allow_one and len(sizes) == 1)) or min(sizes) < 1:
        raise HarnessError(f"{where}: {key} must be N or WxH in pixels (N > 0), not {value!r}")
    return sizes


def _numbers(value, key: str, where: str) -> tuple[float, ...]:
    parts = value if isinstance(value, list | tuple) else [value]
    try:
        if any(isinstance(p, bool) for p in parts):
            raise ValueError
        nums = tuple(float(str(p).strip()) for p in parts)
    except ValueError:
        nums = ()
    if len(nums) not in (1, 3) or not all(math.isfinite(n) for n in nums):
        raise HarnessError(
            f"{where}: {key} must be a number or three (one per channel, R/G/B), not {value!r}"
        )
    return nums


def _choice(value, key: str, allowed: tuple[str, ...], where: str) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise HarnessError(f"{where}: {key} must be one of {', '.join(allowed)}, not {value!r}")
    return text
