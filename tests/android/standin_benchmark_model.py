"""STAND-IN for TFLite's benchmark_model: the only fake in the Android tests.

The real binary for a phone (an Android/ARM executable, GPU and NNAPI delegates inside) cannot
be obtained or run here; ../shared/tools holds a real Linux build, which the tests also
drive, but it has no GPU or NNAPI delegate to show. This script is registered with
`harness tools add` in its place and run by `harness serve-device` exactly where the binary
would be. For timing it replays a recorded REAL benchmark_model output
(tests/fixtures/benchmark_model/) chosen by the flags it receives, rewritten into the
current binary's memory and profile formats; for --output_filepath it runs the model for
real with the host's TFLite runtime (ai-edge-litert) on the --input_layer_value_files data,
so accuracy is computed from genuine outputs. Every invocation's argv and CPU affinity is
appended to $ADBD_ROOT/standin-calls.jsonl for the tests to inspect.

It enforces the real tool's rules, each cited beside it (files under tflite/ in
google-ai-edge/LiteRT; stats_calculator.h in tensorflow/core/util/):
usage + exit 1 on --help; FATAL + abort (134) on value files the --input_layer does not
name or whose size is not the tensor's; "Unconsumed cmdline flags" for flags the build does
not define; the all-same statistics form; the current memory lines; tab-separated profile
rows. Modes, from $ADBD_ROOT/standin-mode.json (the daemon's environment is fixed when it
starts) or the environment: STANDIN_BM_BUILD picks the build: "android" (default: GPU and
NNAPI providers), "cpu-only" (no GPU/NNAPI flags, as the CMake build), "litert" (LiteRT's
CompiledModel benchmark usage); STANDIN_BM_ALL_SAME=1 prints the steady runs in the
all-same form; STANDIN_BM_FAULT=outputs makes every --output_filepath invocation abort (a
fault the tests inject).

The test writes a copy with a shebang naming its interpreter and FIXTURES set.
"""

import json
import os
import re
import resource
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent  # replaced in the copy the test writes

RECORDINGS = {
    "cpu": "01_tf42507_cpu_op_profiling_peak_memory.txt",
    "xnnpack": "02_xnnpack999_rpi_xnnpack_memory_delta.txt",
    "gpu": "06_tf43541_gpu_fully_delegated.txt",
    "nnapi": "10_tf56301_nnapi_partial_logcat.txt",
}
# A real tab-separated XNNPACK op profile (the TF 2.21 build in ../shared/tools).
PROFILE = "20_local_tf221_xnnpack_op_profile_peak_monitored.txt"
# What the real build printed on MediaPipe's face detector (../shared/tools/BUILD_INFO.txt).
PEAK_MB = 14.7734

BASE = [
    "num_runs",
    "min_secs",
    "max_secs",
    "run_delay",
    "num_threads",
    "warmup_runs",
    "warmup_min_secs",
    "verbose",
    "report_peak_memory_footprint",
    "memory_footprint_check_interval_ms",
    "graph",
    "input_layer",
    "input_layer_shape",
    "input_layer_value_range",
    "input_layer_value_files",
    "allow_fp16",
    "require_full_delegation",
    "enable_op_profiling",
    "output_filepath",
    "help",
    "use_xnnpack",
    "xnnpack_force_fp16",
]
GPU = ["use_gpu", "gpu_precision_loss_allowed", "gpu_experimental_enable_quant", "gpu_backend"]
NNAPI = ["use_nnapi", "nnapi_accelerator_name", "disable_nnapi_cpu", "nnapi_allow_fp16"]
# litert/tools/benchmark_litert_model.h (+ --help from the shared execution provider)
LITERT = ["graph", "num_runs", "use_cpu", "use_gpu", "use_npu", "dispatch_library_path", "help"]


def mode(name: str, default: str = "") -> str:
    """A test-chosen mode: $ADBD_ROOT/standin-mode.json, else the environment."""
    path = Path(os.environ.get("ADBD_ROOT", "/nonexistent")) / "standin-mode.json"
    if path.is_file():
        chosen = json.loads(path.read_text())
        if name in chosen:
            return str(chosen[name])
    return os.environ.get(name, default)


def build_flags() -> list[str]:
    build = mode("STANDIN_BM_BUILD", "android")
    if build == "litert":
        return LITERT
    if build == "cpu-only":  # the providers are compiled only for Android (CMake)
        return BASE
    return BASE + GPU + NNAPI


