"""`harness run`: a RunSpec (models x variants x delegates x threads on one device) is
planned into cells, swept on the device in interleaved rounds, and each cell committed
to the store as it finishes. The lab runs each (device, model) of a night through here
too."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.cells import Cell, CellRecord
from harness.convert.tflite_info import TensorSpec
from harness.data.images import prepare_eval
from harness.data.recipe import Recipe
from harness.devices.base import Device
from harness.devices.runtime import require_runtime
from harness.errors import DeviceError, HarnessError
from harness.lab.plan import REFERENCE, ModelVariant, display_name, expand, load_variants
from harness.measure.metrics import (
    MetricSpec,
    check_metrics,
    default_metrics,
    eval_output,
    parse_metric,
)
from harness.measure.summarize import summarize
from harness.runners.python_runner import JobCell, TimingConfig, run_cells
from harness.store.store import Store


@dataclass(frozen=True)
class RunSpec:
    """Everything `harness run` needs, serialisable so `--resume` can rebuild it."""

    model: Path
    device: str = "local"
    variants: tuple[str, ...] | None = None
    delegates: tuple[str, ...] = ("cpu", "xnnpack")
    threads: tuple[int, ...] = (1,)
    timing: TimingConfig = field(default_factory=TimingConfig)
    eval_path: Path | None = None
    runner_options: dict = field(default_factory=dict)  # benchmark_model (Android) options
    # more models in the same sweep (A/B): their cells share every round with model's
    more_models: tuple[Path, ...] = ()
    # --metric texts, primary first (empty: top-1 where the eval data has labels)
    metrics: tuple[str, ...] = ()
    # --preprocess: how an image directory given as --eval becomes x (None: an .npz)
    preprocess: Recipe | None = None
    # (new fields go last: callers build a RunSpec positionally)
    # samples per invoke (the input's batch dimension resized) and instances at once
    batches: tuple[int, ...] = (1,)
    concurrency: tuple[int, ...] = (1,)
    load: bool = False  # --concurrency given: every cell is timed as a load window
    sustained_s: float | None = None  # --sustained: each cell runs back to back this long
    together: bool = False  # --together: the models of a slot are served at once

    @property
    def models(self) -> tuple[Path, ...]:
        return (self.model, *self.more_models)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d | {
            "model": str(self.model),
            "eval_path": str(self.eval_path or "") or None,
            "more_models": [str(m) for m in self.more_models],
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        return cls(
            model=Path(d["model"]),
            device=d["device"],
            variants=tuple(d["variants"]) if d.get("variants") else None,
            delegates=tuple(d["delegates"]),
            threads=tuple(d["threads"]),
            batches=tuple(d.get("batches") or (1,)),  # runs stored before --batch: 1
            concurrency=tuple(d.get("concurrency") or (1,)),
            load=bool(d.get("load")),
            sustained_s=d.get("sustained_s"),
            together=bool(d.get("together")),
            timing=TimingConfig(**d["timing"]),
            eval_path=Path(d["eval_path"]) if d.get("eval_path") else None,
            runner_options=d.get("runner_options") or {},
            more_models=tuple(Path(m) for m in d.get("more_models") or ()),
            metrics=tuple(d.get("metrics") or ()),
            preprocess=Recipe.from_dict(d["preprocess"]) if d.get("preprocess") else None,
        )


@dataclass(frozen=True)
class EvalData:
    x: np.ndarray
    y: np.ndarray | None


def plan_run(spec: RunSpec) -> tuple[list[ModelVariant], list[Cell]]:
    """Validate the spec against the model files and expand it into cells."""
    check_together(spec)
    variants = model_variants(spec.models, spec.variants)
    cells = expand(
        spec.device, variants, spec.delegates, spec.threads, spec.batches, spec.concurrency
    )
    return variants, cells


def check_together(spec: RunSpec) -> None:
    """--together's rules, one line each (exit 2): two or more models, and none of the
    options that time a cell on its own (a load, a sustained run) or end one model's
    rounds before another's (--precision)."""
    if not spec.together:
        return
    if len(spec.models) < 2:
        raise HarnessError("--together serves several models at once: give two or more")
    clashes = [
        ("--concurrency", spec.load),
        ("--sustained", spec.sustained_s is not None),
        ("--precision", spec.timing.precision is not None),
    ]
    for flag, given in clashes:
        if given:
            raise HarnessError(
                f"--together with {flag}: the models share one window per round, "
                f"every round (drop {flag})"
            )


