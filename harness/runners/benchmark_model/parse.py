"""benchmark_model output -> figures: tolerant of every version and log format seen.

Handles plain stderr, lines prefixed by `INFO:`/`ERROR:`, and logcat in its threadtime,
brief and Android Studio forms; numbers in exponent form (`1.49712e+06`); the old
`Average inference timings in us: Warmup: …, Init: …, no stats: …` line; both memory
lines; op-profiling tables; and the delegation messages of the GPU and NNAPI delegates.
`parse_output` never raises: output it cannot read is a failed parse whose reason
is the tail of the output.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

TAIL_CHARS = 400
MAX_TABLE_ROWS = 200
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

_PREFIXES = (
    # threadtime: "05-30 15:16:44.857  3380  3380 I tflite  : "
    re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*:\s?"),
    # Android Studio: "2023-04-04 17:24:18.428 19036-19036 tflite   pid-19036   I  "
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+-\d+\s+\S+\s+\S+\s+[VDIWEF]\s+"),
    # brief: "I/tflite: ", "I/tflite( 1234): "
    re.compile(r"^[VDIWEF]/[\w.\-]+\s*(?:\(\s*\d+\))?:\s?"),
)
# TFLITE_LOG's levels (tflite/tools/logging.h): INFO, WARN, ERROR, FATAL; older builds and
# other loggers also write WARNING/VERBOSE/DEBUG.
_LEVEL = re.compile(r"^(?:INFO|WARNING|WARN|ERROR|FATAL|VERBOSE|DEBUG):\s?")
_FATAL_LEVEL = re.compile(r"^FATAL:\s?")

# Stat<T>::OutputToStream (tensorflow/core/util/stats_calculator.h, used by
# tflite/tools/benchmark/benchmark_model.cc): "count=N first= curr= min= max= avg= std=",
# but when every value is equal only "count=1 curr=X", or "count=N curr=X(all same)" for
# N > 1; current builds append " p5= median= p95=". std is printed as the value type
# (int64 microseconds): truncated to an integer.
_STATS = re.compile(rf"count=(\d+)((?:\s+\w+=(?:{_NUM}|inf|nan)(?:\(all same\))?)*)")
_KV = re.compile(rf"(\w+)=({_NUM}|inf|nan)")
_ALL_SAME = "(all same)"
# profile_summarizer.cc's per-table totals ("Timings (microseconds): count=1 curr=2093"):
# not the benchmark's run statistics.
_PROFILE_TOTALS = re.compile(r"^(?:Timings \(microseconds\)|Memory \(bytes\)):")
_TIMINGS = re.compile(r"(Average inference timings|Inference timings) in us:\s*(.*)")
_PAIR = re.compile(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUM})")
# Both lines print MemoryUsage::mem_footprint_kb deltas (ru_maxrss on Linux,
# tflite/profiling/memory_info.cc) between the tool's start and init / the end: a change
# of max RSS, not a peak. Current builds (tflite/tools/benchmark/benchmark_model.cc) say
# "Memory footprint delta from the start of the tool"; older ones said "Peak memory
# footprint" for the same quantity.
_MEMORY = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\):"
    rf"\s*init=({_NUM})\s+overall=({_NUM})"
)
# benchmark_model.cc, only with --report_peak_memory_footprint: the MemoryUsageMonitor's
# peak (sampled every --memory_footprint_check_interval_ms): the process's peak RSS.
_PEAK_MONITORED = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})"
)
# benchmark_model.cc ParseFlags: flags the build does not define are not an error; the
# tool logs them and runs without them (a --use_gpu=true on a build without GPU runs on CPU).
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(.*)")
# gpu_delegate_provider.cc / nnapi_delegate_provider.cc: the delegate could not be
# created, and the benchmark goes on without it.
_PLATFORM_UNSUPPORTED = re.compile(r"(\w+) acceleration is unsupported on this platform\.?")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_FULL = re.compile(
    r"Explicitly applied (\w+) delegate, and the model graph will be completely executed"
)
_PARTIAL = re.compile(
    r"Explicitly applied (\w+) delegate, and the model graph will be partially executed by the "
    r"delegate w/ (\d+) delegate kernels"
)
_NONE = re.compile(
    r"Though (\w+) delegate is explicitly applied, the model graph will not be executed"
)
_KERNELS = re.compile(r"Created (\d+) GPU delegate kernels")
_UNSUPPORTED_HEAD = re.compile(r"(?:Following|Next) operations are not supported by (\w+) delegate")
_SPLIT = re.compile(
    r"(\d+) operations will run on the (\w+), and the remaining (\d+) operations will run on"
)
_SPLIT_NONE = re.compile(r"No operations will run on the (\w+), and all (\d+) operations")
_SPLIT_OLD = re.compile(
    r"First (\d+) operations will run on the (\w+), and the remaining (\d+) on the CPU"
)
_OP_REASON = re.compile(r"^([A-Z][A-Z0-9_]*):\s*(.*)$")
_FAILED_APPLY = re.compile(r"Failed to apply (?:(\w+) )?delegate")
_FALLBACK = re.compile(r"Disallowed CPU fallback detected")
_XNNPACK = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
_ZERO_DELEGATES = re.compile(r"Going to apply 0 delegates")
_ACCELERATORS = re.compile(r"NNAPI accelerators available: \[([^\]]*)\]")
_FATAL = re.compile(
    r"(Benchmarking failed|Failed to invoke|Failed to allocate|Failed to construct interpreter|"
    r"Failed to mmap model|Aborted|Segmentation fault|not found|Permission denied|"
    r"cannot execute|Exec format error)"
)
_TABLE = re.compile(r"^=+\s*([A-Za-z][A-Za-z ]*?)\s*=+$")
_PHASE_INIT = re.compile(r"Profiling Info for Benchmark Initialization")
_PHASE_RUN = re.compile(
    r"(Operator-wise Profiling Info for Regular Benchmark Runs|Regular Benchmark)"
)


@dataclass(frozen=True)
class RunStats:
    """One `count= first= curr= min= max= avg= std=` line (p5/median/p95 when printed)."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    p5: float | None = None
    median: float | None = None
    p95: float | None = None
    all_same: bool = False  # printed as "count=1 curr=X" or "curr=X(all same)"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Delegation:
    """What the tool said about delegation: full / partial / none / failed / unknown."""

    delegate: str | None = None
    status: str = "unknown"
    kernels: int | None = None
    unsupported_ops: tuple[tuple[str, str], ...] = ()
    delegated_ops: int | None = None
    cpu_ops: int | None = None
    xnnpack_applied: bool = False
    accelerators: tuple[str, ...] = ()
    message: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unsupported_ops"] = [{"op": op, "reason": r} for op, r in self.unsupported_ops]
        d["accelerators"] = list(self.accelerators)
        return d


