"""`harness convert`: source -> one .tflite per variant + manifest.json, with a cache.

Each variant is cached by a key over (source hash, variant, options, calibration
hash, recipe version) in a per-user directory, so converting the same source with
the same options again does no TensorFlow work at all — not even the import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import __version__
from harness.convert.delegate_support import compatibility_report
from harness.convert.sources import ModelSource, file_sha256, resolve_source
from harness.convert.tflite_info import TfliteInfo, inspect_tflite
from harness.errors import HarnessError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
# Bump when a variant's conversion recipe changes, so old cache entries stop matching.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class ConvertSpec:
    """What the user asked `harness convert` for."""

    source: Path
    out_dir: Path
    variants: tuple[str, ...] = ("fp32",)
    calibration: Path | None = None
    int8_io: bool = False


@dataclass(frozen=True)
class VariantFile:
    """One converted variant as written to the output directory."""

    name: str
    file: str
    info: TfliteInfo
    cache_hit: bool
    converter: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return (
            {
                "name": self.name,
                "file": self.file,
                "converter": self.converter,
            }
            | self.info.to_dict()
            | {"delegate_compatibility": compatibility_report(self.info)}
        )


@dataclass(frozen=True)
class ConvertResult:
    """The manifest's content plus where it was written."""

    source: ModelSource
    variants: tuple[VariantFile, ...]
    manifest_path: Path
    options: dict

    @property
    def all_cached(self) -> bool:
        return all(v.cache_hit for v in self.variants)


def cache_dir() -> Path:
    """Per-user conversion cache: $HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/harness."""
    if env := os.environ.get("HARNESS_CACHE_DIR"):
        return Path(env) / "variants"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "harness" / "variants"


def convert_model(
    spec: ConvertSpec, progress: Callable[[str], None] = lambda _: None
) -> ConvertResult:
    """Convert `spec.source` into every requested variant and write the manifest."""
    source = resolve_source(spec.source)
    calibration, calibration_sha = _load_calibration(spec)
    if source.kind == "tflite" and set(spec.variants) - {"fp32"}:
        raise HarnessError(
            f"{source.path}: a .tflite is kept as-is (variant fp32); other variants need the "
            "Keras or SavedModel source"
        )
    options = {"int8_io": spec.int8_io, "calibration_sha256": calibration_sha}
    try:
        spec.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create output directory {spec.out_dir}: {exc.strerror}"
        ) from exc
    _check_writable(spec.out_dir)

    loaded = _LazySource(source)
    results = []
    for name in spec.variants:
        key = _cache_key(source, name, spec.int8_io, calibration_sha if name == "int8" else None)
        cached = cache_dir() / f"{key}.tflite"
        hit = cached.is_file() and (cached.with_suffix(".json")).is_file()
        if hit:
            progress(f"{name}: cache hit")
            data = cached.read_bytes()
            converter = json.loads(cached.with_suffix(".json").read_text())
        else:
            progress(f"{name}: converting")
            data, converter = _produce(loaded, name, calibration, spec.int8_io)
            _store_cache(cached, data, converter)
        info = inspect_tflite(data, label=f"{name} variant")
        file_name = f"{name}.tflite"
        _write_atomic(spec.out_dir / file_name, data)
        results.append(VariantFile(name, file_name, info, hit, converter))

    result = ConvertResult(source, tuple(results), spec.out_dir / MANIFEST_NAME, options)
    _write_atomic(result.manifest_path, json.dumps(manifest_dict(result), indent=2).encode())
    _remove_stale_variants(spec.out_dir, {v.file for v in results})
    return result


def _remove_stale_variants(out_dir: Path, keep: set[str]) -> None:
    """Drop variant files of an earlier convert into this directory that the new manifest
    does not list, so the directory and its manifest agree. Only harness's own variant
    file names are touched; anything else the user put there stays."""
    from harness.convert.variants import VARIANTS

    for name in VARIANTS:
        path = out_dir / f"{name}.tflite"
        if path.name not in keep and path.is_file():
            path.unlink()


def manifest_dict(result: ConvertResult) -> dict:
    """The manifest.json document (schema-versioned)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "harness": __version__,
        "source": result.source.to_dict(),
        "options": result.options,
        "variants": [v.to_dict() for v in result.variants],
    }


def load_manifest(model_dir: Path) -> dict:
    """Read a manifest.json written by `harness convert`."""
    path = Path(model_dir) / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise HarnessError(f"{model_dir}: no {MANIFEST_NAME} (run harness convert first)") from exc
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: unreadable manifest ({exc})") from exc
    if doc.get("schema") != MANIFEST_SCHEMA:
        raise HarnessError(f"{path}: manifest schema {doc.get('schema')} not supported")
    return doc


class _LazySource:
    """Loads the model into TensorFlow on first use only (cache hits never do)."""

    def __init__(self, source: ModelSource):
        self.source = source
        self._model = None
        self._loaded = False

    def model(self):
        if not self._loaded:
            from harness.convert.variants import load_converter_model

            self._model = load_converter_model(self.source)
            self._loaded = True
        return self._model


def _produce(loaded: _LazySource, name: str, calibration, int8_io: bool) -> tuple[bytes, dict]:
    source = loaded.source
    if source.kind == "tflite":
        data = source.path.read_bytes()
        inspect_tflite(data, label=str(source.path))
        return data, {"converter": "as-is (.tflite source)"}
    from harness.convert.variants import convert_variant, input_shape, tensorflow_versions

    model = loaded.model()
    if calibration is not None and name == "int8":
        _check_calibration_shape(calibration, input_shape(source, model))
    return convert_variant(source, model, name, calibration, int8_io), tensorflow_versions()


def _load_calibration(spec: ConvertSpec) -> tuple[np.ndarray | None, str | None]:
    if "int8" in spec.variants and spec.calibration is None:
        raise HarnessError(
            "variant int8 needs a representative dataset: pass --calibration FILE.npz"
        )
    if spec.calibration is None or "int8" not in spec.variants:
        return None, None
    path = Path(spec.calibration)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz:
                raise HarnessError(f"{path}: calibration file has no array named 'x'")
            x = np.asarray(npz["x"])
    except FileNotFoundError as exc:
        raise HarnessError(f"calibration file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not a readable .npz ({exc})") from exc
    if x.ndim < 2 or len(x) == 0 or not np.issubdtype(x.dtype, np.number):
        raise HarnessError(f"{path}: 'x' must be a non-empty numeric batch, got {x.dtype}{x.shape}")
    return x, file_sha256(path)


def _check_calibration_shape(x: np.ndarray, shape: tuple | None) -> None:
    if shape is None:
        return
    want = tuple(shape[1:])
    if tuple(x.shape[1:]) != want:
        raise HarnessError(
            f"calibration data has samples of shape {tuple(x.shape[1:])}, the model expects {want}"
        )


def _cache_key(
    source: ModelSource, variant: str, int8_io: bool, calibration_sha: str | None
) -> str:
    doc = [RECIPE_VERSION, source.sha256, variant, int8_io and variant == "int8", calibration_sha]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:32]


def _store_cache(path: Path, data: bytes, converter: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)
        _write_atomic(path.with_suffix(".json"), json.dumps(converter).encode())
    except OSError:
        pass  # a read-only cache costs speed next time, never correctness


def _check_writable(out_dir: Path) -> None:
    if not os.access(out_dir, os.W_OK):
        raise HarnessError(f"output directory is not writable: {out_dir}")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["ConvertSpec", "ConvertResult", "VariantFile", "convert_model", "load_manifest"]
