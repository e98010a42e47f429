"""Model sources: a Keras file, a SavedModel directory, an ONNX file, or an existing .tflite."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from and what it hashes to (the conversion cache key's root)."""

    path: Path
    kind: str  # "keras" | "savedmodel" | "onnx" | "tflite"
    sha256: str

    def to_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "sha256": self.sha256}


def resolve_source(path: Path) -> ModelSource:
    """Classify `path` and hash its content; raise HarnessError for anything unusable."""
    path = Path(path)
    if not path.exists():
        raise HarnessError(f"model source not found: {path}")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise HarnessError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
        return ModelSource(path, "savedmodel", _hash_tree(path))
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        kind = "tflite"
    elif suffix == ".onnx":
        kind = "onnx"  # parsed and checked in the conversion worker (needs the onnx extra)
    elif suffix in KERAS_SUFFIXES:
        kind = "keras"
        if suffix == ".keras" and not zipfile.is_zipfile(path):
            # Keras itself says "File not found" for a file that exists but is not a zip.
            raise HarnessError(f"{path}: not a Keras archive (a .keras file is a zip; this is not)")
    else:
        raise HarnessError(
            f"{path}: unknown model format '{suffix}' (expected .keras, .h5, .onnx, "
            ".tflite or a SavedModel directory)"
        )
    return ModelSource(path, kind, file_sha256(path))


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _hash_tree(root: Path) -> str:
    # Names and contents, in a stable order, so renaming a variables shard changes the key.
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            digest.update(p.relative_to(root).as_posix().encode() + b"\0")
            digest.update(file_sha256(p).encode())
    return digest.hexdigest()
