"""Do harness's verdicts hold on real noise? Real runs on this host only; prints, never asserts.

Models (built once under --work with keras, weights random, nothing downloaded, converted
through harness's cache): MobileNetV2 96 px (alpha 0.35) and 128 px (alpha 0.5), and a
plain CNN of 10 conv blocks ("base") with a twin of 11 blocks ("twin", about 10 % more
work). Every run times them on --device local, 1 thread, cpu and xnnpack, through
run_sweep (the code path of `harness run`), and every comparison goes through
harness.measure.compare as `harness compare` does.

(a) A/A: --aa runs back to back of the three models (6 cells), each compared with the
    next: quiet, and with a background CPU load (a process busy in random bursts on
    this 2-core host). At the default settings and at the settings before this change
    (3 rounds x 100 runs, warm-up 10).
(b) A/B across two runs: base then twin, --ab pairs; the true ratio of twin over base is
    measured by a bare loop that alternates the two interpreters in one process.
(c) A/B in one run: `harness run base twin copy` (copy: base's file under another
    name, an A/A pair) and the paired rule (--ab runs); the models alternate run by run.
(d) --precision 2% for (a), (b) and (c), and the wall time of each setting.

Each comparison is judged by five rules on the same data:
    old       pooled samples: Mann-Whitney p < alpha and |Hodges-Lehmann shift| > 5 %
              (the rule before this change)
    welch     round medians alone, plain Welch t interval (no trimming)
    boot2     round medians alone, two-level bootstrap (rounds, then samples in rounds)
    fixed     round medians, Yuen's 20 %-trimmed interval, widened by the default 3 %
              run-to-run noise alone (a run's own level; welch and boot2 lack it)
    harness   harness compare: as fixed, with each cell's own run-to-run noise from the
              runs stored before the candidate where it has 3 or more (never below 3 %)
Paired A/B in one run is judged by harness's paired rule only (per-round ratios).
It also prints the noise it saw: the between-round SD of log round medians, the rate
of rounds >= 1.25x a cell's median round, and the run-to-run SD of a cell's typical
round: the figures benchmarks/compare_power.py takes to simulate the same noise.

Usage: python benchmarks/real_verdicts.py [--aa 18] [--ab 15] [--max-time 60]
           [--parts paired,paired-precision,aa,ab] [--rounds R --runs N --warmup W]
           [--work build/real-verdicts] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from compare_power import old_rule  # the rule before this change, shared

from harness.cells import CellRecord
from harness.devices.local import LocalDevice
from harness.measure.compare import CompareConfig, compare_cell, compare_models
from harness.measure.intervals import (
    ShiftInterval,
    latency_verdict,
    two_run_shift,
    winsorized_std,
)
from harness.measure.rounds import log_centers, round_summaries, split_rounds
from harness.measure.series import HISTORY_RUNS, level_noise
from harness.run import RunSpec, run_sweep
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store

CFG = CompareConfig()
RULES = ("old", "welch", "boot2", "fixed", "harness")
OLD_DEFAULT = TimingConfig(runs=100, rounds=3, warmup=10)
NEW_DEFAULT = TimingConfig()
PRECISION = TimingConfig(precision=0.02, max_time_s=60)
DELEGATES = ("cpu", "xnnpack")


# ----------------------------------------------------------------------------- models


def build_models(work: Path) -> dict[str, Path]:
    """name -> convert directory. base and twin are both saved as cnn.keras, so their
    cells share a name and match across two runs (in one run harness names them by
    directory: base, twin)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from harness.convert.pipeline import ConvertSpec, convert_model

    recipes = {
        "mnv2_96": ("mnv2_96", lambda k: _mobilenet(k, 96, 0.35)),
        "mnv2_128": ("mnv2_128", lambda k: _mobilenet(k, 128, 0.5)),
        "base": ("cnn", lambda k: _cnn(k, 10)),
        "twin": ("cnn", lambda k: _cnn(k, 11)),
    }
    out = {}
    for name, (stem, build) in recipes.items():
        src = work / "src" / name / f"{stem}.keras"
        if not src.is_file():
            import keras

            keras.utils.set_random_seed(0)
            src.parent.mkdir(parents=True, exist_ok=True)
            build(keras).save(src)
        spec = ConvertSpec(src, work / "variants" / name, ("fp32",))
        out[name] = convert_model(spec).manifest_path.parent
    return out


