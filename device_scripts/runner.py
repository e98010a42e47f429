#!/usr/bin/env python3
"""harness on-device runner: time TFLite inference and record outputs, ON the device.

Standalone on purpose: it needs only the standard library, numpy and one TFLite
runtime (ai-edge-litert, else tflite_runtime, else tensorflow.lite), because it is
copied as-is to Linux boards over ADB and run there. It never aggregates: it emits
raw samples and raw outputs, and the host computes every statistic.

Usage: runner.py JOB.json
       runner.py --preflight   (one JSON line: Python, numpy, TFLite runtime, versions)

The job (schema 1) lists the cells to run, each naming its model file:
  {"schema": 1, "cells": [{"id", "model", "delegate", "threads", "timing", "eval",
                           "batch", "concurrency", "load"}],
   "cell_timeout_s": S|null, "load_window_s": S,
   "runs": N, "min_secs": S|null, "warmup": N, "eval": NPZ|null, "outputs_dir": DIR}
A supervisor process runs the cells in a worker process and kills it when a cell
exceeds cell_timeout_s or crashes; that cell fails with the reason and a new worker
takes the rest. Each line written is one JSON object with "schema": 1 and "type":
"hello" (runtime and environment), "cell" (one finished cell), or "bye". A cell line carries status
"ok" | "unsupported" | "failed", a one-line reason, init/first times, every warm-up
and timed invoke() sample and end-to-end sample in microseconds, peak RSS, and the
path of an .npy file holding the eval outputs (dequantised float32).
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
import traceback

# numpy comes with the runtime (load_runtime): the supervisor, a fresh process every
# round, handles JSON lines only and need not pay for the import (~0.15 s a round)
np = None

SCHEMA = 1
DELEGATES = ("cpu", "xnnpack", "gpu", "gpu-f32", "nnapi", "npu")
# Errors that mean "this runtime cannot run this model", not "something broke".
_UNSUPPORTED_MARKERS = (
    "No adapters found",
    "Didn't find op for builtin opcode",
    "unresolved custom op",
    "Op builtin_code out of range",
    "not accelerated",
    "kLiteRtStatusErrorNotFound",
)


# ----------------------------------------------------------------------------- runtime


def load_runtime() -> dict:
    """Find a TFLite runtime; returns its name, version and Interpreter class."""
    global np
    import numpy

    np = numpy
    tried: list = []
    found = _import_runtime(tried)
    if found is None:
        raise ImportError("no TFLite runtime (" + "; ".join(tried) + ")")
    mod, name, version = found
    resolver = getattr(mod, "OpResolverType", None) or getattr(
        getattr(mod, "experimental", None), "OpResolverType", None
    )
    return {"name": name, "version": version, "Interpreter": mod.Interpreter, "resolver": resolver}


# (name harness records, module to import, pip distribution), in the order of preference
RUNTIMES = (
    ("ai-edge-litert", "ai_edge_litert", "ai-edge-litert"),
    ("tflite_runtime", "tflite_runtime", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow", "tensorflow"),
)
MIN_PYTHON = (3, 8)


def _import_runtime(tried: list) -> tuple | None:
    """(interpreter module, name, version) of the first runtime that imports, or None;
    each one that does not is noted in `tried` as "module: error", so a caller can say
    why."""
    import importlib

    for name, module, dist in RUNTIMES:
        try:
            if module == "tensorflow":
                tf = importlib.import_module("tensorflow")
                return tf.lite, name, tf.__version__
            return importlib.import_module(module + ".interpreter"), name, _dist_version(dist)
        except ImportError as exc:
            tried.append(f"{module}: {type(exc).__name__}: {exc}")
    return None


def preflight() -> dict:
    """What this interpreter can run: Python, numpy and the TFLite runtime, with versions.

    One JSON line for the host to check before any cell (`runner.py --preflight`), so a
    board without a runtime is one device-level error, not a failed cell per cell. A
    piece that does not import is None, with the import's own error in "errors"."""
    doc = {
        "schema": SCHEMA,
        "type": "preflight",
        "python": sys.executable,
        "python_version": platform.python_version(),
        "python_ok": sys.version_info[:2] >= MIN_PYTHON,
        "min_python": ".".join(map(str, MIN_PYTHON)),
        "numpy": None,
        "runtime": None,
        "runtime_version": None,
        "errors": {},
    }
    try:
        import numpy

        doc["numpy"] = numpy.__version__
    except Exception as exc:  # a broken install is as missing as an absent one
        doc["errors"]["numpy"] = f"{type(exc).__name__}: {exc}"[:300]
    tried: list = []
    try:
        found = _import_runtime(tried)
    except Exception as exc:  # e.g. a runtime built against another numpy
        tried.append(f"{type(exc).__name__}: {exc}")
        found = None
    if found is None:
        doc["errors"]["runtime"] = "; ".join(tried)[:600]
    else:
        _, doc["runtime"], doc["runtime_version"] = found
    return doc


def _dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "unknown"


# ----------------------------------------------------------------------------- environment


