"""STAND-IN for LiteRT's CompiledModel benchmark (`benchmark_litert_model`, shipped by
LiteRT's bucket as android_arm64/benchmark_model). No build of it for this machine exists
here (the ai-edge-litert wheel carries only a Python mirror with different flags,
ai_edge_litert/tools/benchmark_litert_model.py), so this script takes its place under
`harness serve-device`, registered with `harness tools add --tool litert`.

What is real: the model is compiled and timed by LiteRT's own CompiledModel runtime
(ai-edge-litert, CPU) in this process, so the figures are genuine CPU timings. What is
enforced, each rule from the upstream file named beside it (google-ai-edge/LiteRT):

- flags are `--name=value`, bools true/false/1/0; an unknown flag is left over and
  logged as `WARN: Unconsumed cmdline flags: ...`, and the run goes on
  (tflite/tools/command_line_flags.cc, tflite/tools/benchmark/benchmark_model.cc);
- `--help`: the vendor-flags header on stdout, Flags::Usage on stderr (one
  `\t--name=default\ttype\toptional\thelp` line per flag), exit 0
  (litert/tools/benchmark_litert_model_main.cc returns success when help was asked);
- use_cpu defaults to true; with --require_full_delegation=true it logs "Requesting
  full delegation and CPU acceleration are incompatible." and aborts (exit 134);
  --gpu-precision other than auto|fp16|fp32 aborts the same way
  (litert/tools/benchmark_litert_model.cc, CreateCompiledModelOptions);
- CPU is added to the accelerators unless use_cpu is false AND full delegation is
  required (GetRequestedHardwareAccelerators): an accelerator that does not load then
  leaves the model on the CPU, silently but for the registry's warning
  (litert/runtime/accelerators/{gpu,npu}_registry.cc); without CPU it fails to compile;
- with --use_npu it logs dispatch_library_path / compiler_plugin_library_path /
  compiler_cache_path (CreateDefaultEnvironment);
- the results block of BenchmarkLoggingListener::OnBenchmarkEnd
  (litert/tools/benchmark_litert_model.h), each line through LITERT_LOG's
  `INFO: [file:line] ` prefix on stderr (litert/c/internal/litert_logging.{h,cc}).

What is simulated (no GPU or NPU here): the GPU "loads" only when $ADBD_ROOT/standin-gpu
exists; the NPU only when --dispatch_library_path holds a libLiteRtDispatch_*.so AND
LD_LIBRARY_PATH names that directory as an absolute path (litert-cli's
commands/benchmark/android.py runs the binary that way: the vendor runtime is found
through LD_LIBRARY_PATH/ADSP_LIBRARY_PATH). A loaded accelerator reports its nodes on
TFLite's line (tflite/core/subgraph.cc) as DispatchDelegate (NPU, the real name from
litert/runtime/dispatch/dispatch_delegate.cc) or "StandinGpuDelegate" (an invented
name: the real GPU delegate's was not found in the sources read). Every invocation's
argv, library paths and CPU affinity go to $ADBD_ROOT/litert-calls.jsonl.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

# name -> (default, type) as GetFlags defines them (benchmark_litert_model.h, and the
# base BenchmarkModel's in tflite/tools/benchmark/benchmark_model.cc).
FLAGS = {
    "graph": ("", "string"),
    "signature_to_run_for": ("", "string"),
    "use_cpu": ("true", "bool"),
    "use_gpu": ("false", "bool"),
    "use_npu": ("false", "bool"),
    "dispatch_library_path": ("", "string"),
    "compiler_plugin_library_path": ("", "string"),
    "compiler_cache_path": ("", "string"),
    "require_full_delegation": ("false", "bool"),
    "use_profiler": ("false", "bool"),
    "gpu_backend": ("", "string"),
    "gpu-precision": ("auto", "string"),
    "num_threads": ("-1", "int32"),
    "num_runs": ("50", "int32"),
    "min_secs": ("1", "float"),
    "max_secs": ("150", "float"),
    "warmup_runs": ("1", "int32"),
    "warmup_min_secs": ("0.5", "float"),
    "run_delay": ("-1", "float"),
    "report_peak_memory_footprint": ("false", "bool"),
}
BOOLS = {"true": True, "1": True, "false": False, "0": False}


def main(argv: list[str]) -> int:
    _log(argv)
    if any(a in ("--help", "-h") for a in argv):
        print("\n  NPU Vendor Flags from LiteRT:\n")
        _err("INFO: STARTING!")
        usage = "\n".join(
            f"\t--{name}={default}\t{kind}\toptional\t" for name, (default, kind) in FLAGS.items()
        )
        _err(f"ERROR: usage: {sys.argv[0]} <flags>\nFlags:\n{usage}")
        return 0
    flags, leftover = {}, []
    for a in argv:
        name, eq, value = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if not eq or name not in FLAGS or (FLAGS[name][1] == "bool" and value not in BOOLS):
            leftover.append(a)
            continue
        flags[name] = value
    p = {n: flags.get(n, d) for n, (d, _) in FLAGS.items()}
    b = {n: BOOLS[p[n]] for n, (_, kind) in FLAGS.items() if kind == "bool"}
    _err("INFO: STARTING!")
    if leftover:
        _err(f"WARN: Unconsumed cmdline flags: {' '.join(leftover)}")
    if b["use_cpu"] and b["require_full_delegation"]:
        _err(
            "ERROR: [benchmark_litert_model.cc:107] Requesting full delegation and CPU "
            "acceleration are incompatible."
        )
        sys.stderr.flush()
        os.abort()
    if b["use_gpu"] and p["gpu-precision"] not in ("auto", "fp16", "fp32"):
        _err(f"ERROR: [benchmark_litert_model.cc:181] Invalid gpu-precision: {p['gpu-precision']}")
        sys.stderr.flush()
        os.abort()
    if b["use_npu"]:
        for key, line in (("dispatch_library_path", 171), ("compiler_plugin_library_path", 175)):
            _err(f"INFO: [benchmark_litert_model.cc:{line}] {key}: {p[key]}")
        _err(
            f"INFO: [benchmark_litert_model.cc:178] compiler_cache_path: {p['compiler_cache_path']}"
        )
    graph = Path(p["graph"])
    _err(f"INFO: [benchmark_litert_model.cc:201] Loading model from: {graph}")
    if not graph.is_file():
        _err("ERROR: Failed to load model.")
        _err("ERROR: Benchmarking failed.")
        return 1
    cpu = b["use_cpu"] or not b["require_full_delegation"]
    accel = None
    if b["use_npu"]:
        if _npu_loads(p["dispatch_library_path"]):
            accel = "DispatchDelegate"
        else:
            _err(
                "WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded and "
                "registered: kLiteRtStatusErrorNotFound."
            )
    if b["use_gpu"] and accel is None:
        root = os.environ.get("ADBD_ROOT", "")
        if root and Path(root, "standin-gpu").exists():
            accel = "StandinGpuDelegate"
        else:
            _err(
                "WARNING: [gpu_registry.cc:153] GPU accelerator could not be loaded and registered."
            )
    if (b["use_gpu"] or b["use_npu"]) and accel is None and not cpu:
        _err("ERROR: Failed to compile model.")
        _err("ERROR: Benchmarking failed.")
        return 1
    return _benchmark(graph, accel, int(p["warmup_runs"]), int(p["num_runs"]))


def _npu_loads(dispatch_dir: str) -> bool:
    folder = Path(dispatch_dir or ".").resolve()
    has_dispatch = any(folder.glob("libLiteRtDispatch_*.so"))
    paths = [Path(x) for x in os.environ.get("LD_LIBRARY_PATH", "").split(":") if x]
    return has_dispatch and any(x.is_absolute() and x.resolve() == folder for x in paths)


def _benchmark(graph: Path, accel: str | None, warmup: int, runs: int) -> int:
    # The real runtime, quietly: its own start-up lines are the host wheel's, not the
    # Android binary's, so they are not passed on.
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.schema_py_generated import Model

        t0 = time.perf_counter()
        model = CompiledModel.from_file(str(graph))
        ins, outs = model.create_input_buffers(0), model.create_output_buffers(0)
        init_ms = (time.perf_counter() - t0) * 1000
        warm = [_timed(model, ins, outs) for _ in range(max(warmup, 1))]
        times = [_timed(model, ins, outs) for _ in range(runs)]
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
    nodes = Model.GetRootAs(graph.read_bytes(), 0).Subgraphs(0).OperatorsLength()
    delegate = accel or "TfLiteXNNPackDelegate"
    _err(
        f"INFO: Replacing {nodes} out of {nodes} node(s) with delegate ({delegate}) node, "
        "yielding 1 partitions for the whole graph."
    )
    mean = statistics.fmean(times)
    std = statistics.pstdev(times)  # TFLite's Stat: the population std
    h = "INFO: [benchmark_litert_model.h:{}] "
    _err(h.format(90) + "\n========== BENCHMARK RESULTS ==========")
    _err(h.format(92) + "Signature name:       serving_default")
    _err(h.format(94) + f"Model initialization: {init_ms:.2f} ms")
    _err(h.format(96) + f"Warmup (first):       {warm[0]:.2f} ms")
    _err(h.format(98) + f"Warmup (avg):         {statistics.fmean(warm):.2f} ms ({len(warm)} runs)")
    _err(h.format(100) + f"Inference (avg):      {mean:.2f} ms ({len(times)} runs)")
    _err(h.format(104) + f"Inference (min):      {min(times):.2f} ms")
    _err(h.format(106) + f"Inference (max):      {max(times):.2f} ms")
    _err(h.format(108) + f"Inference (std):      {std:.2f}")
    _err(h.format(117) + "No throughput data available (throughput <= 0).")
    _err(h.format(139) + "======================================\n")
    return 0


def _timed(model, ins, outs) -> float:
    t = time.perf_counter()
    model.run_by_index(0, ins, outs)
    return (time.perf_counter() - t) * 1000


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _log(argv: list[str]) -> None:
    root = os.environ.get("ADBD_ROOT")
    if root:
        with open(Path(root) / "litert-calls.jsonl", "a") as f:
            call = {
                "argv": argv,
                "cpus": sorted(os.sched_getaffinity(0)),
                "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
                "ADSP_LIBRARY_PATH": os.environ.get("ADSP_LIBRARY_PATH"),
            }
            f.write(json.dumps(call) + "\n")


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the host wheel's teardown lines are not the Android binary's
