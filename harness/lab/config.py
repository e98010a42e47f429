"""`harness lab run lab.toml`: the lab file as typed, frozen dataclasses, validated up front.

Every mistake in the file is ONE line naming its place, e.g.

    lab.toml: models[1].source: file not found: x.keras

and exit code 2, before any device is touched or any model converted. Relative paths
are relative to the lab file's directory. The format (all keys but `models` optional):

    name = "nightly"                  # default: the file's stem; night tag lab:<name>:<night>
    store = "postgresql+psycopg2://…" # default: $HARNESS_STORE, else the SQLite default
    output = "lab-out"                # summaries go to <output>/<night>/
    build = "build/lab"               # converted models (the conversion cache makes reruns free)
    baseline = "previous"             # previous | none | run:<RUN_ID> | tag:<TAG>
    devices = ["local", "127.0.0.1:5601", "emulator-5554", { avd = "Pixel_7_API_34" }]
    delegates = ["cpu", "xnnpack"]
    threads = [1, 4]
    batch = [1, 8]                    # samples per invoke (default [1])
    concurrency = [1, 4]              # instances serving at once: every cell a load window
    sustained = "5m"                  # each cell back to back this long (10s..24h) in 1 s
                                      # windows with CPU frequencies and heat; one round per
                                      # cell, cell timeout >= sustained + 120 s; not with
                                      # concurrency (as `harness run --sustained`)
    energy = true                     # Android: battery sampled around each timed pass
                                      # (mJ per inference); other devices: unsupported rows
    unplug = true                     # Android: `dumpsys battery unplug` for each run
    eval = "data/eval.npz"            # default eval data for every model
    lock_wait = 600                   # seconds to wait for another process holding a device

    [timing]                          # runs, warmup, rounds, min_secs, cell_timeout_s, timeout_s
    runs = 100

    [compare]                         # latency_threshold ("5%"), accuracy_threshold (pp), alpha,
                                      # metric_threshold (the primary metric's own units)
    latency_threshold = "5%"

    [[models]]
    source = "models/digits.keras"    # .keras/.h5/SavedModel/.tflite, or a `harness convert` dir
    variants = ["fp32", "fp16", "dynamic", "int8"]
    calibration = "data/calibration.npz"
    eval = "data/eval.npz"
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.convert.pipeline import MANIFEST_NAME
from harness.convert.sources import KERAS_SUFFIXES
from harness.convert.variants import VARIANTS
from harness.errors import HarnessError
from harness.lab.plan import DELEGATES, MAX_CONCURRENCY, parse_sustained
from harness.measure.compare import CompareConfig, parse_percent
from harness.runners.python_runner import TimingConfig

BASELINE_POLICIES = ("previous", "none", "run:", "tag:")
_TOP_KEYS = {
    "name",
    "store",
    "output",
    "build",
    "baseline",
    "devices",
    "delegates",
    "threads",
    "batch",
    "concurrency",
    "sustained",
    "energy",
    "unplug",
    "eval",
    "lock_wait",
    "timing",
    "compare",
    "models",
}
_TIMING_KEYS = {"runs", "warmup", "rounds", "min_secs", "cell_timeout_s", "timeout_s"}
_COMPARE_KEYS = {"latency_threshold", "accuracy_threshold", "metric_threshold", "alpha"}
_MODEL_KEYS = {"source", "variants", "calibration", "eval", "int8_io", "metrics"}
_DEVICE_KEYS = {"serial", "avd"}


class LabConfigError(HarnessError):
    """A mistake in the lab file: one line, `FILE: PLACE: what`, exit code 2."""


@dataclass(frozen=True)
class DeviceEntry:
    """One device of the lab: a serial / HOST:PORT / `local`, or an AVD to start."""

    serial: str | None = None
    avd: str | None = None

    @property
    def label(self) -> str:
        """The name the summary uses before the device is open (avd:<name> for AVDs)."""
        return self.serial or f"avd:{self.avd}"

    def to_dict(self) -> dict:
        return {"serial": self.serial, "avd": self.avd}


@dataclass(frozen=True)
class ModelEntry:
    """One model of the lab; `name` is what its cells are called (the source's stem)."""

    name: str
    source: Path
    variants: tuple[str, ...] | None  # None: every variant (converted or in the manifest)
    calibration: Path | None
    eval_path: Path | None
    int8_io: bool = False
    metrics: tuple[str, ...] = ()  # `harness run --metric` texts, primary first

    @property
    def converted(self) -> bool:
        """True when the source is already a `harness convert` output directory."""
        return (self.source / MANIFEST_NAME).is_file()


@dataclass(frozen=True)
class LabTiming:
    """`[timing]`; defaults are `harness run`'s (a night is judged on its rounds)."""

    runs: int = TimingConfig.runs
    warmup: int = TimingConfig.warmup
    rounds: int = TimingConfig.rounds
    min_secs: float | None = None
    cell_timeout_s: float | None = 300.0
    timeout_s: float = 3600.0


@dataclass(frozen=True)
class LabConfig:
    path: Path
    name: str
    models: tuple[ModelEntry, ...]
    devices: tuple[DeviceEntry, ...] = (DeviceEntry("local"),)
    delegates: tuple[str, ...] = ("cpu", "xnnpack")
    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] = (1,)
    concurrency: tuple[int, ...] = (1,)
    load: bool = False  # `concurrency` given: every cell is timed as a load window
    sustained_s: float | None = None  # `sustained`: every cell run back to back this long
    energy: bool = False  # Android: battery sampled around each timed pass
    unplug: bool = False  # Android: `dumpsys battery unplug` for the run
    timing: LabTiming = field(default_factory=LabTiming)
    compare: CompareConfig = field(default_factory=CompareConfig)
    baseline: str = "previous"
    store: str | None = None
    output: Path | None = None
    build: Path | None = None
    lock_wait: float = 600.0

    def night_tag(self, night: str) -> str:
        return f"lab:{self.name}:{night}"

    @property
    def runner_options(self) -> dict:
        """The RunSpec's runner_options (benchmark_model's, as `harness run --energy
        --unplug` builds them); empty when neither is on, as the lab stored before."""
        if not (self.energy or self.unplug):
            return {}
        from harness.runners.benchmark_model.flags import BenchmarkOptions

        return BenchmarkOptions(energy=self.energy, unplug=self.unplug).to_dict()

    @property
    def tag_prefix(self) -> str:
        return f"lab:{self.name}:"


