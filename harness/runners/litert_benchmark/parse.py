"""Output of LiteRT's CompiledModel benchmark -> figures: pure functions.

The format, from litert/tools/benchmark_litert_model.h (BenchmarkLoggingListener::
OnBenchmarkEnd), every line through LITERT_LOG, which writes `INFO: [file:line] ` before
the message on stderr (litert/c/internal/litert_logging.{h,cc}; on Android also logcat):

    ========== BENCHMARK RESULTS ==========
    Signature name:       NAME                  (when the model has signatures)
    Model initialization: X ms
    Warmup (first):       X ms
    Warmup (avg):         X ms (N runs)
    Inference (avg):      X ms (N runs)
    Inference (min):      X ms
    Inference (max):      X ms
    Inference (std):      X                     (ms, printed without the unit)
    Throughput:           X MB/s
    Memory Usage:                               (when the platform reports memory)
    Init footprint:       X MB
    Overall footprint:    X MB
    Peak memory:          X MB                  (or "Peak memory usage not available.")

Every figure has two decimals of a millisecond: 10 µs resolution. The std is TFLite's
Stat::std_deviation, the population std, as benchmark_model's (so rounds pool exactly).
The block as real output shows it: mlcommons/mobile_app_open#1134 (tests/fixtures/
litert_benchmark/). Delegation comes from TFLite's own line (tflite/core/subgraph.cc)
`Replacing N out of M node(s) with delegate (NAME) node, ...`: TfLiteXNNPackDelegate is
the CPU, DispatchDelegate the NPU (litert/runtime/dispatch/dispatch_delegate.cc), any
other name the GPU. An accelerator that did not load says so
(litert/runtime/accelerators/{gpu,npu}_registry.cc: "... accelerator could not be
loaded and registered") and the model then runs on the CPU.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

RESULTS_MARK = "BENCHMARK RESULTS"
NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
FIELDS = {
    "init_ms": rf"Model initialization:\s*{NUMBER}\s*ms",
    "warmup_first_ms": rf"Warmup \(first\):\s*{NUMBER}\s*ms",
    "warmup_avg_ms": rf"Warmup \(avg\):\s*{NUMBER}\s*ms",
    "avg_ms": rf"Inference \(avg\):\s*{NUMBER}\s*ms",
    "min_ms": rf"Inference \(min\):\s*{NUMBER}\s*ms",
    "max_ms": rf"Inference \(max\):\s*{NUMBER}\s*ms",
    "std_ms": rf"Inference \(std\):\s*{NUMBER}",
    "throughput_mb_s": rf"Throughput:\s*{NUMBER}\s*MB/s",
    "init_footprint_mb": rf"Init footprint:\s*{NUMBER}\s*MB",
    "overall_footprint_mb": rf"Overall footprint:\s*{NUMBER}\s*MB",
    "peak_mb": rf"Peak memory:\s*{NUMBER}\s*MB",
}
RUNS = {
    "warmup_runs": r"Warmup \(avg\):.*\((\d+) runs\)",
    "runs": r"Inference \(avg\):.*\((\d+) runs\)",
}
SIGNATURE = re.compile(r"Signature name:\s*(\S.*?)\s*$")
REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\)")
NOT_LOADED = re.compile(r"\b(GPU|NPU) accelerator could not be loaded and registered[^\n]*")
UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(.*)")
CPU_DELEGATES = ("TfLiteXNNPackDelegate", "XNNPACK")
NPU_DELEGATES = ("DispatchDelegate",)
FAILURES = (
    "Requesting full delegation and CPU acceleration are incompatible.",
    "Failed to compile model.",
    "Failed to create litert environment.",
    "Failed to load model.",
    "Invalid gpu-precision",
    "Benchmarking failed.",
)


@dataclass(frozen=True)
class Replacement:
    """One `Replacing N out of M node(s) with delegate (NAME)` line."""

    delegate: str
    nodes: int
    total: int

    @property
    def kind(self) -> str:
        """cpu | npu | gpu: which accelerator this delegate is."""
        if any(self.delegate.startswith(d) for d in CPU_DELEGATES):
            return "cpu"
        return "npu" if self.delegate in NPU_DELEGATES else "gpu"


@dataclass(frozen=True)
class LiteRtOutput:
    """Everything read from one run. `results` None: the block was not printed."""

    results: dict[str, float] = field(default_factory=dict)
    runs: int | None = None
    warmup_runs: int | None = None
    signature: str | None = None
    replacements: tuple[Replacement, ...] = ()
    not_loaded: tuple[str, ...] = ()  # "NPU accelerator could not be loaded ..." lines
    unconsumed: str | None = None
    failure: str | None = None  # the first line saying why it stopped

    @property
    def has_results(self) -> bool:
        return "avg_ms" in self.results and self.runs is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["replacements"] = [asdict(r) for r in self.replacements]
        d["not_loaded"] = list(self.not_loaded)
        return d


def parse_output(text: str) -> LiteRtOutput:
    """Read one run's stdout+stderr. Lines before the results block are logs; the
    figures are taken only after the `BENCHMARK RESULTS` mark, so a log line that
    happens to say "Inference (avg):" elsewhere cannot become a figure."""
    head, mark, tail = text.partition(RESULTS_MARK)
    results: dict[str, float] = {}
    runs = warmup_runs = signature = None
    if mark:
        for key, pattern in FIELDS.items():
            m = re.search(pattern, tail)
            if m:
                results[key] = float(m.group(1))
        found = {k: re.search(p, tail) for k, p in RUNS.items()}
        runs = int(found["runs"].group(1)) if found["runs"] else None
        warmup_runs = int(found["warmup_runs"].group(1)) if found["warmup_runs"] else None
        for line in tail.splitlines():
            if m := SIGNATURE.search(line):
                signature = m.group(1)
                break
    replacements = tuple(
        Replacement(m.group(3), int(m.group(1)), int(m.group(2))) for m in REPLACING.finditer(text)
    )
    not_loaded = tuple(dict.fromkeys(m.group(0).strip() for m in NOT_LOADED.finditer(text)))
    unconsumed = UNCONSUMED.search(text)
    failure = next(
        (line.strip() for line in text.splitlines() if any(f in line for f in FAILURES)), None
    )
    return LiteRtOutput(
        results=results,
        runs=runs,
        warmup_runs=warmup_runs,
        signature=signature,
        replacements=replacements,
        not_loaded=not_loaded,
        unconsumed=unconsumed.group(1).strip() if unconsumed else None,
        failure=failure,
    )


def accelerator_of(delegate: str) -> str:
    """The accelerator a harness delegate asks LiteRT for."""
    return "npu" if delegate == "npu" else "gpu"


def delegation(parsed: LiteRtOutput, delegate: str) -> dict:
    """{status: full|partial|none|unknown, accelerator, nodes, total, delegates, message}
    for the accelerator `delegate` asked for. Only nodes the accelerator's own delegate
    replaced count: XNNPACK's are the CPU's."""
    want = accelerator_of(delegate)
    mine = [r for r in parsed.replacements if r.kind == want]
    total = max((r.total for r in parsed.replacements), default=None)
    nodes = sum(r.nodes for r in mine) if mine else 0
    if not parsed.replacements:
        status = "unknown"
    elif not mine:
        status = "none"
    elif total is not None and nodes >= total:
        status = "full"
    else:
        status = "partial"
    refused = [line for line in parsed.not_loaded if line.startswith(want.upper())]
    return {
        "status": "none" if refused else status,
        "accelerator": want,
        "nodes": nodes if parsed.replacements else None,
        "total": total,
        "delegates": [asdict(r) for r in parsed.replacements],
        "message": refused[0] if refused else None,
    }