def fixed_batch_reason(v: ModelVariant, batch: int) -> str | None:
    """Why the variant cannot take `batch` samples per invoke, or None when it can.

    A batch dimension the model fixed (not -1 in its signature) is the model's promise
    about its graph: resizing it anyway can break reshapes inside, so such a cell is an
    unsupported row, decided here on the host, costing no device time."""
    if batch == 1 or not v.info.inputs:
        return None
    first = v.info.inputs[0]
    dims = tuple(first.shape_signature) or tuple(first.shape)
    if not dims or dims[0] == -1 or dims[0] == batch:
        return None
    return (
        f"the model's input {first.name} has a fixed batch of {dims[0]} "
        f"(shape {list(first.shape)}): it cannot take batch {batch}"
    )


def model_variants(paths: tuple[Path, ...], only: tuple[str, ...] | None) -> list[ModelVariant]:
    """The variants of every model, each model under a name no other model has.

    A model is named by its source (the manifest's source file, or the .tflite's stem);
    when two models share that name (two convert outputs of `model.keras`), each of
    them is named by its own directory or file name instead."""
    paths = tuple(Path(p) for p in paths)
    if len({p.resolve() for p in paths}) < len(paths):
        raise HarnessError("the same model is given twice")
    found = [(p, load_variants(p, only)) for p in paths]
    names = [vs[0].model for _, vs in found]
    named = []
    for (path, vs), name in zip(found, names, strict=True):
        if names.count(name) > 1:
            name = display_name(path.stem if path.is_file() else path.resolve().name)
        named.append((name, vs))
    final = [name for name, _ in named]
    if len(set(final)) < len(final):
        dup = next(n for n in final if final.count(n) > 1)
        raise HarnessError(
            f"two models would both be named {dup!r}: give them distinct file or directory names"
        )
    return [replace(v, model=name) for name, vs in named for v in vs]


def run_sweep(
    spec: RunSpec,
    store: Store,
    device: Device,
    run_id: str | None = None,
    on_cell: Callable[[CellRecord], None] = lambda _: None,
    command: str | None = None,
) -> str:
    """Measure every cell not yet stored under `run_id` (a new run when None).

    Each finished cell is committed at once, and so is each finished round of a cell
    still going: a resumed run takes every cell up at its next round."""
    variants, cells = plan_run(spec)
    runner = runner_for_device(device, spec)
    # Once per device per run, before any cell: a board without numpy or a TFLite
    # runtime is one device error (exit 3), not every cell failed alike.
    require_runtime(device)
    metrics = parse_metrics(spec.metrics)
    eval_file, data, provenance = check_eval(spec, variants, metrics)
    if run_id is None:
        # where the eval data came from (its hash; an image set's recipe) beside the spec
        config = spec.to_dict() | ({"eval_data": provenance} if provenance else {})
        run_id = store.create_run(config, command=command)
    done = store.done_keys(run_id)
    todo = [c for c in cells if c.key not in done]
    by_name = {(v.model, v.variant): v for v in variants}
    references = _stored_references(store, run_id, cells, done) if data else {}

    job, cell_of, refused = [], {}, []
    slot_models: dict[tuple, list[str]] = {}  # --together: which models share a setting
    for c in cells:
        slot_models.setdefault(c.slot, []).append(c.model)
    no_energy = _energy_refusal(device, spec)
    read = _outputs_read(variants, metrics)  # model -> the output its eval pass returns
    ref_of = _reference_jobs(spec, cells, done, references, read) if data else {}
    job += ref_of.values()
    for i, c in enumerate(todo):
        v = by_name[(c.model, c.variant)]
        # a variant convert could not make, or a batch the model cannot take: a row
        reason = (
            v.unsupported
            or fixed_batch_reason(v, c.batch)
            or no_energy
            or _alone_in_slot(spec, c, slot_models)
        )
        if reason:
            refused.append(CellRecord(c, "unsupported", reason, v.info.sha256, v.info.size_bytes))
            continue
        # several models: each slot's cells alternate run by run in every round (A/B);
        # a concurrency cell is a load of its own and is not interleaved
        ab = len(spec.models) > 1 and c.concurrency == 1
        group = "|".join(map(str, c.slot)) if ab else None
        jc = JobCell(
            f"c{i}",
            v.path,
            v.info.sha256,
            c.delegate,
            c.threads,
            group=group,
            batch=c.batch,
            concurrency=c.concurrency,
            load=spec.load,
            sustained_s=spec.sustained_s,
            output=read.get(c.model, 0),
            together=spec.together,
        )
        cell_of[jc.id] = c
        job.append(jc)

    stored_rounds = store.rounds(run_id)
    done_rounds = {i: stored_rounds[c.key] for i, c in cell_of.items() if c.key in stored_rounds}

    def keep_round(jc: JobCell, r: int, doc: dict) -> None:
        if jc.id in cell_of:  # reference-only passes have one round
            store.add_round(run_id, cell_of[jc.id], r, doc)

    _record_snapshot(store, run_id, device, "before")
    for record in refused:  # one unsupported row per batch size the model cannot take
        store.add_cell(run_id, record)
        on_cell(record)
    try:
        rows = runner(
            device,
            job,
            spec.timing,
            eval_file if data else None,
            done_rounds=done_rounds,
            on_round=keep_round,
        )
        for jc, raw in rows:
            outputs = (raw.get("eval") or {}).get("outputs")
            if jc.id not in cell_of:  # a reference-only pass: keep its outputs for drift
                references[next(m for m, r in ref_of.items() if r.id == jc.id)] = outputs
                continue
            c = cell_of[jc.id]
            if (c.variant, c.delegate) == REFERENCE and c.model not in references:
                references[c.model] = outputs if raw.get("status") == "ok" else None
            v = by_name[(c.model, c.variant)]
            if isinstance(raw.get("together"), dict):  # the models it was served with
                raw["together"]["with"] = [m for m in slot_models[c.slot] if m != c.model]
            record = summarize(
                c,
                v.info.sha256,
                v.info.size_bytes,
                raw,
                data.y if data else None,
                references.get(c.model),
                metrics,
            )
            store.add_cell(run_id, record, _npy(outputs))
            on_cell(record)
    except BaseException:
        store.finish_run(run_id, "interrupted")
        raise
    _record_snapshot(store, run_id, device, "after")
    store.finish_run(run_id, "complete")
    return run_id


