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
_LEVEL = re.compile(r"^(?:INFO|WARNING|ERROR|VERBOSE|DEBUG):\s?")

_STATS = re.compile(rf"count=(\d+)((?:\s+\w+=(?:{_NUM}|inf|nan))*)")
_KV = re.compile(rf"(\w+)=({_NUM}|inf|nan)")
_TIMINGS = re.compile(r"(Average inference timings|Inference timings) in us:\s*(.*)")
_PAIR = re.compile(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUM})")
_MEMORY = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\):"
    rf"\s*init=({_NUM})\s+overall=({_NUM})"
)
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
    memory_mb: dict = field(default_factory=dict)  # {"peak"|"delta": {"init", "overall"}}
    delegation: Delegation = field(default_factory=Delegation)
    op_profile: dict = field(default_factory=dict)  # phase -> table name -> rows

    @property
    def peak_memory_kb(self) -> int | None:
        peak = self.memory_mb.get("peak", {}).get("overall")
        return int(round(peak * 1024)) if isinstance(peak, float) and peak > 0 else None


def strip_prefix(line: str) -> str:
    """The message of one log line: logcat columns and INFO:/ERROR: levels removed."""
    line = line.rstrip("\r\n")
    for pattern in _PREFIXES:
        m = pattern.match(line)
        if m:
            line = line[m.end() :]
            break
    return _LEVEL.sub("", line.strip(), count=1)


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
    stats: list[tuple[int, RunStats]] = []  # (index of the preceding "Running" line, stats)
    running = -1
    timings: dict[str, float] = {}
    memory: dict = {}
    fatal: str | None = None
    for i, line in enumerate(lines):
        if _RUNNING.search(line):
            running = i
        elif (m := _STATS.search(line)) and "=" in m.group(2):
            stats.append((running, _run_stats(m)))
        elif m := _TIMINGS.search(line):
            timings = _timings(m.group(2), old=m.group(1).startswith("Average"))
        elif m := _MEMORY.search(line):
            kind = "peak" if m.group(1).startswith("Peak") else "delta"
            memory[kind] = {"init": float(m.group(2)), "overall": float(m.group(3))}
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
    )
    if delegation.status == "failed":
        return BenchmarkOutput(False, f"{delegation.message}: {tail(text)}", **base)
    # Without the summary line, only a second stats line (after the warm-up's) is steady.
    if inference is None or ("inference" not in timings and len(stats) < 2):
        why = f"{fatal}: " if fatal else "no inference timings in the output: "
        return BenchmarkOutput(False, why + tail(text), **base)
    return BenchmarkOutput(True, None, **base)


def _run_stats(m: re.Match) -> RunStats:
    values = {k: float(v) for k, v in _KV.findall(m.group(2))}
    known = {f for f in RunStats.__dataclass_fields__ if f != "count"}
    return RunStats(int(m.group(1)), **{k: v for k, v in values.items() if k in known})


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
    text = line.strip()
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


def _cell(value: str):
    v = value.strip().rstrip("%")
    try:
        return float(v)
    except ValueError:
        return value.strip()