def environment(runtime: dict) -> dict:
    """Facts about this device that belong with every measurement."""
    cpus = os.cpu_count() or 0
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "runtime": runtime["name"],
        "runtime_version": runtime["version"],
        "cpu_count": cpus,
        "cpu_max_khz": [
            _read_int(f"/sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq")
            for i in range(cpus)
        ],
        "governor": _read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    return int(text) if text and text.isdigit() else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so each cell gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kb() -> int | None:
    """VmHWM of this process, in KiB; falls back to getrusage's lifetime maximum."""
    for line in (_read_text("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except Exception:
        return None


# ----------------------------------------------------------------------------- tensors


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float data -> the tensor's dtype, with its own scale and zero point."""
    dtype = detail["dtype"]
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """Tensor data -> float32, undoing its scale and zero point."""
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(y.dtype, np.integer) and scale:
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return y.astype(np.float32)


def synthetic_input(detail: dict, shape: tuple) -> np.ndarray:
    """Deterministic input when no eval data is given."""
    rng = np.random.default_rng(0)
    return quantize(rng.random(shape, dtype=np.float32), detail)


# ----------------------------------------------------------------------------- engines


def _paired(a: list, b: list):
    """zip that refuses lists of different lengths (zip's strict= needs Python 3.10;
    boards may have 3.8)."""
    if len(a) != len(b):
        raise ValueError(f"{len(b)} values for {len(a)} tensors")
    return zip(a, b)  # noqa: B905 - lengths checked above


class Unsupported(Exception):
    """This device/runtime cannot run the cell; the message says why."""


class InterpreterEngine:
    """cpu / xnnpack through the classic Interpreter; timing around invoke() is exact."""

    sync_point = "invoke"

    def __init__(self, runtime: dict, model: str, delegate: str, threads: int, batch: int = 1):
        kwargs = {"model_path": model, "num_threads": threads}
        resolver = runtime["resolver"]
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = (
                resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu" else resolver.AUTO
            )
        elif delegate == "cpu":
            raise Unsupported(f"{runtime['name']} cannot disable XNNPACK (no OpResolverType)")
        self.interp = runtime["Interpreter"](**kwargs)
        self.inputs = self.interp.get_input_details()
        for k, d in enumerate(self.inputs):
            signature = [int(s) for s in d.get("shape_signature", d["shape"])]
            check_batch(d["name"], signature, batch, first=k == 0)
            if -1 in signature:  # dynamic dimensions: the batch asked for, the rest 1
                shape = [1 if s == -1 else s for s in signature]
                if signature and signature[0] == -1:
                    shape[0] = batch
                self.interp.resize_tensor_input(d["index"], shape)
        self.interp.allocate_tensors()
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()

    def set_inputs(self, arrays: list) -> None:
        for d, a in _paired(self.inputs, arrays):
            self.interp.set_tensor(d["index"], a)

    def invoke(self) -> None:
        self.interp.invoke()

    def read_outputs(self) -> list:
        return [self.interp.get_tensor(d["index"]) for d in self.outputs]

    def facts(self) -> dict:
        return {}


def check_batch(name: str, signature: list, batch: int, first: bool) -> None:
    """Unsupported when the model's first input fixes a batch other than `batch`.

    A fixed batch is the model's promise about its graph (reshapes inside may assume
    it), so it is never resized against it; the host decides this before sending the
    job too, and this is the device's own check of the same rule."""
    if first and batch != 1 and signature and signature[0] not in (-1, batch):
        raise Unsupported(
            f"the model's input {name} has a fixed batch of {signature[0]}: "
            f"it cannot take batch {batch}"
        )


class CompiledModelEngine:
    """gpu / gpu-f32 / npu through LiteRT's CompiledModel.

    run_by_index() can return before the accelerator is done, so the timed region
    ends when the outputs have been read back (the synchronisation point).
    """

    sync_point = "read_outputs"

    def __init__(self, model: str, delegate: str, threads: int):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        # No CPU fallback: a graph the accelerator cannot take whole is `unsupported`,
        # never a CPU figure under a GPU label.
        accel = HardwareAccelerator.NPU if delegate == "npu" else HardwareAccelerator.GPU
        options = _accelerator_options(accel, delegate, threads)
        env = _npu_environment() if delegate == "npu" else None
        log = NativeStderr()
        try:
            with log:
                self.model = CompiledModel.from_file(model, options=options, environment=env)
        except Exception as exc:  # the runtime's own reason is in what it logged
            raise Unsupported(short_reason(f"{log.text}\n{type(exc).__name__}: {exc}")) from exc
        self.adapter = _adapter_line(log.text)
        self.accelerated = bool(self.model.is_fully_accelerated())
        self.in_buffers = self.model.create_input_buffers(0)
        self.out_buffers = self.model.create_output_buffers(0)
        details = self.model.get_input_tensor_details(0)
        self.inputs = [_compiled_detail(name, d) for name, d in details.items()]
        out_details = self.model.get_output_tensor_details(0)
        self.outputs = [_compiled_detail(name, d) for name, d in out_details.items()]

    def set_inputs(self, arrays: list) -> None:
        for buf, a in _paired(self.in_buffers, arrays):
            buf.write(np.ascontiguousarray(a))

    def invoke(self) -> None:
        self.model.run_by_index(0, self.in_buffers, self.out_buffers)

    def read_outputs(self) -> list:
        return [
            buf.read(int(np.prod(d["shape"])), d["dtype"]).reshape(d["shape"])
            for buf, d in _paired(self.out_buffers, self.outputs)
        ]

    def facts(self) -> dict:
        return {"fully_accelerated": self.accelerated, "adapter": self.adapter}


class NativeStderr:
    """Captures what native code writes to fd 2 (the runtime logs its reasons there)."""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self._sink = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._sink.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._sink.seek(0)
        self.text = self._sink.read()[-65536:].decode("utf-8", "replace")
        self._sink.close()


def _adapter_line(log: str) -> str | None:
    for ln in log.splitlines():
        if "adapter" in ln.lower() or "backend" in ln.lower():
            return ln.strip()[:200]
    return None


def _npu_environment():
    """A LiteRT environment with the board's vendor dispatch library.

    The library lives on the device, so the device says where: the environment
    variable HARNESS_NPU_DISPATCH_LIBRARY (and optionally HARNESS_NPU_COMPILER_PLUGIN).
    """
    path = os.environ.get("HARNESS_NPU_DISPATCH_LIBRARY")
    if not path:
        raise Unsupported(
            "npu needs a vendor dispatch library on the device: set "
            "HARNESS_NPU_DISPATCH_LIBRARY for the runner"
        )
    import ai_edge_litert
    from ai_edge_litert.environment import Environment, EnvironmentOptions

    return Environment.create(
        options=EnvironmentOptions(
            runtime_path=os.path.dirname(os.path.abspath(ai_edge_litert.__file__)),
            dispatch_library_path=path,
            compiler_plugin_path=os.environ.get("HARNESS_NPU_COMPILER_PLUGIN", ""),
        )
    )


def _accelerator_options(accel, delegate: str, threads: int):
    from ai_edge_litert.options import CpuOptions, GpuOptions, Options

    # gpu-f32 trades speed for float32 precision; the default GPU path computes in fp16.
    gpu = GpuOptions(enforce_f32=delegate == "gpu-f32")
    return Options(
        hardware_accelerators=accel, cpu_options=CpuOptions(num_threads=threads), gpu_options=gpu
    )


def _compiled_detail(name: str, d: dict) -> dict:
    return {
        "name": name,
        "shape": tuple(d["shape"]),
        "dtype": np.dtype(d["dtype"]),
        "quantization": d.get("quantization", (0.0, 0)),
    }


def make_engine(runtime: dict, model: str, delegate: str, threads: int, batch: int = 1):
    """The engine for one cell, or Unsupported with the reason."""
    if delegate == "nnapi":
        raise Unsupported(f"NNAPI is an Android delegate; this device is {platform.system()}")
    if delegate in ("cpu", "xnnpack"):
        return InterpreterEngine(runtime, model, delegate, threads, batch)
    if batch != 1:  # CompiledModel's buffers are made for the model's own shapes
        raise Unsupported(f"batch {batch} is not supported on the {delegate} path (batch 1 only)")
    if delegate in ("gpu", "gpu-f32", "npu"):
        if runtime["name"] != "ai-edge-litert":
            raise Unsupported(
                f"{delegate} needs ai-edge-litert's CompiledModel; this device has "
                f"{runtime['name']}"
            )
        return CompiledModelEngine(model, delegate, threads)
    raise Unsupported(f"unknown delegate {delegate!r}")


def short_reason(text: str) -> str:
    """The runtime's own words, cut to one line: the most specific error it printed."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for marker in _UNSUPPORTED_MARKERS + ("ERROR", "Error", "error"):
        for ln in lines:
            if marker in ln and not ln.startswith(("INFO", "WARNING")):
                # drop the "ERROR: [file.cc:123] " location prefix: the words are the reason
                ln = re.sub(r"^[\s└─|]+", "", ln)  # tree-drawing prefixes of chained errors
                return re.sub(r"^(ERROR|E\d+)[^\]]*\]\s*", "", ln)[:240]
    return (lines[0] if lines else "unknown error")[:240]


# ----------------------------------------------------------------------------- a cell


def run_cell(runtime: dict, job: dict, cell: dict, eval_data) -> dict:
    """Measure one cell; every failure becomes a status and a reason, never a crash."""
    docs = []
    run_together(runtime, job, [cell], lambda _c: eval_data, docs.append)
    return next(d for d in docs if d.get("type") == "cell")


def run_together(runtime: dict, job: dict, cells: list, eval_for, emit) -> None:
    """Measure cells interleaved invoke by invoke (one cell alone is the common case).

    The cells of an A/B group (the same variant, delegate and threads of several models)
    alternate every timed run, in an order that reverses each time, so whatever the
    host does in that second hits every model of the group alike: their per-round
    medians come from the same moments. Each cell's engine is created, and its eval
    pass run, on its own; a failure of one is that cell's alone."""
    opened = []
    for cell in cells:
        emit({"schema": SCHEMA, "type": "start", "id": cell["id"]})
        result = {
            "schema": SCHEMA,
            "type": "cell",
            "id": cell["id"],
            "delegate": cell["delegate"],
            "threads": cell["threads"],
            "batch": _batch(cell),
            "status": "ok",
            "reason": None,
        }
        alone = len(cells) == 1
        result["peak_rss_scope"] = "cell" if alone and reset_peak_rss() else "process"
        try:
            t0 = time.perf_counter_ns()
            engine = make_engine(
                runtime, cell["model"], cell["delegate"], cell["threads"], _batch(cell)
            )
            result["init_us"] = (time.perf_counter_ns() - t0) / 1e3
            result["sync_point"] = engine.sync_point
            result.update(engine.facts())
            opened.append((cell, result, engine))
        except Exception as exc:
            _fail(result, exc)
            result["peak_rss_kb"] = peak_rss_kb()
            emit(result)
    alone = [(c, r, e) for c, r, e in opened if _own_timing(c)]
    for cell, result, engine in alone:
        try:  # a load times its own instances (engine is the first); sustained: one long run
            if cell.get("sustained_s"):
                result.update(time_sustained(engine, job, cell, eval_for(cell)))
            else:
                result.update(time_load(runtime, job, cell, engine, eval_for(cell)))
        except Exception as exc:
            _fail(result, exc)
    timed = [(c, r, e) for c, r, e in opened if c.get("timing", True) and not _own_timing(c)]
    if timed:
        if len(timed) > 1:  # the watchdog allows the group its members' time together
            emit({"schema": SCHEMA, "type": "start", "id": timed[0][0]["id"], "span": len(timed)})
        engines, evals = [e for _, _, e in timed], [eval_for(c) for c, _, _ in timed]
        together = any(c.get("together") for c, _, _ in timed)
        try:
            if together and len(timed) < 2:  # its partners could not open (their rows say)
                raise Unsupported(
                    "--together: no other model of its group could run beside it (their "
                    "rows say why); timed alone it would not be what was asked"
                )
            samples = (time_concurrent if together else time_cells)(engines, job, evals)
            for (_, result, _), s in zip(timed, samples):  # noqa: B905 (boards' Python 3.8)
                result.update(s)
        except MemberFailed as failed:  # that model's own error; its partners say so
            partner = Unsupported(
                "--together: another model of its group failed beside it: "
                + short_reason(f"{type(failed.error).__name__}: {failed.error}")
            )
            for k, (_, result, _) in enumerate(timed):
                _fail(result, failed.error if k == failed.member else partner)
        except Exception as exc:
            for _, result, _ in timed:
                _fail(result, exc)
    for cell, result, engine in opened:
        data = eval_for(cell)
        if result["status"] == "ok" and data is not None:
            if len(cells) > 1:
                emit({"schema": SCHEMA, "type": "start", "id": cell["id"]})
            try:
                result["eval"] = evaluate(engine, data, job, cell["id"], cell.get("output", 0))
            except Exception as exc:
                _fail(result, exc)
        result["peak_rss_kb"] = peak_rss_kb()
        emit(result)


def _fail(result: dict, exc: Exception) -> None:
    if isinstance(exc, Unsupported):
        result.update(status="unsupported", reason=str(exc))
        return
    text = f"{type(exc).__name__}: {exc}"
    unsupported = any(m in text for m in _UNSUPPORTED_MARKERS)
    result.update(status="unsupported" if unsupported else "failed", reason=short_reason(text))
    if not unsupported:
        result["traceback"] = traceback.format_exc(limit=5)[-2000:]


def time_cell(engine, job: dict, eval_data) -> dict:
    """First inference, warm-up and timed runs; invoke-only and end-to-end samples."""
    return time_cells([engine], job, [eval_data])[0]


def time_cells(engines: list, job: dict, evals: list) -> list[dict]:
    """time_cell for several engines at once, alternating them every run (see
    run_together); each gets the same number of runs."""
    inputs = [_timing_inputs(e, x) for e, x in zip(engines, evals)]  # noqa: B905
    ns = time.perf_counter_ns
    out = [{"first": [], "warmup_us": [], "invoke_us": [], "e2e_us": []} for _ in engines]

    def one(k: int, key: str, fresh_inputs: bool) -> None:
        e, sync_on_read = engines[k], engines[k].sync_point == "read_outputs"
        t0 = ns()
        if fresh_inputs:
            e.set_inputs(inputs[k])
        t1 = ns()
        e.invoke()
        if sync_on_read:
            e.read_outputs()
        t2 = ns()
        if key != "invoke_us":
            out[k][key].append((t2 - t1) / 1e3)
            return
        if not sync_on_read:
            e.read_outputs()
        t3 = ns()
        out[k]["invoke_us"].append((t2 - t1) / 1e3)
        out[k]["e2e_us"].append((t3 - t0) / 1e3)

    for k, e in enumerate(engines):
        e.set_inputs(inputs[k])
        one(k, "first", False)
        out[k]["first_us"] = out[k].pop("first")[0]
    order = list(range(len(engines)))
    for _ in range(int(job.get("warmup", 0))):
        for k in order:
            one(k, "warmup_us", False)
    runs, min_secs = int(job.get("runs") or 1), job.get("min_secs")
    start, done = ns(), 0
    while done < runs or (min_secs and (ns() - start) < min_secs * 1e9):
        for k in order:
            one(k, "invoke_us", True)
        order.reverse()  # A B, B A, ...: neither model always follows the other
        done += 1
        if job.get("max_runs") and done >= job["max_runs"]:
            break
    return out


TOGETHER_KEEP = 20000  # alone samples a together cell sends per round at most


class MemberFailed(Exception):
    """One model of a --together group failed: which one, and its own error."""

    def __init__(self, member: int, error: Exception):
        super().__init__(str(error))
        self.member, self.error = member, error


def time_concurrent(engines: list, job: dict, evals: list) -> list[dict]:
    """--together: the cells of a group (one per model, the same setting) served at once,
    one thread per model, for a fixed window; and, just before, each of them alone for
    the same window, in this process, at this moment: the reference its slowdown is
    measured against.

    Each engine takes its first inference and warm-up alone. In the shared window every
    model serves requests back to back on its own thread (ai-edge-litert releases the GIL
    inside invoke(), see time_load) and every request is timed alone; each model's
    result is its requests under contention, with its alone samples (evenly thinned
    beyond TOGETHER_KEEP) and both windows' counts beside them."""
    import threading

    window = float(job.get("load_window_s") or 1.0)
    inputs = [_timing_inputs(e, x) for e, x in zip(engines, evals)]  # noqa: B905
    ns = time.perf_counter_ns
    out = []
    for k, (e, x) in enumerate(zip(engines, inputs)):  # noqa: B905 (boards' Python 3.8)
        try:
            e.set_inputs(x)
            t1 = ns()
            e.invoke()
            e.read_outputs()
            first = (ns() - t1) / 1e3
            warmup = []
            for _ in range(int(job.get("warmup", 0))):
                t1 = ns()
                e.invoke()
                e.read_outputs()
                warmup.append((ns() - t1) / 1e3)
        except Exception as exc:
            raise MemberFailed(k, exc) from exc
        out.append({"first_us": first, "warmup_us": warmup, "invoke_us": [], "e2e_us": []})

    def serve(k: int, until: int, lane: dict) -> None:
        serve_until(engines[k], inputs[k], until, lane)

    alone = []
    for k in range(len(engines)):  # alone first, one model after another
        lane = {"invoke_us": [], "e2e_us": [], "end": 0}
        start = ns()
        try:
            serve(k, start + int(window * 1e9), lane)
        except Exception as exc:
            raise MemberFailed(k, exc) from exc
        alone.append((lane, (lane["end"] - start) / 1e9))
    lanes = [{"invoke_us": [], "e2e_us": [], "end": 0} for _ in engines]
    start_at = [0]
    barrier = threading.Barrier(len(engines), action=lambda: start_at.__setitem__(0, ns()))
    errors = []

    def together(k: int) -> None:
        barrier.wait()
        try:
            serve(k, start_at[0] + int(window * 1e9), lanes[k])
        except Exception as exc:  # one model's failure fails the group's timing
            errors.append(MemberFailed(k, exc))

    n = len(engines)
    threads = [threading.Thread(target=together, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    wall_s = (max(lane["end"] for lane in lanes) - start_at[0]) / 1e9
    for k, doc in enumerate(out):
        lane, alone_s = alone[k]
        xs = lane["invoke_us"]
        step = max(1, -(-len(xs) // TOGETHER_KEEP))
        doc["invoke_us"], doc["e2e_us"] = lanes[k]["invoke_us"], lanes[k]["e2e_us"]
        doc["together"] = {
            "members": len(engines),
            "requests": len(lanes[k]["invoke_us"]),
            "window_s": wall_s,
            "alone_requests": len(xs),
            "alone_window_s": alone_s,
            "alone_stride": step,
            "alone_us": xs[::step],
        }
    return out


def serve_until(engine, inputs: list, until: int, lane: dict) -> None:
    """Serve requests back to back until perf_counter_ns() reaches `until` (a request
    begun before is finished and counted), each timed alone: invoke (to the engine's
    sync point) into lane["invoke_us"], set inputs to outputs read into lane["e2e_us"];
    lane["end"] is when the last one finished."""
    ns = time.perf_counter_ns
    sync_on_read = engine.sync_point == "read_outputs"
    while ns() < until:
        t0 = ns()
        engine.set_inputs(inputs)
        t1 = ns()
        engine.invoke()
        if sync_on_read:
            engine.read_outputs()
        t2 = ns()
        if not sync_on_read:
            engine.read_outputs()
        t3 = ns()
        lane["invoke_us"].append((t2 - t1) / 1e3)
        lane["e2e_us"].append((t3 - t0) / 1e3)
    lane["end"] = ns()


def _timing_inputs(engine, eval_data) -> list:
    arrays = []
    for i, d in enumerate(engine.inputs):
        shape = tuple(int(s) for s in d["shape"])
        if eval_data is not None and i == 0:
            first = _fill(np.asarray(eval_data, dtype=np.float32), shape[0] if shape else 1)
            arrays.append(quantize(first, d).reshape(shape))
        else:
            arrays.append(synthetic_input(d, shape))
    return arrays


def _fill(x, n: int):
    """The first n samples of x, repeating them when x has fewer (a batch to fill)."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x] * (n // len(x) + 1))[:n]


def _own_timing(cell: dict) -> bool:
    """A load (--concurrency) or sustained cell: timed on its own, never interleaved."""
    return bool(cell.get("timing", True) and (cell.get("load") or cell.get("sustained_s")))


def _batch(cell: dict) -> int:
    return max(1, int(cell.get("batch") or 1))


def evaluate(engine, x: np.ndarray, job: dict, cell_id: str, output: int = 0) -> dict:
    """Run every eval sample, a batch at a time as the cell is timed, and save the
    dequantised output `output` (the metrics' output=NAME, by the model's output order;
    one row per sample). A last short batch is padded with repeats of its samples, whose
    outputs are dropped."""
    if output and getattr(engine, "sync_point", None) == "read_outputs":
        # CompiledModel lists outputs in its signature's order, not the model's
        raise Unsupported("a metric reading another output than the first: not on gpu/npu")
    d_in, d_out = engine.inputs[0], engine.outputs[output]
    shape = tuple(int(s) for s in d_in["shape"])
    if tuple(x.shape[1:]) != shape[1:]:
        raise ValueError(
            f"eval x has samples of shape {tuple(x.shape[1:])}, the model expects {shape[1:]}"
        )
    batch = shape[0] if shape else 1
    outputs = []
    for start in range(0, len(x), batch):
        chunk = np.asarray(x[start : start + batch], dtype=np.float32)
        engine.set_inputs(
            [quantize(_fill(chunk, batch), d_in)]
            + [synthetic_input(d, tuple(d["shape"])) for d in engine.inputs[1:]]
        )
        engine.invoke()
        out = dequantize(np.asarray(engine.read_outputs()[output]), d_out)
        outputs.extend(out.reshape(batch, -1)[: len(chunk)])
    path = os.path.join(job["outputs_dir"], f"{cell_id}.npy")
    np.save(path, np.stack(outputs).astype(np.float32))
    return {"n": len(outputs), "outputs_file": os.path.basename(path)}


# ----------------------------------------------------------------------------- sustained

SUSTAINED_KEEP = 200000  # raw samples a sustained cell sends at most (spread over windows)


class Sysfs:
    """CPU frequencies and the hottest thermal zone, read from a sysfs root.

    The root is $HARNESS_SYSFS (tests point it at a fake tree the daemon presents),
    else /sys. The files are found once; a device without them says which are missing
    and the sampler returns None for them."""

    def __init__(self, root: str):
        import glob

        cpus = glob.glob(os.path.join(root, "devices/system/cpu/cpu[0-9]*"))
        cpus.sort(key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0))
        self.freq_files = [
            f for f in (os.path.join(c, "cpufreq/scaling_cur_freq") for c in cpus)
            if os.path.isfile(f)
        ]  # fmt: skip
        zones = glob.glob(os.path.join(root, "class/thermal/thermal_zone*/temp"))
        self.temp_files = sorted(zones)
        self.missing = [
            what
            for what, found in (
                ("cpufreq/scaling_cur_freq", self.freq_files),
                ("thermal_zone*/temp", self.temp_files),
            )
            if not found
        ]

    def sample(self) -> dict:
        """{"freq_khz": [per core] or None, "temp_c": the hottest zone or None}."""
        freqs = [_read_int(f) for f in self.freq_files]
        temps = [_read_int(f) for f in self.temp_files]
        temps = [t for t in temps if t is not None]
        return {
            "freq_khz": freqs or None,
            # sysfs thermal zones report millidegrees Celsius
            "temp_c": max(temps) / 1000.0 if temps else None,
        }


def time_sustained(engine, job: dict, cell: dict, eval_data) -> dict:
    """One cell run back to back for sustained_s, in windows of window_s (1 s).

    Every invoke() is timed as in time_cells; at each window's end, between two
    invokes and outside any timed region, the CPU frequencies and the hottest thermal
    zone are read. Each window sends its raw samples, evenly thinned (every k-th, so
    the whole window stays represented) when the run would exceed SUSTAINED_KEEP; the
    window's count says how many there were. The host computes every statistic."""
    duration = float(cell["sustained_s"])
    width = float(job.get("window_s") or 1.0)
    sysfs = Sysfs(os.environ.get("HARNESS_SYSFS") or "/sys")
    inputs = _timing_inputs(engine, eval_data)
    engine.set_inputs(inputs)
    sync_on_read = engine.sync_point == "read_outputs"
    ns = time.perf_counter_ns

    def one() -> float:
        t1 = ns()
        engine.invoke()
        if sync_on_read:
            engine.read_outputs()
        return (ns() - t1) / 1e3

    first = one()
    warmup = [one() for _ in range(int(job.get("warmup", 0)))]
    n_windows = max(1, int(duration / width + 0.5))
    keep = max(1, SUSTAINED_KEEP // n_windows)
    windows, current = [], []
    start = ns()
    edge = start + int(width * 1e9)
    while True:
        current.append(one())
        now = ns()
        if now < edge:
            continue
        step = max(1, -(-len(current) // keep))  # ceil: at most `keep` kept
        windows.append(
            {"t_s": (now - start) / 1e9, "n": len(current), "stride": step,
             "invoke_us": current[::step], **sysfs.sample()}
        )  # fmt: skip
        current = []
        if len(windows) >= n_windows:
            break
        edge += int(width * 1e9) * max(1, -(-(now - edge) // int(width * 1e9)))
    return {
        "first_us": first,
        "warmup_us": warmup,
        "invoke_us": [x for w in windows for x in w["invoke_us"]],
        "e2e_us": [],
        "sustained": {
            "duration_s": duration,
            "window_s": width,
            "windows": windows,
            "missing": sysfs.missing,
            "cores": len(sysfs.freq_files),
            "zones": len(sysfs.temp_files),
        },
    }


# ----------------------------------------------------------------------------- load


def time_load(runtime: dict, job: dict, cell: dict, engine, eval_data) -> dict:
    """N instances serving requests at once for a fixed window (--concurrency).

    One thread per interpreter instance: ai-edge-litert releases the GIL inside
    invoke() (measured: a Python loop keeps ~half a 2-core host while another thread
    invokes a 100 ms batch back to back; holding the GIL would leave it ~5 %), so
    threads run the instances in parallel as a serving process would. Each instance
    warms up, all start together at a barrier, and each request is timed alone
    (set inputs + invoke + read outputs for end-to-end, invoke for latency). The
    aggregate throughput is every sample completed over the wall time from the start
    to the last completion; a request begun before the window closed is counted."""
    import threading

    n = max(1, int(cell.get("concurrency") or 1))
    engines = [engine] + [
        make_engine(runtime, cell["model"], cell["delegate"], cell["threads"], _batch(cell))
        for _ in range(n - 1)
    ]
    window = float(job.get("load_window_s") or 1.0)
    warmup = int(job.get("warmup", 0))
    lanes = [{"invoke_us": [], "e2e_us": [], "end": 0, "error": None} for _ in engines]
    ns = time.perf_counter_ns
    start_at = [0]
    # the window opens when the last instance has warmed up: the barrier's action runs
    # once, after all have arrived and before any is released
    barrier = threading.Barrier(n, action=lambda: start_at.__setitem__(0, ns()))

    def serve(k: int) -> None:
        e, lane = engines[k], lanes[k]
        try:
            inputs = _timing_inputs(e, eval_data)
            for _ in range(warmup):
                e.set_inputs(inputs)
                e.invoke()
                e.read_outputs()
        except Exception as exc:  # one instance's failure fails the cell, not the job
            lane["error"] = exc
        barrier.wait()
        if lane["error"] is not None:
            return
        serve_until(e, inputs, start_at[0] + int(window * 1e9), lane)

    threads = [threading.Thread(target=serve, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = next((lane["error"] for lane in lanes if lane["error"] is not None), None)
    if failed is not None:
        raise failed
    requests = sum(len(lane["invoke_us"]) for lane in lanes)
    wall_s = (max(lane["end"] for lane in lanes) - start_at[0]) / 1e9
    return {
        "first_us": None,
        "warmup_us": [],
        # every request of every instance, instance by instance (lane sizes below)
        "invoke_us": [x for lane in lanes for x in lane["invoke_us"]],
        "e2e_us": [x for lane in lanes for x in lane["e2e_us"]],
        "load": {
            "instances": n,
            "requests": requests,
            "samples": requests * _batch(cell),
            "window_s": wall_s,
            "per_instance": [len(lane["invoke_us"]) for lane in lanes],
        },
    }


# ----------------------------------------------------------------------------- main


def load_eval(path: str | None):
    if not path:
        return None
    with np.load(path, allow_pickle=False) as npz:
        return np.asarray(npz["x"], dtype=np.float32)


def worker(job: dict, only: list[str], emit) -> None:
    """Run the listed cells in this process, announcing each before it starts."""
    runtime = load_runtime()
    emit({"schema": SCHEMA, "type": "hello", "env": environment(runtime)})
    if job.get("outputs_dir"):
        os.makedirs(job["outputs_dir"], exist_ok=True)
    eval_data = load_eval(job.get("eval"))
    groups: dict = {}  # cells sharing a "group" are timed together (A/B in one run)
    for cell in job["cells"]:
        if cell["id"] in only:
            groups.setdefault(cell.get("group") or ("", cell["id"]), []).append(cell)
    for cells in groups.values():
        run_together(
            runtime, job, cells, lambda c: eval_data if c.get("eval", True) else None, emit
        )


HEARTBEAT_S = 1.0  # a silent device looks like a dead connection to ADB clients
STARTUP_S = 120.0  # a worker's runtime import is not part of any cell's time


def supervise(job_path: str, job: dict, emit) -> None:
    """Run the cells in worker processes; kill a worker whose cell hangs or let one crash.

    A hung invoke() sits in native code that no Python signal can interrupt, so the
    watchdog is a separate process: this one. It fails the cell it caught (timeout,
    crash, OOM kill) and starts a fresh worker for the cells that are left. While a
    cell runs it prints a heartbeat line every HEARTBEAT_S, so a long quiet cell is
    never mistaken for a lost connection by the host's transport.
    """
    remaining = [c["id"] for c in job["cells"]]
    limit = job.get("cell_timeout_s") or None
    said_hello = [False]
    while remaining:
        current, reason = _run_worker(job_path, remaining, limit, said_hello, emit)
        if remaining:
            victim = current if current in remaining else remaining[0]
            remaining.remove(victim)
            emit(
                {
                    "schema": SCHEMA,
                    "type": "cell",
                    "id": victim,
                    "status": "failed",
                    "reason": reason,
                    "peak_rss_kb": None,
                }
            )


def _run_worker(job_path: str, remaining: list, limit, said_hello: list, emit) -> tuple:
    """One worker over the remaining cells; (cell it was on, why it ended) as _watch.

    Its stderr goes to a file, not a pipe (a chatty runtime would fill a pipe and block
    the worker), so a worker that dies is said to die of what it printed last: the
    ImportError, the interpreter's RuntimeError."""
    import subprocess
    import tempfile

    argv = [sys.executable, os.path.abspath(__file__), job_path, "--worker", ",".join(remaining)]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        current, reason = _watch(proc, limit, remaining, said_hello, emit)
        proc.wait()
        said = _pass_on_stderr(err)
    if said and reason == _death(proc.returncode):  # not a watchdog kill: its own end
        reason = f"{reason}: {said}"
    return current, reason


def _watch(proc, limit, remaining: list, said_hello: list, emit) -> tuple[str | None, str]:
    """Forward one worker's lines until it ends or overruns; (cell it was on, why it ended)."""
    import select
    import signal

    current, pending = None, b""
    deadline = time.monotonic() + max(limit or 0.0, STARTUP_S)
    while True:
        left = deadline - time.monotonic() if limit else HEARTBEAT_S
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, min(left, HEARTBEAT_S)))
        if not ready:
            if limit and time.monotonic() >= deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                why = f"timed out after {limit:g} s (killed on the device)"
                return current, why if current else f"runner worker did not start: {why}"
            emit({"schema": SCHEMA, "type": "heartbeat", "id": current})
            continue
        chunk = os.read(proc.stdout.fileno(), 1 << 16)
        if not chunk:
            return current, _death(proc.wait())
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            doc = json.loads(line)
            kind = doc.get("type")
            if kind == "hello" and not said_hello[0]:
                said_hello[0] = True
                emit(doc)
            elif kind == "start":
                span = doc.get("span") or 1  # an A/B group: its members' time together
                current, deadline = doc["id"], time.monotonic() + (limit or 0.0) * span
            elif kind == "cell":
                emit(doc)
                remaining.remove(doc["id"])
                current, deadline = None, time.monotonic() + max(limit or 0.0, STARTUP_S)


def _pass_on_stderr(err) -> str:
    """Copy a finished worker's stderr to ours (where it always went) and return its
    tail, for the reason of a cell it died on."""
    err.seek(0, os.SEEK_END)
    size = err.tell()
    err.seek(0)
    sys.stderr.flush()
    while True:
        block = err.read(1 << 16)
        if not block:
            break
        os.write(2, block)
    err.seek(max(0, size - TAIL_READ))
    return stderr_tail(err.read().decode("utf-8", "replace"))


TAIL_READ = 16 << 10  # the end of a worker's stderr holds its last words
TAIL_LINES, TAIL_CHARS = 5, 400
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def stderr_tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last `lines` non-blank lines of `text`, joined by " | " into one line of at
    most `chars` characters (the end kept: that is where the error is), with terminal
    escapes and control characters removed so the reason prints and stores safely."""
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\t", " ")))
    # Python 3.11's ^^^^ markers under a traceback line say nothing in one line
    kept = [ln.strip() for ln in text.splitlines() if ln.strip(" ^~")][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= chars else "…" + joined[-(chars - 1) :]


def _death(code: int) -> str:
    if code < 0:
        import signal

        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        return f"runner worker killed by {name}"
    return f"runner worker exited with status {code}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] == "--preflight":
        print(json.dumps(preflight()), flush=True)
        return 0
    with open(argv[0]) as f:
        job = json.load(f)

    def emit(doc: dict) -> None:
        print(json.dumps(doc), flush=True)

    if job.get("schema") != SCHEMA:
        emit({"schema": SCHEMA, "type": "error", "reason": f"job schema {job.get('schema')}"})
        return 2
    if len(argv) > 2 and argv[1] == "--worker":
        worker(job, argv[2].split(","), emit)
        return 0
    supervise(argv[0], job, emit)
    emit({"schema": SCHEMA, "type": "bye"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
