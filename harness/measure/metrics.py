"""Quality metrics chosen per run (`harness run --metric NAME[:OPTIONS]`): pure functions.

Each metric is computed on the host from the outputs the device produced (dequantised
float32, one row per eval sample), against the labels or against the fp32 CPU
reference's outputs on the same inputs. A metric's definition carries its direction
(higher or lower is better), its units and the units its compare threshold is given
in, so compare, recommend, Pareto and the report never assume "higher is better".

    top1, topk:k=5                         labels: integer class ids
    auc[:class=C]                          labels: binary (or C one-vs-rest)
    precision|recall|f1[:threshold=T,class=C]
    mae, rmse                              labels: numbers (regression targets)
    snr, cosine, max_abs, mean_abs, agreement   against the fp32 CPU reference
    module.path:function[:OPTIONS]         a user function (outputs, labels) -> float

Every metric also takes `output=NAME`, the output tensor it reads (a multi-output model:
a detector's scores, a landmark model's points). The device returns one output per run,
so the metrics of a run read the same one (eval_output); drift is measured on it too.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.errors import HarnessError

# SNR of identical outputs is infinite; JSON (and PostgreSQL's json) has no infinity,
# so the stored figure is capped here. 200 dB is far beyond float32's ~150 dB.
SNR_CAP_DB = 200.0


@dataclass(frozen=True)
class MetricDef:
    """What a metric is: its direction, units and how a change in it is judged."""

    name: str
    higher_is_better: bool
    units: str  # of the value: "fraction", "dB", "label units", ...
    needs: str  # "labels" or "reference"
    description: str
    threshold_units: str = ""  # compare thresholds are given in these
    threshold_scale: float = 1.0  # value * scale = figure in threshold units
    default_threshold: float = 0.0
    options: frozenset[str] = frozenset()
    integer_labels: bool = False  # class ids (top1, auc, ...) rather than numbers

    def to_dict(self) -> dict:
        return asdict(self) | {"options": sorted(self.options)}


def _fraction(name, needs, description, options=(), integer_labels=True) -> MetricDef:
    # fractions are judged in percentage points: 0.5 means 0.978 -> 0.972 counts
    return MetricDef(
        name,
        True,
        "fraction",
        needs,
        description,
        "pp",
        100.0,
        0.5,
        frozenset({"output", *options}),
        integer_labels,
    )


BUILTINS: dict[str, MetricDef] = {
    d.name: d
    for d in (
        _fraction("top1", "labels", "share of samples whose top class is the label"),
        _fraction("topk", "labels", "share of samples whose label is among the k top", ("k",)),
        _fraction("auc", "labels", "ROC AUC of a binary scorer (class C one-vs-rest)", ("class",)),
        _fraction("precision", "labels", "precision at a threshold", ("threshold", "class")),
        _fraction("recall", "labels", "recall at a threshold", ("threshold", "class")),
        _fraction("f1", "labels", "F1 at a threshold", ("threshold", "class")),
        MetricDef(
            "mae", False, "label units", "labels", "mean absolute error", "label units",
            options=frozenset({"output"}),
        ),
        MetricDef(
            "rmse", False, "label units", "labels", "root mean squared error", "label units",
            options=frozenset({"output"}),
        ),
        MetricDef(
            "snr", True, "dB", "reference", "signal-to-noise ratio vs the fp32 CPU outputs",
            "dB", 1.0, 1.0, frozenset({"output"}),
        ),
        MetricDef(
            "cosine", True, "", "reference", "mean cosine similarity to the fp32 CPU outputs",
            "", 1.0, 0.001, frozenset({"output"}),
        ),
        MetricDef(
            "max_abs", False, "output units", "reference", "largest |output - fp32 CPU output|",
            "output units", options=frozenset({"output"}),
        ),
        MetricDef(
            "mean_abs", False, "output units", "reference", "mean |output - fp32 CPU output|",
            "output units", options=frozenset({"output"}),
        ),
        _fraction(
            "agreement", "reference", "share of samples whose top class matches fp32 CPU's",
            integer_labels=False,
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class MetricSpec:
    """One `--metric` as given: a built-in or a user function, with its options."""

    label: str  # how it is shown and stored: "topk:k=5", "mymod.scores:fn"
    definition: MetricDef
    options: tuple[tuple[str, str], ...] = ()
    function: str | None = None  # user metrics: "module.path:function"
    version: str | None = None  # user metrics: the module's version or source hash

    @property
    def name(self) -> str:
        return self.definition.name

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)

    @property
    def output(self) -> str | None:
        return self.option("output")


@dataclass(frozen=True)
class MetricValue:
    """One metric of one cell, as stored on its record (value None: see error)."""

    name: str  # the spec's label
    value: float | None
    higher_is_better: bool
    units: str
    threshold_units: str = ""
    threshold_scale: float = 1.0
    default_threshold: float = 0.0
    error: str | None = None
    version: str | None = None  # user metrics
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MetricValue:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def better(self, a: float, b: float) -> bool:
        """True when a is strictly better than b in this metric's direction."""
        return a > b if self.higher_is_better else a < b

    def score(self) -> float | None:
        """The value oriented so that higher is always better (for ranking)."""
        if self.value is None:
            return None
        return self.value if self.higher_is_better else -self.value


