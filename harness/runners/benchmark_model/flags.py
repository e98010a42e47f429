"""Delegate, threads, timing and memory -> benchmark_model flags: pure functions.

Mapping (issue 4):
    cpu      --use_xnnpack=false                  (TFLite's reference/optimised kernels)
    xnnpack  --use_xnnpack=true
    gpu      --use_gpu=true                       (+ --gpu_precision_loss_allowed, --gpu_backend)
    gpu-f32  --use_gpu=true --gpu_precision_loss_allowed=false
    nnapi    --use_nnapi=true --disable_nnapi_cpu=true|false (+ --nnapi_accelerator_name)
    threads  --num_threads
    runs     --num_runs --min_secs --max_secs --warmup_runs (--warmup_min_secs=0: exact count)
    memory   --report_peak_memory_footprint=true, only in a separate pass (its sampling
             thread can affect timing, by the flag's own help text in benchmark_model.cc)
    profile  --enable_op_profiling=true, only in a separate pass (it perturbs timing)
    accuracy --input_layer, --input_layer_shape and --input_layer_value_files naming every
             input, in order (benchmark_tflite_model.cc aborts otherwise)
A delegate benchmark_model has no flag for (npu) is unsupported, with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from harness.errors import HarnessError

DELEGATE_FLAGS: dict[str, tuple[str, ...]] = {
    "cpu": ("--use_xnnpack=false",),
    "xnnpack": ("--use_xnnpack=true",),
    "gpu": ("--use_gpu=true",),
    "gpu-f32": ("--use_gpu=true", "--gpu_precision_loss_allowed=false"),
    "nnapi": ("--use_nnapi=true",),
}
ACCELERATED = ("gpu", "gpu-f32", "nnapi")  # delegates whose coverage is recorded
GPU_BACKENDS = ("cl", "gl")
AFFINITY_MODES = ("all", "big", "little")
MAX_SECS_DEFAULT = 150.0  # the tool's own default, passed explicitly
PROFILE_RUNS = 20
MEMORY_RUNS = 20
# The memory pass runs at least this long: the monitor samples every 50 ms
# (--memory_footprint_check_interval_ms's default, benchmark_model.cc).
MEMORY_MIN_SECS = 0.5

# Flags every pass may send, whatever the cell: the start check requires each of them in
# the binary's --help usage (benchmark_model.cc logs unknown flags and goes on without them).
BASE_FLAGS = (
    "graph",
    "num_threads",
    "num_runs",
    "min_secs",
    "max_secs",
    "warmup_runs",
    "warmup_min_secs",
    "use_xnnpack",
    "report_peak_memory_footprint",
    "enable_op_profiling",
    "input_layer",
    "input_layer_shape",
    "input_layer_value_files",
    "output_filepath",
)


@dataclass(frozen=True)
class BenchmarkOptions:
    """Android-only run options (`harness run` flags); serialisable into the RunSpec."""

    affinity: str = "big"  # all | big | little | hex MASK
    require_full_delegation: bool = False
    gpu_precision_loss: bool | None = None  # None: the tool's default
    gpu_backend: str | None = None  # cl | gl
    nnapi_accelerator: str | None = None
    # nnapi_delegate_provider.cc defaults it to true (and ignores it when an accelerator
    # is named): always sent explicitly, so a run says which it measured.
    disable_nnapi_cpu: bool = True
    op_profile: bool = False
    eval_limit: int = 100
    cooldown_s: float = 0.0
    thermal_wait_s: float = 60.0
    max_secs: float = MAX_SECS_DEFAULT
    energy: bool = False  # sample the battery around each timed pass: mJ per inference
    unplug: bool = False  # `dumpsys battery unplug` for the run (reset afterwards)

    def __post_init__(self) -> None:
        parse_affinity(self.affinity)
        if self.gpu_backend is not None and self.gpu_backend not in GPU_BACKENDS:
            raise HarnessError(f"--gpu-backend must be one of {', '.join(GPU_BACKENDS)}")
        if self.eval_limit < 1:
            raise HarnessError("--eval-limit must be at least 1")
        if self.cooldown_s < 0 or self.thermal_wait_s < 0:
            raise HarnessError("--cooldown must not be negative")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> BenchmarkOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})


def parse_affinity(text: str) -> str:
    """'all', 'big', 'little' or a hex CPU mask ('f0', '0xf0'); returns it normalised."""
    t = str(text).strip().lower()
    if t in AFFINITY_MODES:
        return t
    digits = t.removeprefix("0x")
    if digits and all(c in "0123456789abcdef" for c in digits) and int(digits, 16) > 0:
        return format(int(digits, 16), "x")
    raise HarnessError(f"--affinity {text!r}: use all, big, little or a hex CPU mask like f0")


def delegate_flags(delegate: str, options: BenchmarkOptions) -> list[str] | None:
    """The flags selecting `delegate`, or None when benchmark_model cannot run it."""
    base = DELEGATE_FLAGS.get(delegate)
    if base is None:
        return None
    flags = list(base)
    if delegate == "gpu" and options.gpu_precision_loss is not None:
        flags.append(f"--gpu_precision_loss_allowed={_bool(options.gpu_precision_loss)}")
    if delegate in ("gpu", "gpu-f32") and options.gpu_backend:
        flags.append(f"--gpu_backend={options.gpu_backend}")
    if delegate == "nnapi":
        if options.nnapi_accelerator:
            flags.append(f"--nnapi_accelerator_name={options.nnapi_accelerator}")
        flags.append(f"--disable_nnapi_cpu={_bool(options.disable_nnapi_cpu)}")
    if options.require_full_delegation and delegate in ACCELERATED:
        flags.append("--require_full_delegation=true")
    return flags


def timing_flags(runs: int, min_secs: float | None, warmup: int, max_secs: float) -> list[str]:
    """Exactly `runs` timed runs (at least `min_secs` when given) after `warmup` runs."""
    return [
        f"--num_runs={int(runs)}",
        f"--min_secs={_num(min_secs or 0)}",
        f"--max_secs={_num(max(max_secs, min_secs or 0))}",
        f"--warmup_runs={int(warmup)}",
        "--warmup_min_secs=0",
    ]


def cell_flags(
    graph: str,
    delegate: str,
    threads: int,
    runs: int,
    min_secs: float | None,
    warmup: int,
    options: BenchmarkOptions,
) -> list[str] | None:
    """The timed pass: graph, delegate, threads, timing. None: unsupported.

    No --report_peak_memory_footprint here: its sampling thread competes with the timed
    runs; the peak comes from memory_flags' own pass."""
    chosen = delegate_flags(delegate, options)
    if chosen is None:
        return None
    return [
        f"--graph={graph}",
        *chosen,
        f"--num_threads={int(threads)}",
        *timing_flags(runs, min_secs, warmup, options.max_secs),
    ]