def _mobilenet(keras, size: int, alpha: float):
    return keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, weights=None, classes=10
    )


def _cnn(keras, blocks: int):
    x = inp = keras.Input((32, 32, 3))
    for _ in range(blocks + 1):
        x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10)(x))


def true_ratio(a: Path, b: Path, delegate: str, blocks: int = 60, per_block: int = 20) -> float:
    """median(b) / median(a) from one process alternating the two interpreters in blocks,
    so drift hits both alike: the ratio the verdicts should find."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def load(p: Path):
        kw = {}
        if delegate == "cpu":
            kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        it = Interpreter(model_path=str(p), num_threads=1, **kw)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
        for _ in range(10):
            it.invoke()
        return it

    ia, ib = load(a), load(b)
    ratios = []
    for _ in range(blocks):
        meds = []
        for it in (ia, ib):
            ts = []
            for _ in range(per_block):
                t0 = time.perf_counter_ns()
                it.invoke()
                ts.append(time.perf_counter_ns() - t0)
            meds.append(statistics.median(ts))
        ratios.append(meds[1] / meds[0])
    return statistics.median(ratios)


# ----------------------------------------------------------------------------- runs


class Load:
    """A background process busy in random bursts (0-200 ms on, 0-200 ms off)."""

    CODE = (
        "import random,time\n"
        "while True:\n"
        "    end=time.perf_counter()+random.uniform(0,0.2)\n"
        "    while time.perf_counter()<end: pass\n"
        "    time.sleep(random.uniform(0,0.2))\n"
    )

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE])
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def sweep(store: Store, models: list[Path], timing: TimingConfig) -> tuple[str, float]:
    spec = RunSpec(
        models[0], "local", delegates=DELEGATES, timing=timing, more_models=tuple(models[1:])
    )
    t0 = time.perf_counter()
    run_id = run_sweep(spec, store, LocalDevice())
    return run_id, time.perf_counter() - t0


# ----------------------------------------------------------------------------- rules


def boot2_interval(b: CellRecord, c: CellRecord, rng, resamples: int = 1000) -> ShiftInterval:
    def dist(r: CellRecord) -> np.ndarray:
        parts = split_rounds(r.samples["invoke_us"], r.extra.get("round_sizes"))
        k = len(parts)
        out = np.empty(resamples)
        for i in range(resamples):
            pick = rng.integers(0, k, k)
            meds = [np.median(rng.choice(parts[j], len(parts[j]))) for j in pick]
            out[i] = np.mean(np.log(meds))
        return out

    d = dist(c) - dist(b)
    lo, hi = np.percentile(d, [100 * CFG.alpha / 2, 100 * (1 - CFG.alpha / 2)])
    est = float(np.median(d))
    k = len(round_summaries(b))
    return ShiftInterval(
        "boot2", math.expm1(est), math.expm1(lo), math.expm1(hi), 1 - CFG.alpha, 0, k, k, 0
    )


def judge(b: CellRecord, c: CellRecord, rng, history: dict | None = None) -> dict[str, str]:
    """Verdict of every rule on one pair of cells (two runs). `history`: each cell's
    run-to-run noise from the runs stored before the candidate, as `harness compare`
    reads it (never below the default)."""
    lb, lc = log_centers(round_summaries(b)), log_centers(round_summaries(c))
    thr = CFG.latency_threshold
    own = max(CFG.run_noise, (history or {}).get(c.cell, 0.0))
    return {
        "old": old_rule(b, c),
        "welch": latency_verdict(two_run_shift(lb, lc, CFG.alpha, trim=0.0), thr),
        "boot2": latency_verdict(boot2_interval(b, c, rng), thr),
        "fixed": compare_cell(b, c, CFG).verdict,
        "harness": compare_cell(b, c, replace(CFG, run_noise=own)).verdict,
    }


def history_before(store: Store, run_id: str) -> dict:
    """What `harness compare` would read right after `run_id` was stored: the newest
    HISTORY_RUNS runs before it (run_id, the candidate, excluded)."""
    runs = sorted(store.list_runs(100_000), key=lambda r: (r.created_at, r.run_id))
    ids = [r.run_id for r in runs]
    earlier = runs[: ids.index(run_id)][-HISTORY_RUNS:]
    return level_noise(store.cells(r.run_id) for r in earlier)


def consecutive(store: Store, runs: list[str], rng) -> list[dict[str, str]]:
    out = []
    for r1, r2 in zip(runs, runs[1:], strict=False):
        a = {r.cell: r for r in store.cells(r1) if r.status == "ok"}
        history = history_before(store, r2)
        for r in store.cells(r2):
            if r.cell in a and r.status == "ok":
                out.append(judge(a[r.cell], r, rng, history))
    return out


def print_table(title: str, verdicts: list[dict[str, str]], want: str, walls: list[float]):
    n = len(verdicts)
    print(f"\n{title}: {n} cell comparisons, wall per run median {statistics.median(walls):.1f} s")
    print(f"  {'rule':8} {'slower':>7} {'faster':>7} {'same':>7} {'inconcl':>8}   {want}")
    for rule in RULES:
        got = Counter(v[rule] for v in verdicts)
        share = {k: got[k] / n for k in ("slower", "faster", "same", "inconclusive")}
        key = (
            f"false alarms {share['slower'] + share['faster']:.1%}"
            if want == "A/A"
            else f"called slower {share['slower']:.1%}, same or faster "
            f"{share['same'] + share['faster']:.1%}"
        )
        print(
            f"  {rule:8} {share['slower']:7.1%} {share['faster']:7.1%} {share['same']:7.1%} "
            f"{share['inconclusive']:8.1%}   {key}"
        )


def noise_figures(store: Store, runs: list[str]) -> tuple[float, float, float]:
    """(median winsorised SD of log round medians, share of rounds >= 1.25x the cell's
    median round, median run-to-run SD of a cell's typical round: MAD of successive
    differences / sqrt 2, as harness.measure.steps.noise_level) over these runs."""
    from scipy import stats

    from harness.measure.steps import noise_level

    sds, spikes, total, centres = [], 0, 0, {}
    for run in runs:
        for r in store.cells(run):
            logs = log_centers(round_summaries(r))
            if len(logs) < 3:
                continue
            sds.append(winsorized_std(logs))
            spikes += int(np.sum(logs - np.median(logs) >= math.log(1.25)))
            total += len(logs)
            centres.setdefault(r.cell, []).append(float(stats.trim_mean(logs, 0.2)))
    run_sd = [noise_level(np.asarray(v)) for v in centres.values() if len(v) >= 3]
    return statistics.median(sds), spikes / max(total, 1), statistics.median(run_sd or [math.nan])


# ----------------------------------------------------------------------------- parts


def part_aa(store, models, n_runs, timing, label, rng, load=False):
    runs, walls = [], []
    with Load() if load else _nothing():
        for _ in range(n_runs):
            run_id, wall = sweep(store, models, timing)
            runs.append(run_id)
            walls.append(wall)
    verdicts = consecutive(store, runs, rng)
    print_table(f"(a) A/A, {label}", verdicts, "A/A", walls)
    sd, spike, run_sd = noise_figures(store, runs)
    print(f"  noise: between-round SD of log round medians {sd:.3f} (median over cells), "
          f"rounds >= 1.25x their cell's median {spike:.1%}, "
          f"run-to-run SD {run_sd:.3f}")  # fmt: skip
    return walls


def part_ab(store, base, twin, pairs, timing, label, rng, ratios):
    verdicts, walls = [], []
    for _ in range(pairs):
        rb, wb = sweep(store, [base], timing)
        rc, wc = sweep(store, [twin], timing)
        walls += [wb, wc]
        a = {r.cell: r for r in store.cells(rb)}
        history = history_before(store, rc)
        verdicts += [judge(a[r.cell], r, rng, history) for r in store.cells(rc) if r.cell in a]
    ratio = ", ".join(f"{d} {v:.3f}" for d, v in ratios.items())
    print_table(f"(b) A/B across two runs (true ratio {ratio}), {label}", verdicts, "A/B", walls)


def part_paired(store, base, twin, runs, timing, label):
    counts: dict[str, Counter] = {"A/B": Counter(), "A/A": Counter()}
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        # an A/A twin for the paired rule: base's files under another directory name
        import shutil

        copy = Path(tmp) / "copy"
        shutil.copytree(base, copy)
        for _ in range(runs):
            run_id, wall = sweep(store, [base, twin, copy], timing)
            walls.append(wall)
            records = store.cells(run_id)
            # base and twin share their source's name (cnn): each is named by its directory
            for kind, other in (("A/B", "twin"), ("A/A", "copy")):
                for cc in compare_models(records, "base", other, CFG, run_id).cells:
                    counts[kind][cc.verdict] += 1
    for kind, got in counts.items():
        n = sum(got.values())
        shares = ", ".join(f"{k} {v / n:.1%}" for k, v in got.most_common())
        print(f"\n(c) paired in one run, {kind}, {label}: {n} comparisons: {shares}; "
              f"wall per run (3 models) median {statistics.median(walls):.1f} s")  # fmt: skip


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aa", type=int, default=18, help="A/A runs per condition")
    ap.add_argument("--ab", type=int, default=15, help="A/B pairs (and paired runs)")
    ap.add_argument("--work", type=Path, default=Path("build/real-verdicts"))
    ap.add_argument("--quick", action="store_true", help="a few runs of each, to try it")
    ap.add_argument(
        "--parts",
        default="paired,paired-precision,aa,ab",
        help="which parts to run: paired, paired-precision, aa, ab",
    )
    ap.add_argument("--max-time", type=float, default=60.0, help="--precision budget a run")
    ap.add_argument("--rounds", type=int, help="try other settings than the defaults")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--warmup", type=int)
    args = ap.parse_args()
    # a kill must not leave the background load behind to skew the next measurements
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parts = set(args.parts.split(","))
    global PRECISION, NEW_DEFAULT
    PRECISION = TimingConfig(precision=0.02, max_time_s=args.max_time)
    tried = {k: getattr(args, k) for k in ("rounds", "runs", "warmup") if getattr(args, k)}
    NEW_DEFAULT = replace(NEW_DEFAULT, **tried)
    if args.quick:
        args.aa, args.ab = 3, 2
    rng = np.random.default_rng(0)
    models = build_models(args.work)
    store = Store(f"sqlite:///{Path(tempfile.mkdtemp(prefix='real-verdicts-')) / 'r.db'}")
    print(f"host: {os.cpu_count()} cores; alpha {CFG.alpha}, threshold 5 %; 1 thread")
    print(f"default {NEW_DEFAULT.rounds} rounds x {NEW_DEFAULT.runs} runs, warm-up "
          f"{NEW_DEFAULT.warmup}; before: {OLD_DEFAULT.rounds} x {OLD_DEFAULT.runs}, warm-up "
          f"{OLD_DEFAULT.warmup}; precision: 2 %, max {args.max_time:g} s a run")  # fmt: skip
    base, twin = models["base"], models["twin"]
    if "paired" in parts:
        part_paired(store, base, twin, args.ab, NEW_DEFAULT, "default settings")
    if "paired-precision" in parts:
        part_paired(store, base, twin, max(2, args.ab // 2), PRECISION, "--precision 2%")
    aa_models = [models["mnv2_96"], models["mnv2_128"], models["base"]]
    if "aa" in parts:
        aa(store, aa_models, args, rng)
    if "ab" in parts:
        base_file, twin_file = base / "fp32.tflite", twin / "fp32.tflite"
        ratios = {d: true_ratio(base_file, twin_file, d) for d in DELEGATES}
        part_ab(store, base, twin, args.ab, NEW_DEFAULT, "default settings", rng, ratios)
        part_ab(store, base, twin, args.ab, PRECISION, "--precision 2%", rng, ratios)


def aa(store, aa_models, args, rng) -> None:
    old = part_aa(store, aa_models, args.aa, OLD_DEFAULT, "settings before (3 x 100), quiet", rng)
    new = part_aa(store, aa_models, args.aa, NEW_DEFAULT, "default settings, quiet", rng)
    part_aa(store, aa_models, args.aa, NEW_DEFAULT, "default settings, background load", rng, True)
    prec = part_aa(store, aa_models, max(3, args.aa // 2), PRECISION, "--precision 2%, quiet", rng)
    before, now, fine = (statistics.median(w) for w in (old, new, prec))
    print(f"\n(d) wall per A/A run (6 cells): before {before:.1f} s, default {now:.1f} s "
          f"({now / before:.2f}x), --precision 2% {fine:.1f} s ({fine / before:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