def _energy_refusal(device: Device, spec: RunSpec) -> str | None:
    """Why --energy cannot be measured on this device (every cell an unsupported row), or
    None. Energy is read from an Android battery by the benchmark_model runner; a Linux
    board without a battery says so, one with a battery that the Python runner does
    not sample it yet."""
    if not spec.runner_options.get("energy"):
        return None
    if getattr(device, "device_class", "linux") != "linux":
        return None
    from harness.runners.benchmark_model.energy import battery_status

    try:
        has_battery = battery_status(device) is not None
    except (DeviceError, OSError):
        has_battery = False
    if not has_battery:
        return (
            "--energy: this Linux board has no battery (power_supply/battery/current_now "
            "and voltage_now): energy per inference needs one"
        )
    return "--energy on Linux boards (the Python runner) is not implemented yet: Android only"


def _alone_in_slot(spec: RunSpec, c: Cell, slot_models: dict[tuple, list[str]]) -> str | None:
    """Why a --together cell has no partner: no other model of the run has its setting
    (a variant only one model was converted to, say). Timed alone it would be a figure
    under a name that promises contention."""
    if spec.together and len(slot_models.get(c.slot, [])) < 2:
        return f"--together: no other model of this run has {c.setting} to serve beside it"
    return None


def _record_snapshot(store: Store, run_id: str, device: Device, phase: str) -> None:
    """Device state (battery, thermal, governor, props) into the store; never fatal."""
    from harness.devices.snapshot import snapshot

    try:
        data = snapshot(device)
    except (DeviceError, OSError) as exc:
        data = {"error": str(exc)[:300]}
    store.add_snapshot(run_id, device.name, phase, data)


def runner_for_device(device: Device, spec: RunSpec) -> Callable:
    """The run_cells of the device's class: Python runner (linux), benchmark_model (android)."""
    device_class = getattr(device, "device_class", "linux")
    if device_class == "linux":
        return run_cells
    if device_class == "android":
        # benchmark_model, with LiteRT's CompiledModel benchmark for gpu/npu cells when
        # one is registered (harness.runners.litert_benchmark; without one, unchanged)
        from harness.runners.litert_benchmark.runner import runner_for

        return runner_for(spec.runner_options)
    raise HarnessError(f"{device.name}: no runner for device class {device_class!r}")


def check_eval(
    spec: RunSpec,
    variants: list[ModelVariant],
    metrics: tuple[MetricSpec, ...] | None = None,
) -> tuple[Path | None, EvalData | None, dict | None]:
    """(the .npz the runner gets, its data, its provenance) for --eval, checked against
    every model's first input and the metrics; an image directory is preprocessed into
    the cache here. The CLI calls this before it opens a device, so a bad eval set costs
    no device time."""
    eval_file, data, provenance = None, None, None
    # every model must take the data (checked on a variant convert made)
    for v in {v.model: v for v in variants if v.unsupported is None}.values():
        if spec.eval_path:
            prepared = prepare_eval(spec.eval_path, spec.preprocess, v.info.inputs[0])
            if eval_file is not None and prepared.npz != eval_file:
                raise HarnessError(
                    "the models take differently shaped inputs: one image eval set "
                    "cannot feed them all in one run"
                )
            eval_file, provenance = prepared.npz, prepared.provenance
            data = load_eval(eval_file, v.info.inputs[0])
        _check_metrics(metrics, v, data)
    return eval_file, data, provenance


