"""Host side of the Android runner: benchmark_model over ADB, one invocation per pass.

Fulfils the run_cells contract of harness.runners.python_runner: yields (cell, raw) with
status ok|unsupported|failed and a reason. benchmark_model prints aggregates, not
samples, so an ok cell carries `latency_aggregate` (what the tool printed, nothing
invented) instead of `invoke_us`. Per cell, in this order and never mixed:
  1. the timed pass (delegate, threads, runs, peak memory), pinned with taskset, once
     per round: rounds are interleaved as on the Python runner (round r times every
     cell before round r+1), each a fresh benchmark_model process with its share of
     the runs, and the rounds' aggregates are pooled exactly (count, mean, population
     std, min, max; the tool's percentiles cannot be pooled and are kept per round);
  2. the peak-memory pass (--report_peak_memory_footprint's sampling thread can affect
     timing), once, in the last round;
  3. optionally the op-profiling pass (--enable_op_profiling perturbs timing), once;
  4. the accuracy pass, once, in the last round: the first --eval-limit samples fed with
     --input_layer/--input_layer_shape/--input_layer_value_files naming every input, the
     outputs read back from --output_filepath; one invocation for all samples when the
     model's batch dimension is dynamic, one per batch of the static shape otherwise. A
     failed accuracy pass keeps the cell's timing: the failure is recorded beside it.
A flag the binary's --help usage does not list is never sent: the tool would log
"Unconsumed cmdline flags" and run without it (a gpu cell on the CPU). Such a cell is
unsupported; one whose output still says so fails with the tool's line.
Noise hazards (emulator, battery, thermal, debuggable build, governor) are recorded with
every cell as warnings; they never change a figure.
"""

from __future__ import annotations

import functools
import hashlib
import math
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.convert.tflite_info import TensorSpec, inspect_tflite
from harness.devices.base import Device
from harness.devices.snapshot import snapshot
from harness.errors import DeviceError, HarnessError
from harness.measure.energy import pool_energy
from harness.runners.benchmark_model import energy
from harness.runners.benchmark_model import flags as F
from harness.runners.benchmark_model.parse import (
    LITERT_COMPILED_MODEL,
    TFLITE_BENCHMARK,
    BenchmarkOutput,
    detect_tool_kind,
    parse_output,
    tail,
    usage_flags,
)
from harness.runners.benchmark_model.tools import ToolBinary, abi_record, choose_for_device
from harness.runners.python_runner import (
    SUSTAINED_WINDOW_S,
    JobCell,
    RoundBook,
    RoundHook,
    TimingConfig,
    pool_loads,
)

OUTPUTS_DIR = "bm-outputs"
MAX_OUTPUT_FILE = 256 << 20
LOW_BATTERY = 25
TEMP_RISE_C = 2.0
THERMAL_POLL_S = 5.0
PROFILE_TABLES = ("Summary by node type", "Top by Computation Time")
PROFILE_ROWS = 25
ERROR_CHARS = 400  # a failed pass's text kept on the cell
# Stat<int64_t>::std_deviation (stats_calculator.h) is printed as the value type.
STD_NOTE = "benchmark_model prints std in whole microseconds, truncated"

# --concurrency N on Android: N copies of the timed pass started together, each with
# its output in a file of its own; then, instance by instance, its output under a
# LOAD_MARK line and its exit code on a LOAD_EXIT line (sh without arrays: eval).
LOAD_MARK, LOAD_EXIT = "harness-load-instance", "harness-load-exit"
LOAD_SCRIPT = rf"""
n="$1"; tag="$2"; shift 2
i=0
while [ "$i" -lt "$n" ]; do
  "$@" > "load-$tag-$i.txt" 2>&1 &
  eval "pid$i=\$!"
  i=$((i + 1))
done
i=0
while [ "$i" -lt "$n" ]; do
  eval "wait \"\$pid$i\""
  eval "code$i=\$?"
  i=$((i + 1))
done
i=0
while [ "$i" -lt "$n" ]; do
  echo "{LOAD_MARK} $i"
  cat "load-$tag-$i.txt"
  rm -f "load-$tag-$i.txt"
  eval "echo {LOAD_EXIT} $i \$code$i"
  i=$((i + 1))
done
"""

# --together on Android: one benchmark_model process per model, each with flags of its
# own, started together; their outputs reported as LOAD_SCRIPT reports its instances.
LONELY = (
    "--together: no other model of its group could run beside it (their rows say why); "
    "timed alone it would not be what was asked"
)


def together_script(argvs: list[list[str]], tag: str) -> str:
    """The shell script that starts every argv at once and reports each as LOAD_SCRIPT
    does (split_load_output reads it). Every word is quoted: paths and names sent to a
    device never reach its shell unquoted."""
    out = [f"f{i}={shlex.quote(f'together-{tag}-{i}.txt')}" for i in range(len(argvs))]
    for i, argv in enumerate(argvs):
        out += [f'{shlex.join(argv)} > "$f{i}" 2>&1 &', f"pid{i}=$!"]
    out += [f'wait "$pid{i}"; code{i}=$?' for i in range(len(argvs))]
    for i in range(len(argvs)):
        out += [
            f"echo {LOAD_MARK} {i}",
            f'cat "$f{i}"',
            f'rm -f "$f{i}"',
            f'echo {LOAD_EXIT} {i} "$code{i}"',
        ]
    return "\n".join(out) + "\n"


