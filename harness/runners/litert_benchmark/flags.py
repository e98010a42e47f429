"""Cells -> flags of LiteRT's CompiledModel benchmark: pure functions.

Every flag is one the binary defines. Its own (litert/tools/benchmark_litert_model.h,
GetFlags): graph, use_cpu, use_gpu, use_npu, dispatch_library_path,
compiler_plugin_library_path, require_full_delegation, gpu_backend, gpu-precision
(auto|fp16|fp32; anything else aborts, benchmark_litert_model.cc). Inherited from
TFLite's BenchmarkModel (tflite/tools/benchmark/benchmark_model.cc): num_threads,
num_runs, min_secs, max_secs, warmup_runs, warmup_min_secs.

    gpu      --use_gpu=true                      (ML Drift; --gpu_backend=opengl for gl)
    gpu-f32  --use_gpu=true --gpu-precision=fp32
    npu      --use_npu=true --dispatch_library_path=DIR --compiler_plugin_library_path=DIR,
             run with LD_LIBRARY_PATH=DIR ADSP_LIBRARY_PATH=DIR (what litert-cli's
             commands/benchmark/android.py does: the vendor's runtime libraries are
             found through those two variables, the dispatch library in DIR)

CPU fallback: use_cpu defaults to true, and `--use_cpu=true --require_full_delegation=true`
aborts ("Requesting full delegation and CPU acceleration are incompatible."), so
--require-full-delegation sends --use_cpu=false; otherwise --use_cpu=true is explicit.
The binary has no --input_layer_value_files/--output_filepath (those belong to TFLite's
BenchmarkTfLiteModel), so it cannot take an accuracy pass.
"""

from __future__ import annotations

import shlex

# The timing flags are BenchmarkModel's, shared by both tools (see the docstring).
from harness.runners.benchmark_model.flags import timing_flags

LITERT_DELEGATES = ("gpu", "gpu-f32", "npu")
MAX_SECS_DEFAULT = 150.0
# harness --gpu-backend -> the binary's --gpu_backend (only these two change its backend;
# anything else, "cl" included, leaves its default OpenCL).
GPU_BACKENDS = {"cl": None, "gl": "opengl"}


def delegate_flags(
    delegate: str,
    *,
    require_full_delegation: bool = False,
    gpu_backend: str | None = None,
    gpu_precision_loss: bool | None = None,
    npu_dir: str | None = None,
) -> list[str] | None:
    """The flags selecting `delegate`, or None when this binary does not run it
    (npu without a directory of vendor libraries on the device)."""
    if delegate not in LITERT_DELEGATES:
        return None
    flags = ["--use_cpu=false" if require_full_delegation else "--use_cpu=true"]
    if require_full_delegation:
        flags.append("--require_full_delegation=true")
    if delegate in ("gpu", "gpu-f32"):
        flags.append("--use_gpu=true")
        if delegate == "gpu-f32" or gpu_precision_loss is False:
            flags.append("--gpu-precision=fp32")
        elif gpu_precision_loss:
            flags.append("--gpu-precision=fp16")
        if gpu_backend and GPU_BACKENDS.get(gpu_backend):
            flags.append(f"--gpu_backend={GPU_BACKENDS[gpu_backend]}")
        return flags
    if not npu_dir:
        return None
    return [
        *flags,
        "--use_npu=true",
        f"--dispatch_library_path={npu_dir}",
        f"--compiler_plugin_library_path={npu_dir}",
    ]


def cell_flags(
    graph: str,
    delegate: str,
    threads: int,
    runs: int,
    min_secs: float | None,
    warmup: int,
    *,
    max_secs: float = MAX_SECS_DEFAULT,
    **delegate_options,
) -> list[str] | None:
    """The timed pass of one cell. None: this binary does not run the delegate."""
    chosen = delegate_flags(delegate, **delegate_options)
    if chosen is None:
        return None
    return [
        f"--graph={graph}",
        *chosen,
        f"--num_threads={int(threads)}",
        *timing_flags(runs, min_secs, warmup, max_secs),
    ]


def npu_environment(npu_dir: str) -> list[str]:
    """`env` arguments that let the vendor runtime find its libraries (litert-cli's
    android.py sets both to the directory it pushed them to)."""
    return [f"LD_LIBRARY_PATH={npu_dir}", f"ADSP_LIBRARY_PATH={npu_dir}"]


def shell_line(argv: list[str]) -> str:
    """argv as one device shell line, every word quoted (for messages and logs)."""
    return " ".join(shlex.quote(a) for a in argv)
