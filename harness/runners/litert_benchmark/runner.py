"""Host side of LiteRT's CompiledModel benchmark over ADB, beside TFLite's benchmark_model.

When a `litert` binary is registered for the device (`harness tools add|fetch --tool
litert`), `gpu`, `gpu-f32` and `npu` cells run on it and every other cell on TFLite's
benchmark_model, all in one interleaved schedule of rounds (round r times every cell,
whichever binary runs it, before round r+1). Without one, nothing changes: the cells go
to harness.runners.benchmark_model.runner as before.

Per round a cell is one fresh process (`--num_runs` = its share of the runs), pinned
with taskset as benchmark_model's cells are; rounds pool exactly as benchmark_model's do
(LiteRT prints TFLite's Stat: population std). NPU cells need the vendor libraries
(`harness tools add LIB --tool litert-npu`): they are staged content-addressed, linked
under their own names into one directory, and the binary runs with that directory as
--dispatch_library_path/--compiler_plugin_library_path and in LD_LIBRARY_PATH and
ADSP_LIBRARY_PATH, as litert-cli runs it (commands/benchmark/android.py).

Never CPU figures under an accelerator's name: a cell whose accelerator did not load,
or whose nodes all went to XNNPACK, is `unsupported` with the tool's line. The binary has
no accuracy pass (no --output_filepath): with --eval the cell keeps its timing and says
so in `accuracy_error`.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from harness.devices.base import Device
from harness.devices.snapshot import snapshot
from harness.errors import DeviceError, HarnessError
from harness.runners.benchmark_model import flags as BF
from harness.runners.benchmark_model import runner as BM
from harness.runners.benchmark_model.parse import tail
from harness.runners.benchmark_model.tools import (
    BinaryChoice,
    ToolBinary,
    choose_for_device,
    npu_libraries,
)
from harness.runners.litert_benchmark import flags as LF
from harness.runners.litert_benchmark.parse import LiteRtOutput, delegation, parse_output
from harness.runners.python_runner import JobCell, RoundBook, RoundHook, TimingConfig

NPU_DIR = "litert-npu"
# Flags harness passes; the start check wants each in the usage text when it lists flags.
REQUIRED_FLAGS = ("graph", "use_cpu", "use_gpu", "use_npu", "num_threads", "num_runs")
# The one fixed script every NPU invocation goes through: it makes the library directory
# absolute on the device (the vendor loaders want absolute paths) without the host ever
# splicing text into a shell line; the directory and the command arrive as arguments.
NPU_ENV_SCRIPT = 'd="$PWD/$1"; shift; exec env "LD_LIBRARY_PATH=$d" "ADSP_LIBRARY_PATH=$d" "$@"'
NPU_HINT = (
    "npu cells run on LiteRT's CompiledModel benchmark: `harness tools fetch --tool litert "
    "--abi arm64-v8a` (or `harness tools add PATH --tool litert --abi ABI`)"
)
NO_EVAL = (
    "LiteRT's CompiledModel benchmark cannot dump outputs (it has no --output_filepath): "
    "accuracy is not measured for this cell; its timing stands"
)


def runner_for(options: dict | BF.BenchmarkOptions | None) -> Callable:
    """A run_cells-compatible callable bound to these Android options."""
    if not isinstance(options, BF.BenchmarkOptions):
        options = BF.BenchmarkOptions.from_dict(options)
    return functools.partial(run_cells, options=options)


def litert_choice(props: dict, cells: list[JobCell]) -> BinaryChoice | None:
    """The LiteRT binary for this device when some cell wants it and one is registered."""
    if not any(c.delegate in LF.LITERT_DELEGATES for c in cells):
        return None
    try:
        return choose_for_device(props, "litert")
    except HarnessError:
        return None  # not registered: those cells stay with benchmark_model


def run_cells(
    device: Device,
    cells: list[JobCell],
    timing: TimingConfig,
    eval_file=None,
    done_rounds: dict[str, list[dict]] | None = None,
    on_round: RoundHook | None = None,
    options: BF.BenchmarkOptions | None = None,
) -> Iterator[tuple[JobCell, dict]]:
    """Yield (cell, raw result) for every cell, as benchmark_model's run_cells does."""
    options = options or BF.BenchmarkOptions()
    props = device.props() if hasattr(device, "props") else {}
    choice = litert_choice(props, cells)
    if choice is None:
        for cell, raw in BM.run_cells(
            device, cells, timing, eval_file, done_rounds, on_round, options
        ):
            if cell.delegate == "npu" and raw.get("status") == "unsupported":
                raw = raw | {"reason": f"{raw.get('reason')}; {NPU_HINT}"}
            yield cell, raw
        return
    mine = {c.id for c in cells if c.delegate in LF.LITERT_DELEGATES}
    rest = [c for c in cells if c.id not in mine]
    litert = LiteRtSession.prepare(device, options, choice, props)
    tflite, tflite_error = None, None
    if rest:
        try:
            tflite = BM.Session.prepare(device, options)
            tflite_error = tflite.error
        except HarnessError as exc:  # no benchmark_model: only its cells fail
            tflite_error = str(exc)
    eval_x = BM.load_eval_x(eval_file, options.eval_limit) if eval_file and tflite else None
    book = RoundBook(cells, timing, done_rounds, on_round)
    started = False
    for r in range(book.limit):
        if not book.pending:
            break
        for cell in book.due(r):
            final = book.is_final(cell, r)
            ours = cell.id in mine
            error = litert.error if ours else tflite_error
            if error:
                env = litert.env if ours else (tflite.env if tflite else {})
                raw = {"status": "failed", "reason": error, "env": env}
            else:
                if started and options.cooldown_s:
                    (litert if ours else tflite).cool_down()
                started = True
                try:
                    if cell.together:  # served together: benchmark_model's own rounds only
                        raw = {
                            "status": "unsupported",
                            "reason": "--together runs on benchmark_model alone: with LiteRT's "
                            "CompiledModel binary registered for this run's gpu/npu cells, "
                            "groups across the two tools are not built",
                            "env": (litert if ours else tflite).env,
                        }
                    elif ours and (cell.batch != 1 or cell.concurrency != 1):
                        # LiteRT's CompiledModel benchmark takes no input shapes
                        raw = {
                            "status": "unsupported",
                            "reason": f"{cell.delegate} cells run at batch 1 and concurrency "
                            "1 only (harness passes no input shapes to LiteRT's CompiledModel "
                            "benchmark)",
                            "env": litert.env,
                        }
                    elif ours:
                        raw = litert.run_cell(cell, timing.per_round(r), final, bool(eval_file))
                    else:
                        x = eval_x if final else None
                        raw = tflite.run_cell(cell, timing.per_round(r), x, final)
                except DeviceError as exc:
                    env = litert.env if ours else tflite.env
                    raw = {"status": "failed", "reason": f"device error: {exc}", "env": env}
            docs = book.record(cell, r, raw)
            if docs is not None:
                yield cell, BM.pool_rounds(docs) if raw["status"] == "ok" else raw