# -- parsing ------------------------------------------------------------------------


def parse_metric(text: str) -> MetricSpec:
    """`NAME[:k=v,...]` or `module.path:function[:k=v,...]`; HarnessError when unknown."""
    text = text.strip()
    head, _, rest = text.partition(":")
    if head in BUILTINS:
        definition = BUILTINS[head]
        options = _options(text, rest, definition)
        return MetricSpec(_label(head, options), definition, options)
    func, _, opts = rest.partition(":")
    if not rest or not func.isidentifier() or not all(p.isidentifier() for p in head.split(".")):
        known = ", ".join(BUILTINS)
        raise HarnessError(f"unknown metric {text!r}: use one of {known}, or module.path:function")
    fn, version = load_user_metric(head, func)
    definition = MetricDef(
        f"{head}:{func}",
        bool(getattr(fn, "higher_is_better", True)),
        str(getattr(fn, "units", "")),
        "labels" if getattr(fn, "needs_labels", False) else "outputs",
        (inspect.getdoc(fn) or "").split("\n")[0],
        str(getattr(fn, "units", "")),
        1.0,
        float(getattr(fn, "threshold", 0.0)),
        frozenset({"output"}),
    )
    options = _options(text, opts, definition)
    return MetricSpec(
        _label(f"{head}:{func}", options), definition, options, f"{head}:{func}", version
    )


def _options(text: str, rest: str, definition: MetricDef) -> tuple[tuple[str, str], ...]:
    if not rest:
        return ()
    out = {}
    for part in rest.split(","):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key or not value:
            raise HarnessError(f"metric {text!r}: options are key=value, comma-separated")
        if key not in definition.options:
            allowed = ", ".join(sorted(definition.options))
            raise HarnessError(f"metric {text!r}: unknown option {key!r} (takes {allowed})")
        out[key] = value
    _check_numbers(text, out)
    return tuple(sorted(out.items()))


def _check_numbers(text: str, options: dict) -> None:
    try:
        k = int(options.get("k", 1))
        int(options.get("class", 0))
        t = float(options.get("threshold", 0.5))
    except ValueError as exc:
        raise HarnessError(f"metric {text!r}: {exc}") from exc
    if k < 1 or not math.isfinite(t):
        raise HarnessError(f"metric {text!r}: k must be >= 1 and threshold a finite number")


def _label(name: str, options: tuple[tuple[str, str], ...]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in options) if options else "")