def batch_flags(inputs: tuple, batch: int) -> list[str]:
    """--input_layer/--input_layer_shape resizing every input's dynamic batch to `batch`
    (other dynamic dimensions to 1, as the Python runner does); [] at batch 1.

    benchmark_tflite_model.cc: with --input_layer given, Init checks that it names as
    many inputs as the model has ("Inputs mismatch"), and ResizeInputTensors resizes
    each to its --input_layer_shape item, matched by position; PopulateInputLayerInfo
    splits the names on ',' and the shapes on ':'."""
    if batch == 1:
        return []
    for spec in inputs:
        if "," in spec.name:
            raise HarnessError(
                f"input {spec.name!r} has a ',' in its name: benchmark_model's "
                f"--input_layer cannot name it, so it cannot be resized to batch {batch}"
            )
    shapes = []
    for spec in inputs:
        dims = tuple(spec.shape_signature) or tuple(spec.shape)
        shapes.append(
            tuple(batch if k == 0 and d == -1 else 1 if d == -1 else d for k, d in enumerate(dims))
        )
    return [
        "--input_layer=" + ",".join(spec.name for spec in inputs),
        "--input_layer_shape=" + ":".join(_shape(sh) for sh in shapes),
    ]


def memory_flags(graph: str, delegate: str, threads: int, options: BenchmarkOptions) -> list[str]:
    """The separate peak-memory pass: never the source of a cell's latency figures."""
    return [
        f"--graph={graph}",
        *(delegate_flags(delegate, options) or []),
        f"--num_threads={int(threads)}",
        *timing_flags(MEMORY_RUNS, MEMORY_MIN_SECS, 1, options.max_secs),
        "--report_peak_memory_footprint=true",
    ]


def required_flags(delegate: str, options: BenchmarkOptions) -> list[str]:
    """Names of the flags a cell of `delegate` sends that are not in BASE_FLAGS."""
    chosen = delegate_flags(delegate, options) or []
    names = [f[2:].split("=", 1)[0] for f in chosen]
    return [n for n in names if n not in BASE_FLAGS]


def profile_flags(graph: str, delegate: str, threads: int, options: BenchmarkOptions) -> list[str]:
    """The separate op-profiling pass: never the source of a cell's latency figures."""
    return [
        f"--graph={graph}",
        *(delegate_flags(delegate, options) or []),
        f"--num_threads={int(threads)}",
        *timing_flags(PROFILE_RUNS, None, 1, options.max_secs),
        "--enable_op_profiling=true",
    ]


@dataclass(frozen=True)
class InputFeed:
    """One model input of an accuracy invocation: its name, shape and staged value file."""

    name: str
    shape: tuple[int, ...]
    values_file: str


def eval_flags(
    graph: str,
    delegate: str,
    threads: int,
    options: BenchmarkOptions,
    inputs: list[InputFeed],
    output_file: str,
) -> list[str]:
    """One accuracy invocation: every input named, shaped and fed, the outputs dumped.

    benchmark_tflite_model.cc: PopulateInputValueFiles looks each value file's name up in
    --input_layer (FindLayerInfoIndex: FATAL, abort, when absent); --input_layer and
    --input_layer_shape must have as many items as each other and Init checks that count
    against the model's inputs; the inputs are matched by position."""
    if not inputs:
        raise HarnessError("an accuracy invocation needs the model's inputs")
    for feed in inputs:
        if "," in feed.name:  # Split(names, ',') in PopulateInputLayerInfo
            raise HarnessError(
                f"input {feed.name!r} has a ',' in its name: benchmark_model's "
                "--input_layer cannot name it"
            )
    return [
        f"--graph={graph}",
        *(delegate_flags(delegate, options) or []),
        f"--num_threads={int(threads)}",
        *timing_flags(1, None, 0, options.max_secs),
        "--input_layer=" + ",".join(f.name for f in inputs),
        "--input_layer_shape=" + ":".join(_shape(f.shape) for f in inputs),
        "--input_layer_value_files="
        + ",".join(f"{escape_layer(f.name)}:{f.values_file}" for f in inputs),
        f"--output_filepath={output_file}",
    ]


def escape_layer(name: str) -> str:
    """--input_layer_value_files splits NAME:FILE on ':'; a ':' in the name is written '::'
    (SplitInputLayerNameAndValueFile, benchmark_tflite_model.cc; its help text's "\\:"
    is not what the code reads)."""
    return name.replace(":", "::")


def _shape(shape: tuple[int, ...]) -> str:
    return ",".join(str(int(d)) for d in shape)


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _num(v: float) -> str:
    return format(float(v), "g")