@dataclass
class LiteRtSession:
    """One device prepared for LiteRT's benchmark: binary (and NPU libraries) staged and
    checked, cores chosen."""

    device: Device
    options: BF.BenchmarkOptions
    choice: BinaryChoice
    props: dict = field(default_factory=dict)
    remote: str = ""
    npu_dir: str | None = None
    npu_libs: tuple[ToolBinary, ...] = ()
    affinity: dict = field(default_factory=dict)
    first: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def prepare(
        cls, device: Device, options: BF.BenchmarkOptions, choice: BinaryChoice, props: dict
    ) -> LiteRtSession:
        s = cls(device, options, choice, props)
        binary = choice.binary
        try:
            s.remote = device.stage(binary.path, binary.sha256, "")
            device.run_in_workdir(["chmod", "755", s.remote], 30.0)
            check = device.run_in_workdir([f"./{s.remote}", "--help"], 60.0)
            s.error = start_check(check.stdout + "\n" + check.stderr, check.exit_code, s.label)
            s.npu_libs = tuple(npu_libraries(binary.abi))
            if s.npu_libs:
                s.npu_dir = s._stage_npu_libs()
            s.affinity = BM.core_affinity(options.affinity, BM.read_max_freqs(device))
            s.first = s.last = snapshot(device)
        except DeviceError as exc:
            s.error = f"device error while preparing LiteRT's benchmark: {exc}"
        except HarnessError as exc:  # a registered NPU library changed in the cache
            s.error = str(exc)
        return s

    @property
    def label(self) -> str:
        b = self.choice.binary
        return f"LiteRT's CompiledModel benchmark ({b.abi}, sha256 {b.sha256[:12]})"

    @property
    def env(self) -> dict:
        b = self.choice.binary
        return {
            "runner": "litert_benchmark",
            "binary_sha256": b.sha256,
            "binary_source": b.source,
            **self.choice.env(),
            "npu_libraries": {lib.path.name: lib.sha256 for lib in self.npu_libs},
            "affinity": self.affinity,
        }

    def _stage_npu_libs(self) -> str:
        """Each library content-addressed, linked under its own name into one directory
        named by the set's hash (the runtime finds them by name)."""
        digest = hashlib.sha256(
            "".join(f"{lib.path.name}:{lib.sha256}\n" for lib in self.npu_libs).encode()
        ).hexdigest()[:16]
        folder = f"{NPU_DIR}/{digest}"
        self.device.run_in_workdir(["mkdir", "-p", folder], 30.0)
        for lib in self.npu_libs:
            staged = self.device.stage(lib.path, lib.sha256, ".so")
            link = ["ln", "-sf", f"../../{staged}", f"{folder}/{lib.path.name}"]
            result = self.device.run_in_workdir(link, 30.0)
            if result.exit_code != 0:
                raise DeviceError(f"cannot link {lib.path.name}: {tail(result.stderr)}")
        return folder

    def run_cell(self, cell: JobCell, timing: TimingConfig, final: bool, wants_eval: bool) -> dict:
        """One round of a cell: the timed pass."""
        before = self.last
        env = self.env | {"before": before, "props": before.get("props", {})}
        graph = self.device.stage(cell.model_file, cell.model_sha256, ".tflite")
        flags = LF.cell_flags(
            graph,
            cell.delegate,
            cell.threads,
            timing.runs,
            timing.min_secs,
            timing.warmup,
            max_secs=self.options.max_secs,
            require_full_delegation=self.options.require_full_delegation,
            gpu_backend=self.options.gpu_backend,
            gpu_precision_loss=self.options.gpu_precision_loss if cell.delegate == "gpu" else None,
            npu_dir=self.npu_dir,
        )
        if flags is None:  # npu without vendor libraries
            abi = self.choice.binary.abi
            return {
                "status": "unsupported",
                "reason": "npu needs the vendor's LiteRT dispatch library (and its runtime): "
                f"register each with `harness tools add LIB --tool litert-npu --abi {abi}`",
                "env": env,
            }
        limit = timing.cell_timeout_s or timing.timeout_s
        text, code = self.invoke(flags, limit, npu=cell.delegate == "npu")
        raw = {"status": "ok", "env": env, "affinity": self.affinity}
        raw |= timed_result(parse_output(text), code, cell.delegate, text)
        if raw["status"] == "ok" and final and wants_eval:
            raw["accuracy_error"] = NO_EVAL
        self.last = snapshot(self.device)
        env["after"] = self.last
        raw["hazards"] = BM.noise_hazards(self.props, self.first, self.last)
        if self.choice.native_bridge:
            raw["hazards"].append(
                f"{self.choice.binary.abi} binary run through the {self.choice.device_abi} "
                "device's native bridge: translated code, not native speed"
            )
        return raw

    def invoke(self, flags: list[str], timeout: float, npu: bool = False) -> tuple[str, int]:
        """Run the binary (pinned when a mask was chosen; NPU cells through the fixed
        library-path script); its stdout+stderr and exit code."""
        argv = [f"./{self.remote}", *flags]
        if self.affinity.get("mask"):
            argv = ["taskset", self.affinity["mask"], *argv]
        if npu and self.npu_dir:
            argv = ["sh", "-c", NPU_ENV_SCRIPT, "sh", self.npu_dir, *argv]
        result = self.device.run_in_workdir(argv, timeout)
        return result.stdout + "\n" + result.stderr, result.exit_code

    def cool_down(self) -> None:
        """Sleep --cooldown seconds, then wait (bounded) for the thermal status to be normal."""
        time.sleep(self.options.cooldown_s)
        deadline = time.monotonic() + self.options.thermal_wait_s
        while True:
            self.last = snapshot(self.device)
            level = (self.last.get("thermal_status") or {}).get("level", 0)
            if level == 0 or time.monotonic() >= deadline:
                return
            time.sleep(min(BM.THERMAL_POLL_S, max(0.0, deadline - time.monotonic())))