# --sustained on Android: benchmark_model passes of one window each (--min_secs), back to
# back until the duration has passed, each bracketed by /proc/uptime and followed by the
# CPU frequencies and thermal zones (read between passes, outside any timed run). A pass
# that fails ends the loop: its output and code are the cell's reason.
WINDOW_MARK, WINDOW_END = "harness-window", "harness-window-end"
SUSTAINED_SCRIPT = rf"""
dur="$1"; shift
S="${{HARNESS_SYSFS:-/sys}}"
read -r up _ < /proc/uptime; t0="${{up%.*}}"
i=0
while :; do
  read -r up _ < /proc/uptime
  echo "{WINDOW_MARK} $i $up"
  "$@" 2>&1
  code=$?
  read -r up _ < /proc/uptime
  echo "{WINDOW_END} $i $up $code"
  for c in "$S"/devices/system/cpu/cpu[0-9]*; do
    f=$(cat "$c/cpufreq/scaling_cur_freq" 2>/dev/null) && echo "harness-freq ${{c##*/cpu}} $f"
  done
  for z in "$S"/class/thermal/thermal_zone*/temp; do
    t=$(cat "$z" 2>/dev/null) && echo "harness-temp $t"
  done
  [ "$code" -eq 0 ] || break
  i=$((i + 1))
  now="${{up%.*}}"
  [ $((now - t0)) -lt "$dur" ] || break
done
"""

FREQ_SCRIPT = r"""
S="${HARNESS_SYSFS:-/sys}"
for c in "$S"/devices/system/cpu/cpu[0-9]*; do
  f=$(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null) || continue
  printf '%s %s\n' "${c##*/cpu}" "$f"
done
"""


def runner_for(options: dict | F.BenchmarkOptions | None) -> Callable:
    """A run_cells-compatible callable bound to these Android options."""
    if not isinstance(options, F.BenchmarkOptions):
        options = F.BenchmarkOptions.from_dict(options)
    return functools.partial(run_cells, options=options)


def run_cells(
    device: Device,
    cells: list[JobCell],
    timing: TimingConfig,
    eval_file: Path | None,
    done_rounds: dict[str, list[dict]] | None = None,
    on_round: RoundHook | None = None,
    options: F.BenchmarkOptions | None = None,
) -> Iterator[tuple[JobCell, dict]]:
    """Yield (cell, raw result) for every cell. Raises HarnessError only when no binary
    is provisioned for the device's ABI (the message names both commands).
    `done_rounds`/`on_round` resume and keep rounds as python_runner.run_cells does."""
    options = options or F.BenchmarkOptions()
    session = Session.prepare(device, options)
    if session.error:
        for cell in cells:
            yield cell, {"status": "failed", "reason": session.error, "env": session.env}
        return
    eval_x = load_eval_x(eval_file, options.eval_limit) if eval_file else None
    with energy.unplugged(device, options.unplug):  # reset however the sweep ends
        yield from _rounds(session, cells, timing, eval_x, done_rounds, on_round, options)


def _rounds(
    session: Session,
    cells: list[JobCell],
    timing: TimingConfig,
    eval_x: np.ndarray | None,
    done_rounds: dict[str, list[dict]] | None,
    on_round: RoundHook | None,
    options: F.BenchmarkOptions,
) -> Iterator[tuple[JobCell, dict]]:
    """The interleaved rounds of run_cells (module doc)."""
    book = RoundBook(cells, timing, done_rounds, on_round)
    started = False
    for r in range(book.limit):
        if not book.pending:
            break
        for group in together_groups(book.due(r)):
            if started and options.cooldown_s:
                session.cool_down()
            started = True
            finals = {c.id: book.is_final(c, r) for c in group}
            evals = {c.id: eval_x if finals[c.id] else None for c in group}
            try:
                if group[0].together:
                    raws = session.run_together(group, timing.per_round(r), evals, finals)
                else:
                    (cell,) = group
                    raws = {
                        cell.id: session.run_cell(
                            cell, timing.per_round(r), evals[cell.id], finals[cell.id]
                        )
                    }
            except DeviceError as exc:
                failed = {"status": "failed", "reason": f"device error: {exc}"}
                raws = {c.id: failed | {"env": session.env} for c in group}
            for cell in group:
                raw = raws[cell.id]
                docs = book.record(cell, r, raw)
                if docs is not None:
                    yield cell, pool_rounds(docs) if raw["status"] == "ok" else raw


def together_groups(cells: list[JobCell]) -> list[list[JobCell]]:
    """The round's cells as the units it runs: a --together group (its cells of one
    setting, one per model) as one, every other cell alone, in plan order."""
    groups: dict[str, list[JobCell]] = {}
    out = []
    for c in cells:
        if c.together and c.group:
            if c.group not in groups:
                groups[c.group] = []
                out.append(groups[c.group])
            groups[c.group].append(c)
        else:
            out.append([c])
    return out