@dataclass(frozen=True)
class BenchmarkOutput:
    """Everything read from one run of the tool. `ok` False: see `reason`."""

    ok: bool
    reason: str | None = None
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None
    steady: RunStats | None = None
    # {"peak_monitored": MB} and/or {"max_rss_delta": {"init", "overall", "printed_as"}}
    memory_mb: dict = field(default_factory=dict)
    delegation: Delegation = field(default_factory=Delegation)
    op_profile: dict = field(default_factory=dict)  # phase -> table name -> rows
    unconsumed_flags: str | None = None  # the tool's "Unconsumed cmdline flags: ..." line
    platform_unsupported: str | None = None  # "GPU acceleration is unsupported on ..."
    fatal: str | None = None  # the first "FATAL: ..." line (the tool then aborts, 134)

    @property
    def peak_memory_kb(self) -> int | None:
        """The monitored peak (current binaries, --report_peak_memory_footprint) in KiB;
        None when only a change of max RSS was printed: a delta is never called a peak."""
        peak = self.memory_mb.get("peak_monitored")
        return int(round(peak * 1024)) if isinstance(peak, float) and peak > 0 else None


def strip_prefix(line: str) -> str:
    """The message of one log line: logcat columns and INFO:/ERROR: levels removed."""
    return _LEVEL.sub("", _without_logcat(line), count=1)