# -- pure helpers ---------------------------------------------------------------------


def start_check(text: str, code: int, label: str) -> str | None:
    """None when `--help` shows LiteRT's CompiledModel benchmark with the flags harness
    passes; else one line saying what it is instead.

    benchmark_litert_model_main.cc returns success on --help (TFLite's own tool exits 1)
    after the base class logs Flags::Usage; a build whose usage lists no flags is still
    recognised by its log lines' file name (LITERT_LOG writes `[benchmark_litert_model...`)."""
    from harness.runners.benchmark_model.parse import (
        LITERT_COMPILED_MODEL,
        TFLITE_BENCHMARK,
        detect_tool_kind,
        usage_flags,
    )

    kind = detect_tool_kind(text)
    listed = usage_flags(text)
    if kind == TFLITE_BENCHMARK:
        return (
            f"{label} is TFLite's benchmark_model (its usage has no --use_npu): register it "
            "with `harness tools add PATH --abi ABI` (--tool tflite), and LiteRT's "
            "CompiledModel benchmark with --tool litert"
        )
    if kind != LITERT_COMPILED_MODEL and "benchmark_litert_model" not in text:
        return f"{label} does not start on the device: exit {code}: {tail(text)}"
    missing = [f for f in REQUIRED_FLAGS if listed and f not in listed]
    if missing:
        return f"{label} lacks flags harness passes: --{', --'.join(missing)}"
    return None


