"""Plan expansion: model variants x delegates x threads -> cells for one device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.cells import Cell
from harness.convert.pipeline import MANIFEST_NAME, load_manifest
from harness.convert.tflite_info import TfliteInfo, inspect_tflite
from harness.errors import HarnessError

DELEGATES = ("cpu", "xnnpack", "gpu", "gpu-f32", "nnapi", "npu")
REFERENCE = ("fp32", "cpu")  # drift is always measured against fp32 on plain CPU kernels


@dataclass(frozen=True)
class ModelVariant:
    """A .tflite file on the host, ready to be sent to a device."""

    model: str
    variant: str
    path: Path
    info: TfliteInfo
    # why `harness convert` could not make this variant (a recipe the model cannot
    # take): its cells are unsupported rows with this reason and never reach a device
    unsupported: str | None = None


def load_variants(path: Path, only: tuple[str, ...] | None = None) -> list[ModelVariant]:
    """Variants from a `harness convert` directory, or a single .tflite kept as fp32."""
    path = Path(path)
    if not path.exists():
        raise HarnessError(f"model not found: {path}")
    if path.is_file():
        info = inspect_tflite(_read(path), label=str(path))
        found = [ModelVariant(display_name(path.stem), "fp32", path, info)]
    elif (path / MANIFEST_NAME).is_file():
        doc = load_manifest(path)
        model = Path(doc["source"]["path"]).stem or path.name
        found = [_manifest_variant(path, model, v) for v in doc["variants"]]
        for v in found:
            if v.unsupported is None and not v.path.is_file():
                raise HarnessError(f"{v.path}: listed in the manifest but missing")
    else:
        raise HarnessError(f"{path}: neither a .tflite file nor a directory with {MANIFEST_NAME}")
    if only:
        unknown = sorted(set(only) - {v.variant for v in found})
        if unknown:
            have = ", ".join(v.variant for v in found)
            raise HarnessError(f"variant {', '.join(unknown)} not in {path} (it has {have})")
        found = [v for v in found if v.variant in only]
    return found


def _manifest_variant(path: Path, model: str, entry: dict) -> ModelVariant:
    """One manifest entry; an unsupported one (status, reason, no file) keeps its reason."""
    if entry.get("status", "ok") != "ok":
        reason = entry.get("reason") or f"harness convert could not make {entry['name']}"
        empty = TfliteInfo(sha256="", size_bytes=0, inputs=(), outputs=())
        return ModelVariant(model, entry["name"], path / f"{entry['name']}.tflite", empty, reason)
    return ModelVariant(model, entry["name"], path / entry["file"], TfliteInfo.from_dict(entry))


def display_name(name: str) -> str:
    """A file name as storable text: bytes that are not UTF-8 (kept by Python as lone
    surrogates, which no database or JSON encoder accepts) become \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def parse_delegates(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in DELEGATES]
    if unknown or not names:
        raise HarnessError(
            f"unknown delegate {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(DELEGATES)}"
        )
    return names


def parse_threads(text: str) -> tuple[int, ...]:
    try:
        values = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
    except ValueError as exc:
        raise HarnessError(f"threads must be positive integers, got {text!r}") from exc
    if not values or any(t < 1 for t in values):
        raise HarnessError(f"threads must be positive integers, got {text!r}")
    return values


MAX_CONCURRENCY = 64  # interpreter instances at once: beyond this a phone only thrashes


def parse_batches(text: str) -> tuple[int, ...]:
    """--batch 1,8,32: samples per invoke, each a positive integer."""
    return _positive_ints(text, "batch sizes")


def parse_concurrency(text: str) -> tuple[int, ...]:
    """--concurrency 1,2,4: interpreter instances at once, 1..MAX_CONCURRENCY."""
    values = _positive_ints(text, "concurrency levels")
    if max(values) > MAX_CONCURRENCY:
        raise HarnessError(
            f"concurrency {max(values)} is above the limit of {MAX_CONCURRENCY} instances"
        )
    return values


MAX_SUSTAINED_S = 86400.0  # a day: longer is a soak test, not a benchmark


def parse_sustained(text: str, concurrency: str | None = None) -> float:
    """A sustained duration ('5m', '90s', '600') as seconds, for `harness run --sustained`
    and the lab file's `sustained`: from MIN_SUSTAINED_S to 24 h, and never with a
    concurrency setting (`concurrency` names the one given, e.g. '--concurrency'), since
    a sustained cell is one instance run back to back, not a load window.

    The HarnessError says what is wrong without naming the option: each caller puts its
    own name in front (`--sustained ...`, `lab.toml: sustained: ...`)."""
    from harness.cli.options import parse_seconds  # a plain function; no click involved
    from harness.measure.sustained import MIN_SUSTAINED_S

    seconds = parse_seconds(text)
    if not seconds >= MIN_SUSTAINED_S or seconds > MAX_SUSTAINED_S:
        raise HarnessError(
            f"{text!r} must be from {MIN_SUSTAINED_S:g}s to 24h "
            "(shorter runs say nothing about heat)"
        )
    if concurrency:
        raise HarnessError(f"runs one instance per cell: drop {concurrency}")
    return seconds


def _positive_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
    except ValueError as exc:
        raise HarnessError(f"{what} must be positive integers, got {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise HarnessError(f"{what} must be positive integers, got {text!r}")
    return values


def expand(
    device: str,
    variants: list[ModelVariant],
    delegates: tuple[str, ...],
    threads: tuple[int, ...],
    batches: tuple[int, ...] = (1,),
    concurrency: tuple[int, ...] = (1,),
) -> list[Cell]:
    """Every combination, fp32/cpu first so the drift reference exists before it is needed."""
    cells = [
        Cell(device, v.model, v.variant, d, t, b, n)
        for v in variants
        for d in delegates
        for t in threads
        for b in batches
        for n in concurrency
    ]
    return sorted(cells, key=lambda c: (c.model, (c.variant, c.delegate) != REFERENCE))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror}") from exc