def main(argv: list[str]) -> int:
    _log(argv)
    known = build_flags()
    flags, unconsumed = {}, []
    for arg in argv:
        name, eq, value = arg[2:].partition("=")
        if arg.startswith("--") and name in known:
            flags[name] = value if eq else "true"
        else:
            unconsumed.append(arg)
    err("INFO: STARTING!")
    # benchmark_model.cc ParseFlags: --help logs Flags::Usage (command_line_flags.cc) at
    # ERROR, i.e. on stderr, and returns an error: "Benchmarking failed.", exit 1.
    if flags.get("help") == "true":
        err("ERROR: usage: ./benchmark_model <flags>\nFlags:")
        for name in known:
            err(f"\t--{name}=\tstring\toptional\t(stand-in)")
        err("ERROR: Benchmarking failed.")
        return 1
    # benchmark_model.cc ParseFlags: flags the build does not define are logged and the
    # benchmark goes on without them.
    if unconsumed:
        err("WARN: Unconsumed cmdline flags: " + " ".join(unconsumed))
    if not Path(flags.get("graph", "")).is_file():
        err(f"ERROR: Could not open '{flags.get('graph')}'.")
        return 1
    inputs = _check_inputs(flags)  # may abort, as the tool does
    if inputs:
        _check_model_inputs(flags["graph"], inputs)  # every pass, timed ones too
    if flags.get("use_gpu") == "true":
        delegate = "gpu"
    elif flags.get("use_nnapi") == "true":
        delegate = "nnapi"
        if flags.get("require_full_delegation") == "true":
            err("Disallowed CPU fallback detected.")
            err("Benchmarking failed.")
            return 1
    elif flags.get("use_xnnpack") == "true":
        delegate = "xnnpack"
    else:
        delegate = "cpu"
    # benchmark_model.cc Run: the timed loop goes on until --num_runs AND --min_secs are
    # both reached (or --max_secs): the replay takes at least --min_secs, as the tool does
    # (a battery sampler around the pass sees it last)
    time.sleep(min(float(flags.get("min_secs") or 0), float(flags.get("max_secs") or 150)))
    sys.stderr.write(_replay(delegate, flags))  # the tool logs to stderr
    if flags.get("output_filepath") and mode("STANDIN_BM_FAULT") == "outputs":
        # a fault injected by the tests: the accuracy invocation aborts
        _fatal(f"Failed to read the input_layer_value_file:{flags.get('input_layer_value_files')}")
    if flags.get("output_filepath"):
        _write_outputs(flags, inputs)
    return 0


def _replay(delegate: str, flags: dict) -> str:
    lines = (FIXTURES / RECORDINGS[delegate]).read_text().split("\n")[1:]
    out, delta = [], None
    for line in lines:
        if re.search(r"Profiling Info for Benchmark Initialization|Operator-wise Profiling", line):
            break  # the recording's own profile: printed below only when asked for
        if m := re.search(
            r"(?:Peak memory footprint|Memory footprint delta.*?) \(MB\): (.*)", line
        ):
            delta = m.group(1)
            continue
        if "Note: as the benchmark tool itself affects memory" in line:
            continue
        out.append(line)
    if mode("STANDIN_BM_ALL_SAME") == "1":
        # stats_calculator.h Stat::OutputToStream: equal values print neither first, min,
        # max, avg nor std: "count=N curr=X(all same)" (N > 1).
        out = [_all_same(line) for line in out]
    # benchmark_model.cc: the current memory lines; the peak only with the flag.
    if delta:
        out.append(f"INFO: Memory footprint delta from the start of the tool (MB): {delta}")
    if flags.get("report_peak_memory_footprint") == "true":
        out.append(f"INFO: Overall peak memory footprint (MB) via periodic monitoring: {PEAK_MB}")
    # profile_summarizer.cc: tab-separated rows, XNNPACK's node types and names.
    if flags.get("enable_op_profiling") == "true":
        profile = (FIXTURES / PROFILE).read_text().split("\n")
        start = next(i for i, ln in enumerate(profile) if "Profiling Info for" in ln)
        out += profile[start:]
    return "\n".join(out) + "\n"