def timed_result(parsed: LiteRtOutput, code: int, delegate: str, text: str) -> dict:
    """The raw-dict fields of the timed pass (status, aggregates, memory, delegation)."""
    deleg = delegation(parsed, delegate)
    base = {"delegation": deleg}
    if parsed.unconsumed:
        return base | {
            "status": "failed",
            "reason": f"LiteRT's benchmark ignored flags it does not know: {parsed.unconsumed}",
        }
    if code != 0 or not parsed.has_results:
        why = parsed.failure or "no BENCHMARK RESULTS block"
        return base | {
            "status": "failed",
            "reason": f"LiteRT's benchmark exited {code}: {why}: {tail(text)}",
        }
    accel = deleg["accelerator"].upper()
    if deleg["message"]:  # the accelerator did not load: the run went on on the CPU
        return base | {"status": "unsupported", "reason": f"{deleg['message']} (ran on CPU)"}
    if deleg["status"] == "none":
        where = [f"{d['nodes']} of {d['total']} on {d['delegate']}" for d in deleg["delegates"]]
        cpu = "; ".join(where)
        return base | {
            "status": "unsupported",
            "reason": f"no node ran on the {accel}: {cpu}",
        }
    res = parsed.results
    us = {k: v * 1000.0 for k, v in res.items() if k.endswith("_ms")}
    out = base | {
        "status": "ok",
        "latency_aggregate": {
            "n": parsed.runs,
            "mean": us["avg_ms"],
            "std": us.get("std_ms"),
            "min": us.get("min_ms"),
            "max": us.get("max_ms"),
            "median": None,  # only in the binary result proto, not the log
            "p5": None,
            "p95": None,
        },
        "init_us": us.get("init_ms"),
        "first_us": us.get("warmup_first_ms"),
        "peak_rss_kb": round(res["peak_mb"] * 1024) if "peak_mb" in res else None,
        "memory_mb": {
            k: res[k] for k in ("init_footprint_mb", "overall_footprint_mb", "peak_mb") if k in res
        }
        or None,
        "runner": {
            "name": "litert_benchmark",
            "aggregate_only": True,
            "resolution_us": 10.0,  # every figure is printed with two decimals of a ms
            "warmup_runs": parsed.warmup_runs,
            "warmup_avg_us": us.get("warmup_avg_ms"),
            "signature": parsed.signature,
        },
    }
    if None in (out["latency_aggregate"]["std"], us.get("min_ms"), us.get("max_ms")):
        return base | {
            "status": "failed",
            "reason": "LiteRT's benchmark printed no min/max/std: " + tail(text),
        }
    if out["peak_rss_kb"] is not None:
        out["peak_rss_scope"] = "LiteRT benchmark process, Peak memory"
    out["fully_accelerated"] = deleg["status"] == "full" if deleg["status"] != "unknown" else None
    return out