def load_user_metric(module: str, function: str) -> tuple[Callable, str]:
    """Import `module:function` and return it with a version: the module's
    __version__, else its distribution's version, else a hash of its source file."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any import-time failure of user code is the user's to fix
        raise HarnessError(
            f"metric {module}:{function}: cannot import {module}: {type(exc).__name__}: {exc}"
        ) from exc
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise HarnessError(f"metric {module}:{function}: {module} has no function {function!r}")
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(module.split(".")[0])
        except Exception:  # not an installed distribution: identify it by its source
            path = getattr(mod, "__file__", None)
            version = "sha256:" + _file_sha(path)[:12] if path else "unknown"
    return fn, str(version)


def _file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def default_metrics(has_labels: bool) -> tuple[MetricSpec, ...]:
    """Without --metric: top-1 where labels exist (as before metrics were chosen)."""
    return (parse_metric("top1"),) if has_labels else ()


# -- checks before a run --------------------------------------------------------------


def eval_output(specs: tuple[MetricSpec, ...] | None, output_names: tuple[str, ...]) -> int:
    """The index of the output the run's metrics read (0, the first, unless one names
    another by `output=NAME`); HarnessError when a name is not the model's or two
    metrics name different outputs (the device returns one output per run)."""
    named = []
    for s in specs or ():
        if s.output is None:
            continue
        if s.output not in output_names:
            raise HarnessError(
                f"metric {s.label}: the model has no output {s.output!r} "
                f"(outputs: {', '.join(output_names)})"
            )
        named.append(s)
    chosen = {s.output for s in named}
    if len(chosen) > 1:
        raise HarnessError(
            "metrics read different outputs "
            f"({', '.join(f'{s.label}: {s.output}' for s in named)}): a run scores one "
            "output; time the model once per output"
        )
    # a metric without output=NAME reads the same output as the named ones
    return output_names.index(chosen.pop()) if chosen else 0


def check_metrics(
    specs: tuple[MetricSpec, ...],
    output_names: tuple[str, ...],
    output_shape: tuple[int, ...],
    labels: np.ndarray | None,
    has_eval: bool,
) -> None:
    """Everything that can be known wrong before any device time is spent.
    `output_shape` is the shape of the output the metrics read (eval_output's)."""
    eval_output(specs, output_names)
    for s in specs:
        if not has_eval:
            raise HarnessError(f"metric {s.label} needs eval data: give --eval")
        d = s.definition
        if d.needs == "labels" and labels is None:
            raise HarnessError(f"metric {s.label} needs labels: the eval data has no 'y'")
        if d.integer_labels and labels is not None and not _integral(labels):
            raise HarnessError(
                f"metric {s.label} needs integer class labels, got {labels.dtype} values"
            )
        classes = int(np.prod(output_shape[1:])) if len(output_shape) > 1 else 1
        if s.name == "auc" and classes > 2 and s.option("class") is None:
            raise HarnessError(
                f"metric auc: the output has {classes} classes; name the positive one, "
                f"e.g. --metric auc:class=1"
            )
        cls = s.option("class")
        if cls is not None and not 0 <= int(cls) < max(classes, 2):
            raise HarnessError(f"metric {s.label}: class {cls} is not in 0..{max(classes, 2) - 1}")


def _integral(labels: np.ndarray) -> bool:
    return bool(np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_)


# -- computing ------------------------------------------------------------------------


def compute_metrics(
    specs: tuple[MetricSpec, ...],
    outputs: np.ndarray,
    labels: np.ndarray | None,
    reference: np.ndarray | None,
) -> tuple[MetricValue, ...]:
    """Every metric of one cell. A metric that cannot be computed (a user function that
    raises, a missing reference) gets value None and the reason as its error, so the
    cell keeps its timing."""
    return tuple(_one(s, outputs, labels, reference) for s in specs)


def _one(s: MetricSpec, outputs, labels, reference) -> MetricValue:
    d = s.definition
    base = MetricValue(
        s.label,
        None,
        d.higher_is_better,
        d.units,
        d.threshold_units,
        d.threshold_scale,
        d.default_threshold,
        version=s.version,
    )
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    try:
        if s.function is not None:
            fn, _ = load_user_metric(*s.function.split(":"))
            value = float(fn(np.asarray(outputs), labels))
        elif d.needs == "reference":
            if reference is None:
                return _failed(base, "no fp32 CPU reference outputs to compare against")
            ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
            if ref.shape != out.shape:
                return _failed(base, f"outputs {out.shape} vs reference {ref.shape}")
            value = REFERENCE_METRICS[d.name](out, ref)
        else:
            if labels is None:
                return _failed(base, "no labels")
            value = _labelled(s, out, np.asarray(labels))
    except HarnessError as exc:
        return _failed(base, str(exc))
    except Exception as exc:  # a user function's own bug: one line naming the metric
        return _failed(base, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    if not math.isfinite(value):
        return _failed(base, f"not a finite number: {value}")
    return MetricValue(**(asdict(base) | {"value": value}))


def _failed(base: MetricValue, error: str) -> MetricValue:
    return MetricValue(**(asdict(base) | {"error": error}))


def _labelled(s: MetricSpec, out: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) != len(out):
        raise HarnessError(f"{len(out)} outputs for {len(labels)} labels")
    name = s.name
    if name in ("mae", "rmse"):
        y = labels.astype(np.float64).reshape(len(labels), -1)
        if y.shape != out.shape:
            raise HarnessError(f"labels of shape {y.shape[1:]} for outputs of {out.shape[1:]}")
        return mae(out, y) if name == "mae" else rmse(out, y)
    y = labels.reshape(-1).astype(np.int64)
    if name == "top1":
        return top1(out, y)
    if name == "topk":
        return topk(out, y, int(s.option("k", 5)))
    cls = int(s.option("class", 1))
    score = positive_score(out, cls)
    if name == "auc":
        return auc(score, y == cls)
    threshold = float(s.option("threshold", 0.5))
    return at_threshold(name, score, y == cls, threshold)


def predicted_class(out: np.ndarray) -> np.ndarray:
    """Arg-max of each row; a single-column output is a binary score cut at 0.5."""
    if out.shape[1] == 1:
        return (out[:, 0] >= 0.5).astype(np.int64)
    return np.argmax(out, axis=1)


def positive_score(out: np.ndarray, cls: int) -> np.ndarray:
    """The score of class `cls`: the one column of a binary scorer, else column cls."""
    if out.shape[1] == 1:
        if cls != 1:
            raise HarnessError(f"a single-score output has only the positive class 1, not {cls}")
        return out[:, 0]
    if not 0 <= cls < out.shape[1]:
        raise HarnessError(f"class {cls} is not among the output's {out.shape[1]} columns")
    return out[:, cls]


def top1(out: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predicted_class(out) == y))


def topk(out: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the k highest scores (ties: lower index first,
    as a stable sort of the negated scores gives)."""
    k = min(k, out.shape[1])
    top = np.argsort(-out, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == y[:, None], axis=1)))


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) identity; ties count one half."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise HarnessError("AUC needs both classes among the labels")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def at_threshold(name: str, score: np.ndarray, positive: np.ndarray, threshold: float) -> float:
    """Precision, recall or F1 of `score >= threshold`; 0 where undefined (no
    predicted or no actual positives), as scikit-learn's zero_division=0."""
    pred = score >= threshold
    tp = float(np.sum(pred & positive))
    fp = float(np.sum(pred & ~positive))
    fn = float(np.sum(~pred & positive))
    if name == "precision":
        return tp / (tp + fp) if tp + fp else 0.0
    if name == "recall":
        return tp / (tp + fn) if tp + fn else 0.0
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def mae(out: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(out - y)))


def rmse(out: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((out - y) ** 2)))


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    """10 log10(signal power / error power), the fp32 CPU outputs being the signal."""
    noise = float(np.sum((out - ref) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return SNR_CAP_DB
    if signal == 0.0:
        return -SNR_CAP_DB
    return float(min(10 * math.log10(signal / noise), SNR_CAP_DB))


def cosine(out: np.ndarray, ref: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of output and reference rows (two
    all-zero rows count as identical)."""
    num = np.sum(out * ref, axis=1)
    den = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    both_zero = (den == 0) & (np.abs(out).sum(axis=1) == 0) & (np.abs(ref).sum(axis=1) == 0)
    sims = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(both_zero, 1.0, 0.0))
    return float(np.mean(sims))


def agreement(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(predicted_class(out) == predicted_class(ref)))


REFERENCE_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "snr": snr_db,
    "cosine": cosine,
    "max_abs": lambda o, r: float(np.max(np.abs(o - r), initial=0.0)),
    "mean_abs": lambda o, r: float(np.mean(np.abs(o - r))) if o.size else 0.0,
    "agreement": agreement,
}


# -- reading a record back -----------------------------------------------------------


def primary(metrics: list | tuple | None) -> MetricValue | None:
    """The first (primary) metric of a stored cell, or None."""
    if not metrics:
        return None
    m = metrics[0]
    return m if isinstance(m, MetricValue) else MetricValue.from_dict(m)


def legacy_top1() -> MetricValue:
    """How a record stored before metrics were chosen reads: its accuracy is top-1."""
    d = BUILTINS["top1"]
    return MetricValue(
        "top1", None, True, d.units, d.threshold_units, d.threshold_scale, d.default_threshold
    )


def record_primary(record) -> MetricValue | None:
    """A cell record's primary metric with its value: the first of `metrics`, or, for
    a record stored before metrics were chosen, its accuracy read as top-1."""
    if getattr(record, "metrics", None):
        return primary(record.metrics)
    if record.accuracy is not None:
        return MetricValue(**(asdict(legacy_top1()) | {"value": record.accuracy}))
    return None


def metric_warnings(record, said: set[str]) -> list[str]:
    """One line per metric that could not be computed, each said once per run (`said`
    remembers); the cell's timing is stored either way."""
    lines = []
    for m in getattr(record, "metrics", None) or []:
        if m.get("error") and (key := f"{m['name']}|{m['error']}") not in said:
            said.add(key)
            lines.append(f"warning: metric {m['name']} failed: {m['error']} (timing kept)")
    return lines