def _without_logcat(line: str) -> str:
    line = line.rstrip("\r\n")
    for pattern in _PREFIXES:
        m = pattern.match(line)
        if m:
            line = line[m.end() :]
            break
    return line.strip()


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The last `limit` characters, on one line, for a failed cell's reason."""
    flat = " | ".join(s for s in (x.strip() for x in str(text).splitlines()) if s)
    return ("…" + flat[-limit:]) if len(flat) > limit else flat or "(no output)"


def parse_output(text: str) -> BenchmarkOutput:
    """Read one run's combined stdout+stderr. Never raises."""
    try:
        return _parse(str(text))
    except Exception as exc:  # a parser bug must cost one cell, never the sweep
        return BenchmarkOutput(False, f"unreadable output ({type(exc).__name__}): {tail(text)}")


def _parse(text: str) -> BenchmarkOutput:
    lines = [strip_prefix(raw) for raw in text.splitlines()]
    fatal_line = next(
        (ln for ln in map(_without_logcat, text.splitlines()) if _FATAL_LEVEL.match(ln)), None
    )
    stats: list[tuple[int, RunStats]] = []  # (index of the preceding "Running" line, stats)
    running = -1
    timings: dict[str, float] = {}
    memory: dict = {}
    fatal: str | None = fatal_line
    unconsumed = unsupported = None
    for i, line in enumerate(lines):
        if _RUNNING.search(line):
            running = i
        elif _PROFILE_TOTALS.match(line):
            continue
        elif (m := _STATS.search(line)) and "=" in m.group(2):
            stats.append((running, _run_stats(m)))
        elif m := _TIMINGS.search(line):
            timings = _timings(m.group(2), old=m.group(1).startswith("Average"))
        elif m := _MEMORY.search(line):
            memory["max_rss_delta"] = {
                "init": float(m.group(2)),
                "overall": float(m.group(3)),
                "printed_as": m.group(1),
            }
        elif m := _PEAK_MONITORED.search(line):
            memory["peak_monitored"] = float(m.group(1))
        elif unconsumed is None and (m := _UNCONSUMED.search(line)):
            unconsumed = line[m.start() :].strip()[:TAIL_CHARS]
        elif unsupported is None and (m := _PLATFORM_UNSUPPORTED.search(line)):
            unsupported = line[m.start() :].strip()
        elif fatal is None and (m := _FATAL.search(line)):
            fatal = line.strip()
    delegation = _delegation(lines)
    warmup, steady = _pick_stats(stats, timings.get("inference"))
    inference = timings.get("inference", steady.avg if steady else None)
    base = dict(
        init_us=timings.get("init"),
        first_us=timings.get("first", warmup.first if warmup else None),
        warmup_avg_us=timings.get("warmup", warmup.avg if warmup else None),
        inference_avg_us=inference,
        warmup=warmup,
        steady=steady,
        memory_mb=memory,
        delegation=delegation,
        op_profile=_op_tables(lines),
        unconsumed_flags=unconsumed,
        platform_unsupported=unsupported,
        fatal=fatal_line and fatal_line[:TAIL_CHARS],
    )
    if fatal_line:  # TFLITE_LOG(FATAL) aborts the tool: whatever came before is void
        return BenchmarkOutput(False, f"{fatal_line[:TAIL_CHARS]}", **base)
    if delegation.status == "failed":
        return BenchmarkOutput(False, f"{delegation.message}: {tail(text)}", **base)
    # Without the summary line, only a second stats line (after the warm-up's) is steady.
    if inference is None or ("inference" not in timings and len(stats) < 2):
        why = f"{fatal}: " if fatal else "no inference timings in the output: "
        return BenchmarkOutput(False, why + tail(text), **base)
    return BenchmarkOutput(True, None, **base)


def _run_stats(m: re.Match) -> RunStats:
    values = {k: float(v) for k, v in _KV.findall(m.group(2))}
    known = {f for f in RunStats.__dataclass_fields__ if f not in ("count", "all_same")}
    values = {k: v for k, v in values.items() if k in known}
    count = int(m.group(1))
    same = "avg" not in values and "curr" in values and (count == 1 or _ALL_SAME in m.group(2))
    if same:  # stats_calculator.h prints no first/min/max/avg/std when all values are equal
        curr = values["curr"]
        values = {"first": curr, "min": curr, "max": curr, "avg": curr, "std": 0.0} | values
    return RunStats(count, all_same=same, **values)