def _check_metrics(metrics: tuple[MetricSpec, ...] | None, v: ModelVariant, data) -> None:
    """The chosen (or default) metrics against the model's outputs and the eval data."""
    has_labels = data is not None and data.y is not None
    chosen = metrics if metrics is not None else default_metrics(has_labels)
    outs = v.info.outputs
    names = tuple(o.name for o in outs)
    check_metrics(
        chosen,
        names,
        tuple(outs[eval_output(chosen, names)].shape_signature) if outs else (),
        data.y if data is not None else None,
        data is not None,
    )


def parse_metrics(texts: tuple[str, ...]) -> tuple[MetricSpec, ...] | None:
    """The run's --metric specs, primary first; None when none were chosen (default)."""
    if not texts:
        return None
    specs = tuple(parse_metric(t) for t in texts)
    labels = [s.label for s in specs]
    if len(set(labels)) < len(labels):
        raise HarnessError(
            f"metric {next(x for x in labels if labels.count(x) > 1)} is given twice"
        )
    return specs


def load_eval(path: Path, spec: TensorSpec) -> EvalData:
    """Read and validate eval data against the model's first input."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz:
                raise HarnessError(f"{path}: eval file has no array named 'x'")
            x = np.asarray(npz["x"])
            y = np.asarray(npz["y"]) if "y" in npz else None
    except FileNotFoundError as exc:
        raise HarnessError(f"eval file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not a readable .npz ({exc})") from exc
    want = tuple(spec.shape_signature[1:])
    if x.ndim == 0 or tuple(x.shape[1:]) != want:
        raise HarnessError(
            f"{path}: x has samples of shape {tuple(x.shape[1:])}, the model expects {want}"
        )
    if not np.issubdtype(x.dtype, np.number) or len(x) == 0:
        raise HarnessError(f"{path}: x must be a non-empty numeric array, got {x.dtype}")
    if y is not None and (len(y) != len(x) or not _numeric(y)):
        raise HarnessError(
            f"{path}: y must hold one numeric label per sample of x "
            f"(got {len(y)} {y.dtype} labels for {len(x)} samples)"
        )
    return EvalData(x, y)


def _numeric(y: np.ndarray) -> bool:
    # class ids (integers) or regression targets (floats); whether a metric can use
    # them is the metric's check (harness.measure.metrics.check_metrics)
    return y.dtype == np.bool_ or (np.issubdtype(y.dtype, np.number) and y.ndim >= 1)


def _reference_jobs(
    spec: RunSpec, cells: list[Cell], done: set[str], references: dict, read: dict[str, int]
) -> dict[str, JobCell]:
    """Eval-only fp32/cpu passes for models whose reference cell is not in the plan."""
    planned = {c.model for c in cells if (c.variant, c.delegate) == REFERENCE}
    need = {c.model for c in cells if c.key not in done} - planned - set(references)
    if not need:
        return {}
    fp32 = {}
    for v in model_variants(spec.models, None):  # each model's own fp32, where it has one
        if v.variant == "fp32":
            fp32[v.model] = v
    return {
        m: JobCell(
            f"ref{i}",
            fp32[m].path,
            fp32[m].info.sha256,
            "cpu",
            1,
            timing=False,
            output=read.get(m, 0),
        )  # fmt: skip
        for i, m in enumerate(sorted(need))
        if m in fp32
    }


def _outputs_read(
    variants: list[ModelVariant], metrics: tuple[MetricSpec, ...] | None
) -> dict[str, int]:
    """model -> the index of the output the metrics read, found by name on the variant
    check_eval checked (a model's variants keep its outputs' order)."""
    per_model = {v.model: v for v in variants if v.unsupported is None}
    return {
        m: eval_output(metrics, tuple(o.name for o in v.info.outputs)) for m, v in per_model.items()
    }


def _stored_references(store: Store, run_id: str, cells: list[Cell], done: set[str]) -> dict:
    refs = {}
    for c in cells:
        if (c.variant, c.delegate) == REFERENCE and c.key in done and c.model not in refs:
            blob = store.outputs(run_id, c.key)
            if blob:
                refs[c.model] = np.load(io.BytesIO(blob), allow_pickle=False)
    return refs


def _npy(arr: np.ndarray | None) -> bytes | None:
    if arr is None:
        return None
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()