@dataclass
class Session:
    """One device prepared for benchmark_model: binary pushed and checked, cores chosen."""

    device: Device
    options: F.BenchmarkOptions
    binary: ToolBinary | None = None
    remote: str = ""
    props: dict = field(default_factory=dict)
    affinity: dict = field(default_factory=dict)
    flags: frozenset[str] = frozenset()  # the flags the binary's --help usage lists
    first: dict = field(default_factory=dict)  # the snapshot before the first cell
    last: dict = field(default_factory=dict)  # the latest snapshot
    error: str | None = None

    @classmethod
    def prepare(cls, device: Device, options: F.BenchmarkOptions) -> Session:
        s = cls(device, options)
        s.props = device.props() if hasattr(device, "props") else {}
        s.binary = choose_binary(s.props)
        try:
            s.remote = device.stage(s.binary.path, s.binary.sha256, "")
            device.run_in_workdir(["chmod", "755", s.remote], 30.0)
            device.run_in_workdir(["mkdir", "-p", OUTPUTS_DIR], 30.0)
            check = device.run_in_workdir([f"./{s.remote}", "--help"], 60.0)
            s.flags, s.error = start_check(
                check.stdout + "\n" + check.stderr,
                check.exit_code,
                f"benchmark_model ({s.binary.abi}, sha256 {s.binary.sha256[:12]})",
                device.name,
            )
            s.affinity = core_affinity(options.affinity, read_max_freqs(device))
            s.first = s.last = snapshot(device)
        except DeviceError as exc:
            s.error = f"device error while preparing benchmark_model: {exc}"
        return s

    @property
    def env(self) -> dict:
        b = self.binary
        return {
            "runner": "benchmark_model",
            "binary_sha256": b.sha256 if b else None,
            "binary_source": b.source if b else None,
            "abi": b.abi if b else None,
            **abi_record(self.props, b),  # which ABI's binary ran, native bridge or not
            "affinity": self.affinity,
        }

    # -- one cell -----------------------------------------------------------------------

    def run_cell(
        self, cell: JobCell, timing: TimingConfig, eval_x: np.ndarray | None, final: bool = True
    ) -> dict:
        """One round of a cell: the timed pass; the profile and accuracy passes when final."""
        before = self.last
        env = self.env | {"before": before, "props": before.get("props", {})}
        graph = self.device.stage(cell.model_file, cell.model_sha256, ".tflite")
        timed = F.cell_flags(
            graph,
            cell.delegate,
            cell.threads,
            timing.runs,
            timing.min_secs,
            timing.warmup,
            self.options,
        )
        try:  # the batch rides on every pass that times or measures (never the eval pass)
            resize = self._batch_flags(cell)
        except HarnessError as exc:
            return {"status": "unsupported", "reason": str(exc), "env": env}
        refused = self._refusal(cell, timed is not None)
        if refused:
            return {"status": "unsupported", "reason": refused, "env": env}
        raw: dict = {"status": "ok", "env": env, "affinity": self.affinity}
        limit = timing.cell_timeout_s or timing.timeout_s
        if cell.timing and cell.sustained_s:
            flags = F.cell_flags(
                graph, cell.delegate, cell.threads, 1, SUSTAINED_WINDOW_S, timing.warmup,
                self.options,
            )  # fmt: skip
            raw |= self.sustained_pass((flags or []) + resize, cell, limit)
        elif cell.timing and (cell.load or cell.concurrency != 1):
            window = timing.min_secs or timing.load_window_s
            flags = F.cell_flags(
                graph, cell.delegate, cell.threads, 1, window, timing.warmup, self.options
            )
            raw |= self.load_pass((flags or []) + resize, cell, limit)
        elif cell.timing:
            try:
                text, code, power, readings = self.timed_pass(timed + resize, limit, cell)
            except _NoBattery:
                return {"status": "unsupported", "reason": NO_BATTERY, "env": env}
            raw |= timed_result(parse_output(text), code, cell.delegate, text)
            if power is not None and raw["status"] == "ok":
                raw["energy"] = power.to_dict() | {"readings": readings}
            if raw["status"] == "ok" and final:
                raw |= self.memory_and_profile(cell, graph, resize, raw, limit)
        return self.finish(cell, graph, raw, env, eval_x, limit)

    def memory_and_profile(
        self, cell: JobCell, graph: str, resize: list[str], raw: dict, limit: float
    ) -> dict:
        """A final round's passes after the timed one: peak memory, the op profile."""
        out: dict = {}
        text, code = self.invoke(
            F.memory_flags(graph, cell.delegate, cell.threads, self.options) + resize, limit
        )
        out |= memory_result(parse_output(text), code, text, raw.get("memory_mb"))
        if self.options.op_profile:
            text, _ = self.invoke(
                F.profile_flags(graph, cell.delegate, cell.threads, self.options) + resize,
                limit,
            )
            out["op_profile"] = profile_summary(parse_output(text))
        return out

    def finish(self, cell: JobCell, graph: str, raw: dict, env: dict, eval_x, limit: float) -> dict:
        """The accuracy pass (eval_x given: the final round), then the device's state."""
        if raw["status"] == "ok" and eval_x is not None:
            try:
                outputs, calls = self.evaluate(cell, graph, eval_x, limit)
                raw["eval"] = {"n": len(outputs), "outputs": outputs}
                raw["eval_invocations"] = calls
            except EvalError as exc:
                # The timing stands: only the accuracy is missing, and says why.
                raw["accuracy_error"] = f"accuracy pass: {exc}"[:ERROR_CHARS]
        self.last = snapshot(self.device)
        env["after"] = self.last
        raw["hazards"] = noise_hazards(self.props, self.first, self.last)
        return raw

    def _refusal(self, cell: JobCell, has_delegate: bool) -> str | None:
        """Why this build or these options cannot time the cell (an unsupported row)."""
        if cell.sustained_s and self.options.energy:
            return (
                "--energy times one benchmark_model pass: a sustained run of back-to-back "
                "passes is not measured for energy"
            )
        if (cell.load or cell.concurrency != 1) and self.options.energy:
            return (
                "--energy times one benchmark_model at a time: a load of "
                f"{cell.concurrency} processes is not measured for energy"
            )
        if cell.together and self.options.energy:
            return (
                "--energy times one benchmark_model at a time: models served together "
                "are not measured for energy"
            )
        if not has_delegate:
            return (
                f"benchmark_model has no {cell.delegate} delegate "
                f"(it runs {', '.join(F.DELEGATE_FLAGS)})"
            )
        missing = [f for f in F.required_flags(cell.delegate, self.options) if f not in self.flags]
        if missing:
            return (
                f"this benchmark_model build has no {cell.delegate} delegate: "
                f"{', '.join('--' + f for f in missing)} not in its --help usage (it would log "
                "'Unconsumed cmdline flags' and run on the CPU)"
            )
        return None

    def _batch_flags(self, cell: JobCell) -> list[str]:
        """The resize flags of a batch cell ([] at batch 1); HarnessError: it cannot be."""
        if cell.batch == 1:
            return []
        info = inspect_tflite(Path(cell.model_file).read_bytes(), label=str(cell.model_file))
        return F.batch_flags(info.inputs, cell.batch)

    def invoke(self, flags: list[str], timeout: float) -> tuple[str, int]:
        """Run the binary (pinned when a mask was chosen); its stdout+stderr and exit code."""
        result = self.device.run_in_workdir(self._argv(flags), timeout)
        return result.stdout + "\n" + result.stderr, result.exit_code

    def _argv(self, flags: list[str]) -> list[str]:
        argv = [f"./{self.remote}", *flags]
        if self.affinity.get("mask"):
            argv = ["taskset", self.affinity["mask"], *argv]
        return argv

    def timed_pass(self, flags: list[str], timeout: float, cell: JobCell):
        """(text, exit code, EnergyFigure or None, raw readings or None): the timed pass,
        under the battery sampler after an idle baseline when --energy is on."""
        if not self.options.energy:
            return (*self.invoke(flags, timeout), None, None)
        status = energy.battery_status(self.device)
        if status is None:  # checked per cell: cheap, and the row says why
            raise _NoBattery()

        def run(argv):
            result = self.device.run_in_workdir(argv, timeout + energy.IDLE_S)
            return result.stdout + "\n" + result.stderr, result.exit_code

        def inferences(res) -> int:
            parsed = parse_output(res[0])
            return sum(s.count for s in (parsed.warmup, parsed.steady) if s is not None)

        tag = f"{cell.model_sha256[:12]}-{cell.id}"
        res, power, readings = energy.measure(
            self.device, run, self._argv(flags), inferences, status, tag
        )
        return (*res, power, readings)

    def run_together(
        self,
        cells: list[JobCell],
        timing: TimingConfig,
        evals: dict[str, np.ndarray | None],
        finals: dict[str, bool],
    ) -> dict[str, dict]:
        """--together on Android, one round of a group: each model alone for the window
        (--min_secs after its warm-up), one after another, then all of them at once, one
        benchmark_model process each (together_script), then each one's final passes.

        Each cell's latency is its aggregate under contention, and `together` holds its
        alone aggregate beside it: both are the tool's own figures of one round, moments
        apart. A model that fails fails alone; the others are rows saying so."""
        env = self.env | {"before": self.last, "props": self.last.get("props", {})}
        window = timing.min_secs or timing.load_window_s
        limit = timing.cell_timeout_s or timing.timeout_s
        raws: dict[str, dict] = {}
        passes: dict[str, tuple[str, list[str], list[str]]] = {}
        for cell in cells:
            graph = self.device.stage(cell.model_file, cell.model_sha256, ".tflite")
            flags = F.cell_flags(
                graph, cell.delegate, cell.threads, 1, window, timing.warmup, self.options
            )
            try:
                resize = self._batch_flags(cell)
            except HarnessError as exc:
                raws[cell.id] = {"status": "unsupported", "reason": str(exc), "env": env}
                continue
            refused = self._refusal(cell, flags is not None)
            if refused:
                raws[cell.id] = {"status": "unsupported", "reason": refused, "env": env}
                continue
            passes[cell.id] = (graph, flags + resize, resize)
        live = [c for c in cells if c.id in passes]
        if len(live) < 2:
            return raws | {c.id: {"status": "unsupported", "reason": LONELY, "env": env}
                           for c in live}  # fmt: skip
        alone = {}
        for cell in live:
            text, code = self.invoke(passes[cell.id][1], limit)
            alone[cell.id] = timed_result(parse_output(text), code, cell.delegate, text)
        shared = self._members_failed(live, alone)
        if shared is None:
            tag = f"{live[0].model_sha256[:12]}-{live[0].id}"
            script = together_script([self._argv(passes[c.id][1]) for c in live], tag)
            result = self.device.run_in_workdir(["sh", "-c", script], limit + 30.0)
            texts, codes = split_load_output(result.stdout, len(live))
            together = {
                c.id: timed_result(parse_output(t), code, c.delegate, t)
                for c, t, code in zip(live, texts, codes, strict=True)
            }
            shared = self._members_failed(live, together) or together
        for cell in live:
            raw = {"env": dict(env), "affinity": self.affinity} | shared[cell.id]
            if raw.get("status", "ok") == "ok" and "latency_aggregate" in raw:
                raw["status"] = "ok"
                raw["together"] = together_round(alone[cell.id], raw, len(live))
                graph, _, resize = passes[cell.id]
                if finals[cell.id]:
                    raw |= self.memory_and_profile(cell, graph, resize, raw, limit)
            raws[cell.id] = self.finish(
                cell, passes[cell.id][0], raw, raw["env"], evals[cell.id], limit
            )
        return raws

    @staticmethod
    def _members_failed(cells: list[JobCell], results: dict[str, dict]) -> dict | None:
        """None when every model's pass is ok; else each failed one's own result and,
        for the others, an unsupported row naming the first failure."""
        bad = [c for c in cells if results[c.id].get("status", "ok") != "ok"]
        if not bad:
            return None
        first = results[bad[0].id]
        partner = {
            "status": "unsupported",
            "reason": "--together: another model of its group failed beside it: "
            + str(first.get("reason"))[:ERROR_CHARS],
        }
        return {c.id: results[c.id] if c in bad else partner for c in cells}

    def load_pass(self, flags: list[str], cell: JobCell, timeout: float) -> dict:
        """--concurrency N: N benchmark_model processes started together on the device,
        each timing its own window (the flags' --min_secs) after its load and warm-up.

        The tool prints aggregates only, so the cell's latency is the N instances'
        aggregates pooled exactly (pool_aggregates); no per-request p99 exists. The
        throughput is every sample the instances completed over the longest instance's
        timed span (each span is its count x mean): the instances overlap for all but
        their start-up stagger, which the rate slightly overstates when it is large
        against the window."""
        n, tag = cell.concurrency, f"{cell.model_sha256[:12]}-{cell.id}"
        argv = ["sh", "-c", LOAD_SCRIPT, "sh", str(n), tag, *self._argv(flags)]
        result = self.device.run_in_workdir(argv, timeout + 30.0)  # side by side, not in turn
        texts, codes = split_load_output(result.stdout, n)
        results = []
        for i, (text, code) in enumerate(zip(texts, codes, strict=True)):
            one = timed_result(parse_output(text), code, cell.delegate, text)
            if one.get("status", "ok") != "ok":
                return one | {"reason": f"instance {i + 1} of {n}: {one.get('reason')}"}
            results.append(one)
        aggs = [r["latency_aggregate"] for r in results]
        spans = [a["n"] * a["mean"] / 1e6 for a in aggs]
        requests = sum(int(a["n"]) for a in aggs)
        runner = dict(results[0].get("runner") or {}) | {
            "instances_aggregate": aggs,
            "std_note": STD_NOTE + "; the pooled std is computed from the instances'",
        }
        return results[0] | {
            "latency_aggregate": pool_aggregates(aggs) if n > 1 else aggs[0],
            "runner": runner,
            "load": {
                "instances": n,
                "requests": requests,
                "samples": requests * cell.batch,
                "window_s": max(spans),
                "per_instance": [int(a["n"]) for a in aggs],
            },
        }

    def sustained_pass(self, flags: list[str], cell: JobCell, timeout: float) -> dict:
        """--sustained on Android: benchmark_model passes of one window each, back to back
        on the device for the cell's duration (SUSTAINED_SCRIPT), the CPU frequencies and
        the hottest thermal zone read between them.

        Each window is a fresh process (the tool prints aggregates only once, at its end),
        so each window's figure is the tool's own median of its runs (its mean where it
        printed none) and the windows are separated by a model load and warm-up: the
        timed fraction of the wall time is recorded beside the series."""
        duration = float(cell.sustained_s or 0.0)
        argv = ["sh", "-c", SUSTAINED_SCRIPT, "sh", str(math.ceil(duration)), *self._argv(flags)]
        result = self.device.run_in_workdir(argv, timeout + 60.0)
        passes = split_windows(result.stdout)
        if not passes:
            return {
                "status": "failed",
                "reason": f"sustained: no window ran: {tail(result.stdout + result.stderr)}",
            }
        first = None
        windows = []
        for k, w in enumerate(passes):
            one = timed_result(parse_output(w.text), w.code, cell.delegate, w.text)
            if one.get("status", "ok") != "ok":
                return one | {"reason": f"sustained window {k + 1}: {one.get('reason')}"}
            first = first or one
            agg = one["latency_aggregate"]
            windows.append(
                {
                    "t_s": w.end - passes[0].start,
                    "n": int(agg["n"]),
                    "aggregate": agg,
                    "init_us": one.get("init_us"),
                    "freq_khz": [w.freqs[c] for c in sorted(w.freqs)] or None,
                    "temp_c": max(w.temps) / 1000.0 if w.temps else None,  # millidegrees
                }
            )
        aggs = [w["aggregate"] for w in windows]
        wall = passes[-1].end - passes[0].start
        timed = sum(a["n"] * a["mean"] for a in aggs) / 1e6
        missing = [
            what
            for what, found in (
                ("cpufreq/scaling_cur_freq", any(w.freqs for w in passes)),
                ("thermal_zone*/temp", any(w.temps for w in passes)),
            )
            if not found
        ]
        return first | {
            "latency_aggregate": pool_aggregates(aggs) if len(aggs) > 1 else aggs[0],
            "sustained": {
                "duration_s": duration,
                "window_s": SUSTAINED_WINDOW_S,
                "windows": windows,
                "missing": missing,
                "cores": max(len(w.freqs) for w in passes),
                "zones": max(len(w.temps) for w in passes),
                "processes": len(windows),
                "timed_fraction": timed / wall if wall > 0 else None,
                "note": "one benchmark_model process per window (its median of the window's "
                "runs); between windows the model is loaded again",
            },
        }

    def evaluate(
        self, cell: JobCell, graph: str, x: np.ndarray, timeout: float
    ) -> tuple[np.ndarray, int]:
        """Outputs for the eval samples, produced on the device with the cell's delegate."""
        info = inspect_tflite(Path(cell.model_file).read_bytes(), label=str(cell.model_file))
        if len(info.inputs) != 1:
            raise EvalError(
                f"the model has {len(info.inputs)} inputs; --eval data (x) feeds exactly one"
            )
        spec = info.inputs[0]
        values = to_input_dtype(x, spec)
        batches = eval_batches(values, spec)
        if not batches:
            raise EvalError(
                f"{len(values)} eval samples do not fill one batch of the static input "
                f"shape {list(spec.shape)}"
            )
        rows = []
        for k, batch in enumerate(batches):
            staged = self._stage_values(batch, spec)
            out = f"{OUTPUTS_DIR}/{cell.model_sha256[:16]}-{cell.id}-{k}.bin"
            feed = F.InputFeed(spec.name, tuple(batch.shape), staged)
            try:
                flags = F.eval_flags(graph, cell.delegate, cell.threads, self.options, [feed], out)
            except HarnessError as exc:
                raise EvalError(str(exc)) from None
            text, code = self.invoke(flags, timeout)
            if code != 0:
                parsed = parse_output(text)
                why = parsed.fatal or tail(text)
                raise EvalError(f"benchmark_model exited {code}: {why}")
            try:
                data = self.device.pull_bytes(out, MAX_OUTPUT_FILE)
            finally:
                self.device.run_in_workdir(["rm", "-f", out], 30.0)
            rows.append(decode_outputs(data, info.outputs, len(batch), cell.output))
        return np.concatenate(rows).astype(np.float32), len(batches)

    def _stage_values(self, batch: np.ndarray, spec: TensorSpec) -> str:
        """Push one value file; its size must be the tensor's byte size exactly
        (LoadInputTensorData, benchmark_tflite_model.cc: FATAL otherwise)."""
        data = np.ascontiguousarray(batch).tobytes()
        want = int(np.prod(batch.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
        if len(data) != want:
            raise EvalError(f"value file for {spec.name} has {len(data)} bytes, not {want}")
        sha = hashlib.sha256(data).hexdigest()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "values.bin"
            path.write_bytes(data)
            return self.device.stage(path, sha, ".bin")

    def cool_down(self) -> None:
        """Sleep --cooldown seconds, then wait (bounded) for the thermal status to be normal."""
        time.sleep(self.options.cooldown_s)
        deadline = time.monotonic() + self.options.thermal_wait_s
        while True:
            self.last = snapshot(self.device)
            level = (self.last.get("thermal_status") or {}).get("level", 0)
            if level == 0 or time.monotonic() >= deadline:
                return
            time.sleep(min(THERMAL_POLL_S, max(0.0, deadline - time.monotonic())))


class EvalError(Exception):
    """The accuracy pass could not produce outputs."""


class _NoBattery(Exception):
    """--energy on a device without battery current and voltage to read."""


NO_BATTERY = (
    "--energy: this device has no power_supply/battery/current_now and voltage_now to "
    "read (energy is measured from the battery)"
)


# -- pure helpers ---------------------------------------------------------------------


def choose_binary(props: dict) -> ToolBinary:
    """The cached binary for the device's ABI (ro.product.cpu.abi, then the abilist; an
    arm64 build through an x86_64 emulator's native bridge): tools.choose_for_device."""
    return choose_for_device(props).binary


def start_check(
    text: str, code: int, what: str, device_name: str
) -> tuple[frozenset[str], str | None]:
    """(the flags the usage lists, an error or None) from `BINARY --help`.

    The real tool prints its usage to stderr and exits 1 (benchmark_model.cc ParseFlags),
    so the exit code proves nothing: the usage text does. It must be TFLite's
    benchmark_model, and list every flag harness may send whatever the cell."""
    kind = detect_tool_kind(text)
    flags = usage_flags(text)
    if kind == LITERT_COMPILED_MODEL:
        return flags, (
            f"{what} on {device_name} is LiteRT's CompiledModel benchmark (--use_cpu/--use_gpu/"
            "--use_npu, results under BENCHMARK RESULTS), not TFLite's benchmark_model: "
            "this runner's flags would be ignored by it; register a TFLite benchmark_model "
            "with `harness tools add PATH --abi ABI`"
        )
    if kind != TFLITE_BENCHMARK:
        return flags, (
            f"{what} does not start on {device_name} (no benchmark_model usage from --help): "
            f"exit {code}: {tail(text)}"
        )
    missing = [f for f in F.BASE_FLAGS if f not in flags]
    if missing:
        return flags, (
            f"{what} on {device_name} lacks flags harness sends: "
            f"{', '.join('--' + f for f in missing)} (not in its --help usage)"
        )
    return flags, None


def timed_result(parsed: BenchmarkOutput, code: int, delegate: str, text: str) -> dict:
    """The raw-dict fields of the timed pass (status, aggregates, memory, delegation)."""
    delegation = parsed.delegation.to_dict()
    if parsed.unconsumed_flags:  # the run went on without them: its figures are not the cell's
        return {
            "status": "failed",
            "reason": f"benchmark_model ignored flags: {parsed.unconsumed_flags}",
            "delegation": delegation,
        }
    if parsed.platform_unsupported and delegate in F.ACCELERATED:
        return {
            "status": "unsupported",
            "reason": f"benchmark_model: {parsed.platform_unsupported} (it ran without the "
            "delegate)",
            "delegation": delegation,
        }
    if code != 0 or not parsed.ok:
        why = parsed.reason if not parsed.ok else f"benchmark_model exited {code}: {tail(text)}"
        return {"status": "failed", "reason": why, "delegation": delegation}
    s = parsed.steady
    if s is None or None in (s.avg, s.std, s.min, s.max):
        return {
            "status": "failed",
            "reason": "benchmark_model printed no per-run statistics (count/avg/std): "
            + tail(text),
            "delegation": delegation,
        }
    out = {
        "latency_aggregate": {
            "n": s.count,
            "mean": s.avg,
            "std": s.std,
            "min": s.min,
            "max": s.max,
            "median": s.median,
            "p5": s.p5,
            "p95": s.p95,
        },
        "init_us": parsed.init_us,
        "first_us": parsed.first_us,
        "memory_mb": parsed.memory_mb,
        "delegation": delegation,
        "runner": {
            "name": "benchmark_model",
            "aggregate_only": True,
            "warmup": parsed.warmup.to_dict() if parsed.warmup else None,
            "warmup_avg_us": parsed.warmup_avg_us,
            "all_same": s.all_same,
            "std_note": STD_NOTE,
        },
    }
    if parsed.peak_memory_kb is not None:  # a binary that monitors without being asked
        out |= {"peak_rss_kb": parsed.peak_memory_kb, "peak_rss_scope": PEAK_SCOPE}
    if delegate in F.ACCELERATED:
        # Only an explicit "completely executed" counts: anything else ran (partly) on CPU.
        out["fully_accelerated"] = parsed.delegation.status == "full"
    return out


PEAK_SCOPE = (
    "benchmark_model process: 'Overall peak memory footprint (MB) via periodic monitoring' "
    "(RSS sampled every 50 ms, in a pass of its own)"
)


def memory_result(parsed: BenchmarkOutput, code: int, text: str, timed: dict | None) -> dict:
    """The peak-memory pass: the monitored peak as peak_rss_kb, every memory line kept.

    The change of max RSS ("Memory footprint delta from the start of the tool", "Peak
    memory footprint" in older builds) is kept as max_rss_delta, never as the peak. The
    pass failing costs the peak, never the cell's timing."""
    memory = dict(timed or {})
    if code != 0 or not parsed.ok or parsed.unconsumed_flags:
        why = parsed.unconsumed_flags or parsed.reason or f"exited {code}: {tail(text)}"
        return {"memory_mb": memory | {"pass_error": str(why)[:ERROR_CHARS]}}
    memory |= parsed.memory_mb
    out: dict = {"memory_mb": memory}
    if parsed.peak_memory_kb is not None:
        out |= {"peak_rss_kb": parsed.peak_memory_kb, "peak_rss_scope": PEAK_SCOPE}
    return out


def pool_rounds(raws: list[dict]) -> dict:
    """One raw result from a cell's ok rounds: aggregates pooled exactly, init and first
    inference per round (their median as the figure), the last round's passes kept.

    benchmark_model's std is the population std (sqrt(E[x^2] - mean^2)), so the pooled
    one is exact: sum(n_i * (std_i^2 + mean_i^2)) / N - mean^2. Percentiles are not
    poolable: with more than one round the median/p5/p95 are None (kept per round). Each
    round's std was printed truncated to whole microseconds, so the pooled std carries
    that error too (runner.std_note says so)."""
    if len(raws) == 1:
        return raws[0]
    aggs = [r["latency_aggregate"] for r in raws]
    merged = dict(raws[-1])
    merged["latency_aggregate"] = pool_aggregates(aggs)
    loads = [r["load"] for r in raws if isinstance(r.get("load"), dict)]
    if loads:  # a load cell: its windows add up (requests and seconds, never rates)
        merged["load"] = pool_loads(loads)
    together = [r["together"] for r in raws if isinstance(r.get("together"), dict)]
    if together:  # --together: each round's pair of centres, the aggregates pooled
        merged["together"] = pool_together_rounds(together)
    for key in ("init_us", "first_us"):
        values = [r[key] for r in raws if isinstance(r.get(key), int | float)]
        merged[f"{key}_rounds"] = values
        merged[key] = statistics.median(values) if values else None
    peaks = [r["peak_rss_kb"] for r in raws if isinstance(r.get("peak_rss_kb"), int | float)]
    merged["peak_rss_kb"] = max(peaks) if peaks else None
    merged["runner"] = dict(raws[-1].get("runner") or {}) | {
        "rounds_aggregate": aggs,
        "std_note": STD_NOTE + "; the pooled std is computed from those",
    }
    merged["rounds"] = len(raws)
    powers = [r["energy"] for r in raws if isinstance(r.get("energy"), dict)]
    if powers:  # every round's energy and inferences summed, then divided
        merged["energy"] = pool_energy(powers)
    env = dict(raws[-1].get("env") or {})
    if "before" in (raws[0].get("env") or {}):
        env["before"] = raws[0]["env"]["before"]  # the first round's, as for one pass
    merged["env"] = env
    return merged


def together_round(alone: dict, shared: dict, members: int) -> dict:
    """One round of a --together cell from the tool's two aggregates: alone, and under
    contention. A round's centre is the tool's median (its mean where it printed none)."""
    a, s = alone["latency_aggregate"], shared["latency_aggregate"]
    return {
        "members": members,
        "alone_aggregate": a,
        "requests": int(s["n"]),
        "window_s": s["n"] * s["mean"] / 1e6,
        "alone_requests": int(a["n"]),
        "alone_window_s": a["n"] * a["mean"] / 1e6,
        "round_medians": [[_center(a), _center(s)]],
        "center": "median" if a.get("median") and s.get("median") else "mean",
    }


def pool_together_rounds(rounds: list[dict]) -> dict:
    """The --together rounds of an Android cell as one: counts and seconds summed, the
    alone aggregates pooled exactly, every round's pair of centres kept."""
    pooled = {
        k: sum(float(r.get(k) or 0) for r in rounds)
        for k in ("requests", "window_s", "alone_requests", "alone_window_s")
    }
    return pooled | {
        "members": rounds[-1].get("members"),
        "alone_aggregate": pool_aggregates([r["alone_aggregate"] for r in rounds]),
        "round_medians": [p for r in rounds for p in r.get("round_medians") or []],
        "center": "mean" if any(r.get("center") == "mean" for r in rounds) else "median",
    }


def _center(agg: dict) -> float:
    return float(agg["median"]) if agg.get("median") else float(agg["mean"])


def pool_aggregates(aggs: list[dict]) -> dict:
    """benchmark_model's aggregates of several passes (rounds, or a load's instances) as
    one, exactly: count and mean add up, and its std being the population std, the
    pooled one is sqrt(sum(n_i (std_i^2 + mean_i^2)) / N - mean^2). Percentiles do not
    pool: None."""
    n = sum(a["n"] for a in aggs)
    mean = sum(a["n"] * a["mean"] for a in aggs) / n
    second = sum(a["n"] * (a["std"] ** 2 + a["mean"] ** 2) for a in aggs) / n
    return {
        "n": n,
        "mean": mean,
        "std": math.sqrt(max(0.0, second - mean * mean)),
        "min": min(a["min"] for a in aggs),
        "max": max(a["max"] for a in aggs),
        "median": None,
        "p5": None,
        "p95": None,
    }


def split_load_output(stdout: str, n: int) -> tuple[list[str], list[int]]:
    """LOAD_SCRIPT's output -> each instance's text and exit code (an instance whose
    section or code is missing gets "" and -1: it fails the cell, never a figure)."""
    texts, codes = [""] * n, [-1] * n
    current = None
    for line in stdout.splitlines(keepends=True):
        head = line.split()
        if len(head) == 2 and head[0] == LOAD_MARK and head[1].isdigit():
            current = int(head[1]) if int(head[1]) < n else None
            continue
        if len(head) == 3 and head[0] == LOAD_EXIT and head[1].isdigit() and int(head[1]) < n:
            codes[int(head[1])] = int(head[2]) if head[2].lstrip("-").isdigit() else -1
            current = None
            continue
        if current is not None:
            texts[current] += line
    return texts, codes


@dataclass
class WindowPass:
    """One pass of SUSTAINED_SCRIPT: its output, exit code, uptime at its start and
    end, and the sysfs readings after it (cpu index -> kHz; zone temperatures in m°C)."""

    text: str
    code: int
    start: float
    end: float
    freqs: dict[int, int] = field(default_factory=dict)
    temps: list[int] = field(default_factory=list)


def split_windows(stdout: str) -> list[WindowPass]:
    """SUSTAINED_SCRIPT's output -> its passes in order; a pass cut off before its end
    line (the connection dropped, the timeout struck) is left out."""
    out: list[WindowPass] = []
    text, start = None, 0.0  # text: the output of the pass under way, None between passes
    for line in stdout.splitlines(keepends=True):
        head = line.split()
        if len(head) == 3 and head[0] == WINDOW_MARK and _number(head[2]) is not None:
            text, start = "", _number(head[2])
        elif text is not None and len(head) == 4 and head[0] == WINDOW_END:
            end = _number(head[2])
            code = int(head[3]) if head[3].lstrip("-").isdigit() else -1
            if end is not None:
                out.append(WindowPass(text, code, start, end))
            text = None
        elif text is not None:
            text += line
        elif out and len(head) == 3 and head[0] == "harness-freq" and _digits(head[1:]):
            out[-1].freqs[int(head[1])] = int(head[2])
        elif out and len(head) == 2 and head[0] == "harness-temp" and _digits([head[1]], True):
            out[-1].temps.append(int(head[1]))
    return out


def _digits(words: list[str], signed: bool = False) -> bool:
    return all((w.lstrip("-") if signed else w).isdigit() for w in words)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def profile_summary(parsed: BenchmarkOutput) -> dict:
    """The op-profiling pass's tables for the timed runs (never its latencies)."""
    tables = parsed.op_profile.get("run", {})
    return {name: tables[name][:PROFILE_ROWS] for name in PROFILE_TABLES if name in tables}


def read_max_freqs(device: Device) -> dict[int, int]:
    """cpu index -> cpuinfo_max_freq (kHz), from sysfs ($HARNESS_SYSFS in tests)."""
    out = device.shell(["sh", "-c", FREQ_SCRIPT], timeout=30.0).stdout
    freqs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            freqs[int(parts[0])] = int(parts[1])
    return freqs


def core_affinity(mode: str, freqs: dict[int, int]) -> dict:
    """{"mode", "mask" (hex or None: not pinned), "cores", "max_freq_khz"}.

    big: every core faster than the slowest cluster; little: the slowest cluster. With
    one cluster (or no cpufreq) there is nothing to choose and nothing is pinned.
    """
    mode = F.parse_affinity(mode)
    info = {"mode": mode, "mask": None, "cores": sorted(freqs), "max_freq_khz": freqs}
    if mode not in F.AFFINITY_MODES:  # an explicit mask
        bits = int(mode, 16)
        return info | {
            "mask": mode,
            "cores": [c for c in range(bits.bit_length()) if bits >> c & 1],
        }
    slowest = min(freqs.values(), default=0)
    if mode == "all" or len(set(freqs.values())) < 2:
        return info
    cores = sorted(c for c, f in freqs.items() if (f > slowest) == (mode == "big"))
    return info | {"mask": format(sum(1 << c for c in cores), "x"), "cores": cores}


def noise_hazards(props: dict, first: dict, now: dict) -> list[str]:
    """Conditions that make latency figures noisy, as one-line warnings."""
    out = []
    if props.get("ro.kernel.qemu") == "1" or props.get("ro.boot.qemu") == "1":
        out.append("emulator: latency does not represent a phone")
    battery = now.get("battery") or {}
    if isinstance(battery.get("level"), int) and battery["level"] < LOW_BATTERY:
        out.append(f"battery at {battery['level']}% (< {LOW_BATTERY}%): may throttle")
    thermal = now.get("thermal_status") or {}
    if thermal.get("level", 0) > 0:
        out.append(f"thermal status {thermal.get('name')} (above normal)")
    t0, t1 = (first.get("battery") or {}).get("temp_c"), battery.get("temp_c")
    if isinstance(t0, int | float) and isinstance(t1, int | float) and t1 - t0 >= TEMP_RISE_C:
        out.append(f"battery temperature rose {t1 - t0:.1f} °C over the run ({t0} -> {t1})")
    if props.get("ro.debuggable") == "1" or props.get("ro.build.type") in ("eng", "userdebug"):
        out.append(f"debuggable build ({props.get('ro.build.type') or 'ro.debuggable=1'})")
    governors = {g.get("governor") for g in (now.get("governors") or {}).values()}
    slow = sorted(g for g in governors if g and g != "performance")
    if slow:
        out.append(f"CPU governor {', '.join(slow)} (not performance)")
    return out


def load_eval_x(path: Path, limit: int) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        return np.asarray(npz["x"])[:limit]


def to_input_dtype(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Samples as the model's input tensor type (quantised with its scale/zero point)."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind in "iu" and spec.scale:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, np.float64) / spec.scale + (spec.zero_point or 0))
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.asarray(x).astype(dtype)


def eval_batches(values: np.ndarray, spec: TensorSpec) -> list[np.ndarray]:
    """The samples cut to what one invocation takes: all of them when the batch dimension
    is dynamic (its shape is then given with --input_layer_shape), else the static shape's
    batch (samples that do not fill a last batch are left out)."""
    dynamic = bool(spec.shape_signature) and spec.shape_signature[0] == -1
    if dynamic:
        return [values]
    size = int(spec.shape[0]) if spec.shape else 1
    size = max(size, 1)
    return [values[i : i + size] for i in range(0, len(values) - size + 1, size)]


def decode_outputs(
    data: bytes, outputs: tuple[TensorSpec, ...], n: int, index: int = 0
) -> np.ndarray:
    """Output `index` of an --output_filepath file (outputs' raw bytes, in the model's
    order) as float32 rows, one per sample, dequantised."""
    sizes = []
    for spec in outputs:
        per = int(np.prod([d for d in spec.shape[1:]], dtype=np.int64)) if spec.shape else 1
        sizes.append(n * per * np.dtype(spec.dtype).itemsize)
    if sum(sizes) != len(data):
        raise EvalError(f"output file has {len(data)} bytes, the model's outputs take {sum(sizes)}")
    spec, start = outputs[index], sum(sizes[:index])
    raw = data[start : start + sizes[index]]
    arr = np.frombuffer(raw, dtype=np.dtype(spec.dtype)).reshape(n, -1)
    if arr.dtype.kind in "iu" and spec.scale:
        return ((arr.astype(np.float32) - (spec.zero_point or 0)) * spec.scale).astype(np.float32)
    return arr.astype(np.float32)