def _timings(rest: str, old: bool) -> dict[str, float]:
    names = {
        "init": "init",
        "first inference": "first",
        "warmup (avg)": "warmup",
        "warmup": "warmup",
        "inference (avg)": "inference",
        "no stats": "inference",  # the old format's steady-state average
    }
    out = {}
    for key, value in _PAIR.findall(rest):
        name = names.get(key.strip().lower())
        if name:
            out[name] = float(value)
    return out


def _pick_stats(
    stats: list[tuple[int, RunStats]], inference: float | None
) -> tuple[RunStats | None, RunStats | None]:
    """(warm-up, steady state): the steady one is the last whose avg matches the summary."""
    if not stats:
        return None, None
    runs = [s for _, s in stats]
    steady = runs[-1]
    if inference is not None:
        match = [s for s in runs if s.avg is not None and _close(s.avg, inference)]
        steady = match[-1] if match else steady
    idx = max(i for i, s in enumerate(runs) if s is steady)
    warmup = runs[idx - 1] if idx > 0 else None
    return warmup, steady


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1.0) + 0.5


def _delegation(lines: list[str]) -> Delegation:
    d: dict = {"unsupported_ops": []}
    in_list = False
    for line in lines:
        if in_list:
            if m := _OP_REASON.match(line.strip()):
                d["unsupported_ops"].append((m.group(1), m.group(2).strip()))
                continue
            in_list = False
        if m := _FAILED_APPLY.search(line):
            d.update(status="failed", message=line[m.start() :].strip()[:200])
            if m.group(1):
                d["delegate"] = m.group(1).lower()
        if m := _UNSUPPORTED_HEAD.search(line):
            d.setdefault("delegate", m.group(1).lower())
            in_list = True
        elif m := (_SPLIT.search(line) or _SPLIT_OLD.search(line)):
            d["delegated_ops"], d["cpu_ops"] = int(m.group(1)), int(m.group(3))
            if d.get("status") != "failed":
                d["status"] = "partial" if int(m.group(1)) else "none"
        elif m := _SPLIT_NONE.search(line):
            d["delegated_ops"], d["cpu_ops"] = 0, int(m.group(2))
        elif m := _PARTIAL.search(line):
            d.update(delegate=m.group(1).lower(), status="partial", kernels=int(m.group(2)))
        elif m := _FULL.search(line):
            d.update(delegate=m.group(1).lower(), status="full")
        elif m := _NONE.search(line):
            d.update(delegate=m.group(1).lower(), status="none")
        elif m := _KERNELS.search(line):
            d["kernels"] = int(m.group(1))
        elif _FALLBACK.search(line):
            d.update(status="failed", message="Disallowed CPU fallback detected")
        elif _XNNPACK.search(line):
            d["xnnpack_applied"] = True
        elif _ZERO_DELEGATES.search(line):
            d.setdefault("status", "none")
        elif m := _ACCELERATORS.search(line):
            d["accelerators"] = tuple(a.strip() for a in m.group(1).split(",") if a.strip())
    if d.get("status") == "failed":
        pass  # a failure outranks whatever was said before it
    elif d["unsupported_ops"] and d.get("status") in (None, "full"):
        d["status"] = "partial" if d.get("delegated_ops") != 0 else "none"
    d["unsupported_ops"] = tuple(d["unsupported_ops"])
    return Delegation(**d)


def _op_tables(lines: list[str]) -> dict:
    """Op-profiling tables: phase ("init"/"run") -> table name -> list of row dicts."""
    out: dict[str, dict[str, list[dict]]] = {}
    phase, name, columns = "run", None, None
    for line in lines:
        if _PHASE_INIT.search(line):
            phase, name = "init", None
            continue
        if _PHASE_RUN.search(line):
            phase, name = "run", None
            continue
        if m := _TABLE.match(line.strip()):
            name, columns = m.group(1).strip(), None
            out.setdefault(phase, {})[name] = []
            continue
        if name is None or not line.strip():
            continue
        if columns is None:
            cols = re.findall(r"\[([^\]]+)\]", line)
            if cols:
                columns = [c.strip() for c in cols]
            else:
                name = None
            continue
        row = _table_row(line, columns)
        if row is None:
            name = None
        elif len(out[phase][name]) < MAX_TABLE_ROWS:
            out[phase][name].append(row)
    return {
        p: {n: rows for n, rows in t.items() if rows} for p, t in out.items() if any(t.values())
    }