def _all_same(line: str) -> str:
    m = re.search(r"count=(\d+) first=\S+ curr=\S+ min=\S+ max=\S+ avg=(\S+) std=\S+", line)
    if not m or int(m.group(1)) < 2 or "Running" in line:
        return line
    value = round(float(m.group(2)))
    return line[: m.start()] + f"count={m.group(1)} curr={value}(all same)" + line[m.end() :]


def _check_inputs(flags: dict) -> list[tuple[str, list[int], str | None]]:
    """(name, shape, value file) per --input_layer item, the tool's checks applied."""
    names = [n for n in flags.get("input_layer", "").split(",") if n]
    shapes = [s for s in flags.get("input_layer_shape", "").split(":") if s]
    # benchmark_tflite_model.cc PopulateInputLayerInfo: as many shapes as names.
    if len(names) != len(shapes):
        err(
            f"ERROR: The number of items in --input_layer_shape ({flags.get('input_layer_shape')}"
            f", with {len(shapes)} items) must match the number of items in --input_layer"
        )
        err("ERROR: Benchmarking failed.")
        sys.exit(1)
    files: dict[str, str] = {}
    for item in [v for v in flags.get("input_layer_value_files", "").split(",") if v]:
        # SplitInputLayerNameAndValueFile: "::" escapes a ':' in the name.
        name, _, path = item.replace("::", "\0").partition(":")
        name = name.replace("\0", ":")
        # FindLayerInfoIndex: a name --input_layer does not list is FATAL (abort, 134).
        if name not in names:
            _fatal(
                f"Cannot find the corresponding input_layer name({name}) in --input_layer as "
                + flags.get("input_layer", "")
            )
        files[name] = path.replace("\0", ":")
    return [
        (n, [int(d) for d in s.split(",")], files.get(n))
        for n, s in zip(names, shapes, strict=True)
    ]


def _check_model_inputs(graph: str, inputs: list) -> None:
    """benchmark_tflite_model.cc Init: with --input_layer given, it must list every input
    of the model (TFLITE_TOOLS_CHECK_EQ: abort); ResizeInputTensors then resizes each
    input, matched by position, to its --input_layer_shape item, on every invocation
    (timed or not), and AllocateTensors fails on a shape the graph cannot take."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=graph)
    details = interp.get_input_details()
    if len(inputs) != len(details):
        _fatal(
            f"Check failed: Inputs mismatch: Model inputs #:{len(inputs)} expected: {len(details)}"
        )
    try:
        for (_, shape, _), d in zip(inputs, details, strict=True):
            interp.resize_tensor_input(d["index"], shape)
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        err(f"ERROR: {exc}")
        err("ERROR: Failed to allocate tensors!")
        err("ERROR: Benchmarking failed.")
        sys.exit(1)


def _write_outputs(flags: dict, inputs: list) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=flags["graph"])
    details = interp.get_input_details()
    for (_, shape, _), d in zip(inputs, details, strict=False):
        interp.resize_tensor_input(d["index"], shape)
    interp.allocate_tensors()
    for (_, shape, path), d in zip(inputs, details, strict=False):
        if path is None:
            continue
        want = int(np.prod(shape)) * np.dtype(d["dtype"]).itemsize
        size = os.path.getsize(path)
        # LoadInputTensorData: the file must be exactly the tensor's byte size (FATAL).
        if size != want:
            _fatal(f"The size of {path} is {size} bytes. It should be {want} bytes.")
        interp.set_tensor(d["index"], np.fromfile(path, dtype=d["dtype"]).reshape(shape))
    interp.invoke()
    with open(flags["output_filepath"], "wb") as f:
        for out in interp.get_output_details():
            f.write(np.ascontiguousarray(interp.get_tensor(out["index"])).tobytes())


def _fatal(message: str) -> None:
    """TFLITE_LOG(FATAL) logs and aborts: SIGABRT, which a shell reports as exit 134."""
    err(f"FATAL: {message}")
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the workdir
    os.abort()


def err(line: str) -> None:
    print(line, file=sys.stderr)


def _log(argv: list[str]) -> None:
    root = os.environ.get("ADBD_ROOT")
    if root:
        with open(Path(root) / "standin-calls.jsonl", "a") as f:
            cpus = sorted(os.sched_getaffinity(0))
            f.write(json.dumps({"argv": argv, "cpus": cpus, "t": time.time()}) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
