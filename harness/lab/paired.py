"""A lab model whose file changed since the baseline night is measured beside the
baseline's file, in the same run: tonight's verdict on it is then paired, round by
round (harness.measure.compare.compare_models), instead of resting on two nights taken
at different moments on a host whose level drifts.

Every night archives the variant files it is about to measure, by content
(`<lab dir>/archive/<sha256>.tflite`). When the baseline's cells name a variant file
other than tonight's, the archived baseline files of tonight's variants are laid out as
a model directory named `<model>@baseline` (a manifest of their own), which the night's
RunSpec sweeps beside the model (`more_models`): both share every round. A baseline file
the archive does not hold (a night before archiving began) leaves the verdict across
nights, and the summary says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from harness.cells import CellRecord
from harness.convert.pipeline import MANIFEST_NAME, MANIFEST_SCHEMA
from harness.convert.tflite_info import inspect_tflite
from harness.lab.night import SUFFIX as BASELINE_SUFFIX
from harness.lab.plan import ModelVariant
from harness.lab.prepare import PreparedModel
from harness.run import plan_run


def archive_variants(variants: list[ModelVariant], archive: Path) -> None:
    """Keep a copy of each variant file under its sha256 (once: the name is the content)."""
    archive.mkdir(parents=True, exist_ok=True)
    for v in variants:
        dest = archive / f"{v.info.sha256}.tflite"
        if not dest.is_file():
            tmp = dest.with_suffix(f".tmp{os.getpid()}")
            shutil.copyfile(v.path, tmp)
            os.replace(tmp, dest)  # readers never see half a file


def with_baseline(
    pm: PreparedModel, baseline: list[CellRecord], archive: Path
) -> tuple[PreparedModel, str | None]:
    """The prepared model, with the baseline's files swept beside it when a variant file
    changed since the baseline; and a line for the summary when it changed."""
    if pm.spec is None:
        return pm, None
    variants, _ = plan_run(pm.spec)
    archive_variants(variants, archive)
    model = variants[0].model
    base = {r.cell.variant: r.model_sha256 for r in baseline if r.cell.model == model}
    changed = sorted(
        v.variant for v in variants if base.get(v.variant) not in (None, v.info.sha256)
    )
    if not changed:
        return pm, None
    shas = {v.variant: base.get(v.variant) or v.info.sha256 for v in variants}
    missing = [v for v in changed if not (archive / f"{shas[v]}.tflite").is_file()]
    what = f"{model}: model file changed since the baseline night ({', '.join(changed)})"
    if missing:
        return pm, f"{what}; the baseline's file is not archived: compared across nights"
    twin = _lay_out(model, shas, archive)
    spec = replace(pm.spec, more_models=(*pm.spec.more_models, twin))
    return replace(pm, spec=spec), f"{what}: measured beside the baseline's file (paired)"


def _lay_out(model: str, shas: dict[str, str], archive: Path) -> Path:
    """A model directory of the archived files (content-named, so laid out once)."""
    digest = hashlib.sha256(json.dumps(sorted(shas.items())).encode()).hexdigest()[:16]
    out = archive / "paired" / f"{model}{BASELINE_SUFFIX}-{digest}"
    if (out / MANIFEST_NAME).is_file():
        return out
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries = []
    for variant, sha in sorted(shas.items()):
        src = archive / f"{sha}.tflite"
        shutil.copyfile(src, tmp / f"{variant}.tflite")
        info = inspect_tflite(src.read_bytes(), label=str(src))
        entries.append({"name": variant, "file": f"{variant}.tflite", **info.to_dict()})
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "source": {"path": f"{model}{BASELINE_SUFFIX}", "kind": "lab-archive"},
        "variants": entries,
    }
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    try:
        os.replace(tmp, out)
    except OSError:  # another worker laid it out first: theirs is the same content
        shutil.rmtree(tmp, ignore_errors=True)
    return out