def _table_row(line: str, columns: list[str]) -> dict | None:
    """One row of a profiling table, or None where the table ends.

    profile_summarizer.cc / stats_calculator.cc write every column tab-separated: node
    types hold spaces (XNNPACK's "Convolution (NHWC, F32) IGEMM") and names hold brackets
    and colons ("[out]:12", "Delegate/XNNPACK:0"), so a row is split on tabs. Rows pasted
    into issue trackers lost their tabs: those are split on whitespace, the old bracketed
    "[name]" last."""
    text = line.strip()
    if "\t" in text:
        cells = [c.strip() for c in text.split("\t")]
        if not cells or len(cells) > len(columns):
            return None
        row = {col: _cell(value) for col, value in zip(columns, cells, strict=False)}
        if len(cells) == len(columns) and columns[-1].lower() == "name":
            row[columns[-1]] = _unbracket(cells[-1])  # a name stays text, even "12"
        return row
    name = None
    if columns[-1].lower() == "name" and (m := re.search(r"\[(.*)\]\s*$", text)):
        name, text = m.group(1), text[: m.start()]
    cells = text.split()
    want = columns[:-1] if name is not None else columns
    if not cells or len(cells) > len(want):
        return None
    row = {col: _cell(value) for col, value in zip(want, cells, strict=False)}
    if name is not None:
        row[columns[-1]] = name
    return row


def _unbracket(name: str) -> str:
    """Older builds printed the name as "[name]"; current ones print it bare."""
    if name.startswith("[") and name.endswith("]") and name.count("[") == 1:
        return name[1:-1]
    return name


def _cell(value: str):
    v = value.strip().rstrip("%")
    try:
        return float(v)
    except ValueError:
        return value.strip()


# -- the start check: what --help says ------------------------------------------------

TFLITE_BENCHMARK = "tflite_benchmark_model"
LITERT_COMPILED_MODEL = "litert_compiled_model"
UNKNOWN_TOOL = "unknown"
# Flags::Usage (tflite/tools/command_line_flags.cc) lists each flag as "\t--name=default\t
# type\toptional\thelp"; benchmark_model.cc logs it at ERROR (stderr) on --help and
# returns an error: the usage on stderr, then "Benchmarking failed.", exit 1.
_USAGE_FLAG = re.compile(r"^\s*--([A-Za-z0-9_]+)=")
# LiteRT's CompiledModel benchmark (litert/tools/benchmark_litert_model.h) defines these
# and prints its figures under "========== BENCHMARK RESULTS ==========" in ms.
_LITERT_FLAGS = frozenset({"use_cpu", "use_npu"})
_LITERT_RESULTS = "BENCHMARK RESULTS"


def usage_flags(usage_text: str) -> frozenset[str]:
    """Flag names a binary's --help usage lists (Flags::Usage's one line per flag)."""
    names = set()
    for raw in str(usage_text).splitlines():
        if m := _USAGE_FLAG.match(_LEVEL.sub("", _without_logcat(raw), count=1)):
            names.add(m.group(1))
    return frozenset(names)


def detect_tool_kind(usage_text: str) -> str:
    """Which benchmark binary printed this --help usage (or run output).

    "litert_compiled_model": LiteRT's CompiledModel benchmark (--use_cpu/--use_gpu/
    --use_npu, results under BENCHMARK RESULTS); "tflite_benchmark_model": TFLite's
    benchmark_model (--graph, --num_runs, --use_xnnpack...); "unknown" otherwise."""
    flags = usage_flags(usage_text)
    if flags >= _LITERT_FLAGS or _LITERT_RESULTS in str(usage_text):
        return LITERT_COMPILED_MODEL
    if {"graph", "num_runs"} <= flags:
        return TFLITE_BENCHMARK
    return UNKNOWN_TOOL
