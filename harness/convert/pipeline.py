"""`harness convert`: source -> one .tflite per variant + manifest.json, with a cache.

Each variant is cached by a key over (source hash, variant, options, calibration
hash, recipe version) in a per-user directory, so converting the same source with
the same options again does no TensorFlow work at all — not even the import.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from harness import __version__
from harness.convert.delegate_support import compatibility_report
from harness.convert.recipes import (
    CALIBRATED,
    QUANTIZER,
    TF_CONVERTER,
    VARIANTS,
    Recipe,
    recipe_for,
)
from harness.convert.sources import ModelSource, file_sha256, resolve_source
from harness.convert.tflite_info import TfliteInfo, inspect_tflite
from harness.errors import HarnessError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
# Bump when a variant's conversion recipe changes, so old cache entries stop matching.
# 2: recipes (tool + the tool's recipe) and tool versions in the key; unsupported cached.
RECIPE_VERSION = 2


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
    """One variant as written to the output directory, or the reason it could not be.

    An unsupported variant (a recipe the model cannot take) has no file and no info:
    its manifest entry says so, and `harness run` shows its cells as unsupported rows."""

    name: str
    file: str | None
    info: TfliteInfo | None
    cache_hit: bool
    converter: dict = field(default_factory=dict)
    recipe: Recipe | None = None
    reason: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.info is not None else "unsupported"

    def to_dict(self) -> dict:
        head = {
            "name": self.name,
            "status": self.status,
            "file": self.file,
            "recipe": _recipe_entry(self.recipe, self.converter),
            "converter": self.converter,
        }
        if self.info is None:
            return head | {"reason": self.reason}
        return (
            head | self.info.to_dict() | {"delegate_compatibility": compatibility_report(self.info)}
        )


def _recipe_entry(recipe: Recipe | None, converter: dict) -> dict | None:
    """The recipe with the version of the tool that applied it (from its converter doc)."""
    if recipe is None:
        return None
    version_key = {TF_CONVERTER: "tensorflow", QUANTIZER: "litert-quantizer"}.get(recipe.tool)
    return recipe.to_dict() | {"version": converter.get(version_key) if version_key else None}


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
    """Convert `spec.source` into every requested variant and write the manifest.

    Cache hits are answered here; the rest are made by one worker process
    (harness.convert.worker), so no converter is ever imported into this one. Nothing
    is written to `spec.out_dir` until every variant is made or known unsupported."""
    source = resolve_source(spec.source)
    if source.kind == "tflite":  # cheap (no runtime): a broken file is named before any work
        inspect_tflite(source.path.read_bytes(), label=str(source.path))
    calibration_sha = _check_calibration(spec)
    options = {"int8_io": spec.int8_io, "calibration_sha256": calibration_sha}
    try:
        spec.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create output directory {spec.out_dir}: {exc.strerror}"
        ) from exc
    _check_writable(spec.out_dir)

    recipes = {name: recipe_for(source.kind, name) for name in spec.variants}
    keys = {
        name: _cache_key(source, r, spec.int8_io, calibration_sha if r.calibrated else None)
        for name, r in recipes.items()
    }
    made: dict[str, _Made] = {}
    for name in spec.variants:
        if (hit := _read_cache(keys[name])) is not None:
            progress(f"{name}: cache hit")
            made[name] = hit
    todo = tuple(n for n in spec.variants if n not in made)
    if todo:
        fp32_hit = made.get("fp32")
        made |= _run_worker(source, todo, spec, fp32_hit, progress)
        for name in todo:
            _store_cache(keys[name], made[name])

    results = []
    for name in spec.variants:
        m = made[name]
        if m.data is None:
            results.append(
                VariantFile(name, None, None, m.cache_hit, m.converter, recipes[name], m.reason)
            )
            continue
        info = inspect_tflite(m.data, label=f"{name} variant")
        file_name = f"{name}.tflite"
        _write_atomic(spec.out_dir / file_name, m.data)
        results.append(VariantFile(name, file_name, info, m.cache_hit, m.converter, recipes[name]))

    result = ConvertResult(source, tuple(results), spec.out_dir / MANIFEST_NAME, options)
    _write_atomic(result.manifest_path, json.dumps(manifest_dict(result), indent=2).encode())
    _remove_stale_variants(spec.out_dir, {v.file for v in results if v.file})
    return result


@dataclass(frozen=True)
class _Made:
    """One variant's outcome: its bytes, or None with the reason it is unsupported."""

    data: bytes | None
    converter: dict
    reason: str | None = None
    cache_hit: bool = False