def load_lab_config(path: Path) -> LabConfig:
    """Read and validate the whole lab file; LabConfigError names the first bad place."""
    path = Path(path)
    here = path.parent
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabConfigError(f"{path}: lab file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabConfigError(f"{path}: cannot read the lab file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LabConfigError(f"{path}: TOML syntax error: {exc}") from None
    v = _Validator(path)
    v.keys(doc, _TOP_KEYS, "")
    name = v.string(doc, "name", "", default=path.stem)
    if not name or any(ch in name for ch in ":/ \t"):
        v.fail("name", f"must be a non-empty word without ':', '/' or spaces, got {name!r}")
    default_eval = v.path(doc, "eval", "", here)
    models = _models(v, doc, here, default_eval)
    return LabConfig(
        path=path,
        name=name,
        models=models,
        devices=_devices(v, doc),
        delegates=_delegates(v, doc),
        threads=v.int_list(doc, "threads", "", default=(1,)),
        batches=v.int_list(doc, "batch", "", default=(1,)),
        concurrency=_concurrency(v, doc),
        load="concurrency" in doc,
        sustained_s=_sustained(v, doc),
        energy=v.boolean(doc, "energy", "", default=False),
        unplug=v.boolean(doc, "unplug", "", default=False),
        timing=_timing(v, doc.get("timing", {})),
        compare=_compare(v, doc.get("compare", {})),
        baseline=_baseline(v, doc),
        store=v.string(doc, "store", "", default=None),
        output=v.path(doc, "output", "", here, must_exist=False),
        build=v.path(doc, "build", "", here, must_exist=False),
        lock_wait=v.number(doc, "lock_wait", "", default=600.0, minimum=0),
    )


def _models(v: _Validator, doc: dict, here: Path, default_eval: Path | None):
    raw = doc.get("models")
    if raw is None:
        v.fail("models", "missing: add at least one [[models]] table with a source")
    if not isinstance(raw, list) or not raw or not all(isinstance(m, dict) for m in raw):
        v.fail("models", "must be a non-empty array of tables ([[models]])")
    models, seen = [], {}
    for i, m in enumerate(raw):
        where = f"models[{i}]"
        v.keys(m, _MODEL_KEYS, where)
        if "source" not in m:
            v.fail(f"{where}.source", "missing: the model file or convert directory")
        source = v.path(m, "source", where, here)
        variants = v.str_list(m, "variants", where, VARIANTS, default=None)
        calibration = v.path(m, "calibration", where, here)
        entry = ModelEntry(
            name=_model_name(v, source, where),
            source=source,
            variants=variants,
            calibration=calibration,
            eval_path=v.path(m, "eval", where, here) or default_eval,
            int8_io=v.boolean(m, "int8_io", where, default=False),
            metrics=_metrics(v, m, where),
        )
        if entry.name in seen:
            v.fail(
                f"{where}.source",
                f"model name {entry.name!r} is already used by {seen[entry.name]} "
                "(cells are named after the source's file name: rename one)",
            )
        seen[entry.name] = where
        _check_model(v, entry, where)
        models.append(entry)
    return tuple(models)


def _model_name(v: _Validator, source: Path, where: str) -> str:
    """The name harness gives the model's cells (see harness.lab.plan.load_variants)."""
    manifest = source / MANIFEST_NAME
    if source.is_dir() and manifest.is_file():
        try:
            doc = json.loads(manifest.read_text())
            return Path(doc["source"]["path"]).stem or source.name
        except (OSError, ValueError, KeyError, TypeError):
            return source.name  # a broken manifest fails the model's cells, not the file
    return source.stem if source.is_file() else source.name


def _check_model(v: _Validator, m: ModelEntry, where: str) -> None:
    if m.source.is_dir() and not m.converted and not (m.source / "saved_model.pb").is_file():
        v.fail(
            f"{where}.source",
            f"{m.source} is neither a SavedModel nor a `harness convert` directory",
        )
    suffix = m.source.suffix.lower()
    if m.source.is_file() and suffix not in (*KERAS_SUFFIXES, ".tflite"):
        v.fail(f"{where}.source", f"unknown model format {suffix!r} (.keras, .h5, .tflite)")
    if suffix == ".tflite" and m.variants and set(m.variants) != {"fp32"}:
        v.fail(f"{where}.variants", "a .tflite source is kept as it is: only fp32")
    needs_conversion = not m.converted and suffix != ".tflite"
    if needs_conversion and m.variants and "int8" in m.variants and m.calibration is None:
        v.fail(f"{where}.calibration", "variant int8 needs calibration data (an .npz)")


def _devices(v: _Validator, doc: dict) -> tuple[DeviceEntry, ...]:
    raw = doc.get("devices", ["local"])
    if not isinstance(raw, list) or not raw:
        v.fail("devices", "must be a non-empty array of device names or tables")
    out, seen = [], set()
    for i, d in enumerate(raw):
        where = f"devices[{i}]"
        if isinstance(d, str):
            entry = DeviceEntry(serial=d.strip())
        elif isinstance(d, dict):
            v.keys(d, _DEVICE_KEYS, where)
            serial = v.string(d, "serial", where, default=None)
            avd = v.string(d, "avd", where, default=None)
            if (serial is None) == (avd is None):
                v.fail(where, "give exactly one of serial or avd")
            entry = DeviceEntry(serial=serial, avd=avd)
        else:
            v.fail(where, f"must be a device name or a table, got {_type(d)}")
        if not entry.label or entry.label in seen:
            v.fail(where, f"device {entry.label!r} is empty or listed twice")
        seen.add(entry.label)
        out.append(entry)
    return tuple(out)


def _concurrency(v: _Validator, doc: dict) -> tuple[int, ...]:
    levels = v.int_list(doc, "concurrency", "", default=(1,))
    if max(levels) > MAX_CONCURRENCY:
        v.fail("concurrency", f"{max(levels)} is above the limit of {MAX_CONCURRENCY} instances")
    return levels


def _sustained(v: _Validator, doc: dict) -> float | None:
    """`sustained = "5m"` (or seconds as a number) by `harness run --sustained`'s rule."""
    if "sustained" not in doc:
        return None
    raw = doc["sustained"]
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        v.fail("sustained", f'must be a duration like "5m" or "90s", got {_type(raw)}')
    try:
        return parse_sustained(str(raw), "concurrency" if "concurrency" in doc else None)
    except HarnessError as exc:
        v.fail("sustained", str(exc))


def _delegates(v: _Validator, doc: dict) -> tuple[str, ...]:
    return v.str_list(doc, "delegates", "", DELEGATES, default=("cpu", "xnnpack"))


def _timing(v: _Validator, t: Any) -> LabTiming:
    if not isinstance(t, dict):
        v.fail("timing", f"must be a table, got {_type(t)}")
    v.keys(t, _TIMING_KEYS, "timing")
    d = LabTiming()
    cell_timeout = v.number(t, "cell_timeout_s", "timing", default=d.cell_timeout_s, minimum=0)
    return LabTiming(
        runs=v.integer(t, "runs", "timing", default=d.runs, minimum=1),
        warmup=v.integer(t, "warmup", "timing", default=d.warmup, minimum=0),
        rounds=v.integer(t, "rounds", "timing", default=d.rounds, minimum=1),
        min_secs=v.number(t, "min_secs", "timing", default=None, minimum=0),
        cell_timeout_s=cell_timeout or None,  # 0 = no per-cell timeout
        timeout_s=v.number(t, "timeout_s", "timing", default=d.timeout_s, minimum=1),
    )


def _metrics(v: _Validator, m: dict, where: str) -> tuple[str, ...]:
    """`metrics = ["auc", "f1:threshold=0.3"]`: each parsed now, so a typo fails the file."""
    from harness.measure.metrics import parse_metric

    texts = m.get("metrics", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        v.fail(f"{where}.metrics", f"must be an array of metric names, got {texts!r}")
    for t in texts:
        try:
            parse_metric(t)
        except HarnessError as exc:
            v.fail(f"{where}.metrics", str(exc))
    return tuple(texts)


def _compare(v: _Validator, c: Any) -> CompareConfig:
    if not isinstance(c, dict):
        v.fail("compare", f"must be a table, got {_type(c)}")
    v.keys(c, _COMPARE_KEYS, "compare")
    d = CompareConfig()
    raw = c.get("latency_threshold", f"{100 * d.latency_threshold}%")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        v.fail("compare.latency_threshold", f'must be a percentage like "5%", got {_type(raw)}')
    try:
        latency = parse_percent(str(raw))
    except HarnessError as exc:
        v.fail("compare.latency_threshold", str(exc))
    accuracy = v.number(c, "accuracy_threshold", "compare", default=d.accuracy_threshold_pp)
    alpha = v.number(c, "alpha", "compare", default=d.alpha, minimum=0)
    if not 0 < alpha < 1:
        v.fail("compare.alpha", f"must be between 0 and 1, got {alpha}")
    if accuracy < 0:
        v.fail("compare.accuracy_threshold", "must not be negative (percentage points)")
    metric = v.number(c, "metric_threshold", "compare", default=None, minimum=0)
    return CompareConfig(
        latency_threshold=latency,
        accuracy_threshold_pp=accuracy,
        metric_threshold=metric,
        alpha=alpha,
    )


def _baseline(v: _Validator, doc: dict) -> str:
    value = v.string(doc, "baseline", "", default="previous")
    if value in ("previous", "none"):
        return value
    kind, _, arg = value.partition(":")
    if kind in ("run", "tag") and arg.strip():
        return f"{kind}:{arg.strip()}"
    v.fail("baseline", f"must be previous, none, run:<RUN_ID> or tag:<TAG>, got {value!r}")


class _Validator:
    """Typed reads from the TOML document; every failure is one LabConfigError line."""

    def __init__(self, path: Path):
        self.file = path

    def fail(self, where: str, what: str):
        raise LabConfigError(f"{self.file}: {where}: {what}")

    def keys(self, table: dict, allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                place = f"{where}.{key}" if where else key
                self.fail(place, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def _place(self, where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def string(self, t: dict, key: str, where: str, default):
        if key not in t:
            return default
        if not isinstance(t[key], str):
            self.fail(self._place(where, key), f"must be a string, got {_type(t[key])}")
        return t[key]

    def boolean(self, t: dict, key: str, where: str, default: bool) -> bool:
        if key not in t:
            return default
        if not isinstance(t[key], bool):
            self.fail(self._place(where, key), f"must be true or false, got {_type(t[key])}")
        return t[key]

    def integer(self, t: dict, key: str, where: str, default, minimum: int):
        if key not in t:
            return default
        x = t[key]
        if isinstance(x, bool) or not isinstance(x, int) or x < minimum:
            self.fail(self._place(where, key), f"must be an integer >= {minimum}, got {x!r}")
        return x

    def number(self, t: dict, key: str, where: str, default, minimum: float | None = None):
        if key not in t:
            return default
        x = t[key]
        bad = isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)
        if bad or (minimum is not None and x < minimum):
            at_least = f" >= {minimum}" if minimum is not None else ""
            self.fail(self._place(where, key), f"must be a number{at_least}, got {x!r}")
        return float(x)

    def path(self, t: dict, key: str, where: str, here: Path, must_exist: bool = True):
        raw = self.string(t, key, where, default=None)
        if raw is None:
            return None
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else here / p
        if must_exist and not p.exists():
            self.fail(self._place(where, key), f"file not found: {raw}")
        return p

    def str_list(self, t: dict, key: str, where: str, allowed, default):
        if key not in t:
            return default
        x, place = t[key], self._place(where, key)
        if not isinstance(x, list) or not x or not all(isinstance(s, str) for s in x):
            self.fail(place, f"must be a non-empty array of strings, got {x!r}")
        for s in x:
            if s not in allowed:
                what = key.rstrip("s")
                self.fail(place, f"unknown {what} {s!r}; choose from {', '.join(allowed)}")
        if len(set(x)) != len(x):
            self.fail(place, "lists a value twice")
        return tuple(x)

    def int_list(self, t: dict, key: str, where: str, default):
        if key not in t:
            return default
        x, place = t[key], self._place(where, key)
        ok = isinstance(x, list) and x
        if not ok or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in x):
            self.fail(place, f"must be a non-empty array of positive integers, got {x!r}")
        if len(set(x)) != len(x):
            self.fail(place, "lists a value twice")
        return tuple(x)


def _type(x: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(x), {list: "an array", dict: "a table"}.get(type(x), type(x).__name__)
    )