def _run_worker(
    source: ModelSource,
    variants: tuple[str, ...],
    spec: ConvertSpec,
    fp32_hit: _Made | None,
    progress: Callable[[str], None],
) -> dict[str, _Made]:
    """Make `variants` in a `python -m harness.convert.worker` process, relaying one
    progress line per variant as it starts and ends."""
    from harness.convert.worker import Job

    with tempfile.TemporaryDirectory(prefix="harness-convert-") as tmp:
        tmp_dir = Path(tmp)
        fp32_file = None
        if fp32_hit is not None and fp32_hit.data is not None:
            fp32_file = tmp_dir / "cached-fp32.tflite"
            fp32_file.write_bytes(fp32_hit.data)
        job = Job(source, variants, tmp_dir, spec.calibration, spec.int8_io, fp32_file)
        verbose = bool(os.environ.get("HARNESS_VERBOSE"))
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.convert.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None if verbose else log,
                text=True,
            )
            proc.stdin.write(json.dumps(job.to_dict()))
            proc.stdin.close()
            made, error = _read_events(proc.stdout, progress)
            code = proc.wait()
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
        if error is not None:
            raise HarnessError(error)
        missing = [v for v in variants if v not in made]
        if code != 0 or missing:
            last = tail[0][:300] if tail else "no output"
            raise HarnessError(
                f"the conversion worker stopped (exit {code}) before "
                f"{', '.join(missing) or 'finishing'}: {last}"
            )
        return made


def _read_events(stream, progress: Callable[[str], None]) -> tuple[dict[str, _Made], str | None]:
    made: dict[str, _Made] = {}
    started: dict[str, float] = {}
    for line in stream:
        event = json.loads(line)
        kind, name = event.get("event"), event.get("variant")
        if kind == "start":
            started[name] = time.perf_counter()
            progress(f"{name}: converting")
        elif kind == "done":
            seconds = time.perf_counter() - started.get(name, time.perf_counter())
            made[name] = _Made(Path(event["file"]).read_bytes(), event["converter"])
            progress(f"{name}: done in {seconds:.1f} s")
        elif kind == "unsupported":
            made[name] = _Made(None, event["converter"], event["reason"])
            progress(f"{name}: unsupported: {event['reason']}")
        elif kind == "error":
            return made, event["message"]
    return made, None


def _remove_stale_variants(out_dir: Path, keep: set[str]) -> None:
    """Drop variant files of an earlier convert into this directory that the new manifest
    does not list, so the directory and its manifest agree. Only harness's own variant
    file names are touched; anything else the user put there stays."""
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


def _check_calibration(spec: ConvertSpec) -> str | None:
    """The calibration file's hash when a calibrated variant needs it; a user error when
    one needs it and none is given, or the file is not a numeric batch named 'x'."""
    needs = [v for v in spec.variants if v in CALIBRATED]
    if needs and spec.calibration is None:
        raise HarnessError(
            f"variant {needs[0]} needs a representative dataset: pass --calibration FILE.npz"
        )
    if spec.calibration is None or not needs:
        return None
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
    return file_sha256(path)


def _cache_key(
    source: ModelSource, recipe: Recipe, int8_io: bool, calibration_sha: str | None
) -> str:
    """Over what changes a variant's bytes: the source, the recipe (variant, tool and the
    tool's own recipe), the tool's installed version, int8 I/O and the calibration data."""
    doc = [
        RECIPE_VERSION,
        source.sha256,
        recipe.to_dict(),
        _tool_version(recipe.tool),
        int8_io and recipe.variant == "int8",
        calibration_sha,
    ]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:32]


def _tool_version(tool: str) -> str | None:
    """The installed version of a recipe's tool, from package metadata (no import)."""
    dists = {TF_CONVERTER: ("tensorflow-cpu", "tensorflow"), QUANTIZER: ("litert-quantizer",)}
    for dist in dists.get(tool, ()):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _read_cache(key: str) -> _Made | None:
    """A cached variant (or a cached verdict that it is unsupported), else None."""
    meta_path = cache_dir() / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("status") == "unsupported":
            return _Made(None, meta.get("converter", {}), meta["reason"], cache_hit=True)
        return _Made(meta_path.with_suffix(".tflite").read_bytes(), meta["converter"], None, True)
    except (OSError, ValueError, KeyError, AttributeError):
        return None  # absent or unreadable: convert again


def _store_cache(key: str, made: _Made) -> None:
    path = cache_dir() / f"{key}.tflite"
    meta = {"converter": made.converter}
    if made.data is None:
        meta |= {"status": "unsupported", "reason": made.reason}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if made.data is not None:
            _write_atomic(path, made.data)
        _write_atomic(path.with_suffix(".json"), json.dumps(meta).encode())
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
