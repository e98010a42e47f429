"""Round-level intervals and the four latency verdicts: pure functions on log round centres.

Every figure here takes one value per round (log of the round's median; see
harness.measure.rounds), never the pooled samples: the round is the unit of
replication (Kalibera & Jones, "Rigorous benchmarking in reasonable time", 2013).

The procedure is a 20 %-trimmed t interval on the logs (Yuen's, for two runs;
Tukey-McLaughlin's, for one series or for per-round differences).

- On logs, because latency moves by ratios: exp(interval) - 1 is a relative change.
- A t interval, because a run has 3-30 rounds: a bootstrap over so few rounds covers
  far less than its nominal level (resamples of 3 rounds hold at most 3 distinct
  values), while the t quantile widens the interval as it should.
- Trimmed, because rounds on a shared host are heavy-tailed: one round in eight or ten
  comes out 1.3-2x slow for every cell at once (the other core was busy). A plain mean
  follows such a round; the trimmed mean drops the extreme 20 % on each side and the
  winsorised variance still counts them as spread. With 3-4 rounds nothing is trimmed
  and the interval is Welch's / Student's. `benchmarks/real_verdicts.py` prints the
  false alarms and detections of this rule beside untrimmed Welch and the old
  pooled-sample rule, on the same real runs.

scipy.stats computes Yuen's two-sample test and its interval (`ttest_ind(trim=)`); it
has no trimmed one-sample interval, which `trimmed_interval` adds in a few lines.

Verdicts (threshold t, interval [lo, hi] at 1 - alpha, estimate e):
    slower        lo > 0 and e > t      the change is real and beyond the threshold
    faster        hi < 0 and e < -t
    same          -t <= lo and hi <= t  equivalence shown (TOST at the interval's level)
    inconclusive  anything else; the note says the noise and the rounds that would do
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

TRIM = 0.2
MAX_ROUNDS_ADVICE = 1000


@dataclass(frozen=True)
class ShiftInterval:
    """A relative change (+0.1 = 10 % slower) with its round-level interval.

    `noise` is the between-round spread as a coefficient of variation (the winsorised
    standard deviation of the log centres, both sides pooled)."""

    method: str  # "yuen" (two series), "paired" (per-round differences), "one-sample"
    estimate: float
    ci_low: float
    ci_high: float
    level: float
    df: float
    rounds_baseline: int
    rounds_candidate: int
    noise: float
    p_value: float | None = None
    run_noise: float = 0.0  # relative SD of a whole run's level, added to two-run intervals

    @property
    def half_width(self) -> float:
        """Relative half-width of the interval (its larger side)."""
        return max(self.estimate - self.ci_low, self.ci_high - self.estimate)

    @property
    def informative(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    def to_dict(self) -> dict:
        return asdict(self)


def _rel(v: float) -> float:
    return math.expm1(v) if math.isfinite(v) else v


def winsorized_std(x: np.ndarray, trim: float = TRIM) -> float:
    """Standard deviation (ddof 1) after setting the g = floor(trim*n) extreme values on
    each side to their nearest kept neighbour."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    if n < 2:
        return math.nan
    g = int(trim * n)
    if g:
        x[:g], x[n - g :] = x[g], x[n - g - 1]
    return float(x.std(ddof=1))


def trimmed_interval(logs, alpha: float, trim: float = TRIM) -> tuple[float, float, float, float]:
    """(trimmed mean, low, high, df) of one series of logs at level 1 - alpha
    (Tukey-McLaughlin: winsorised variance, h - 1 degrees of freedom, h values kept)."""
    x = np.sort(np.asarray(logs, dtype=np.float64))
    n = len(x)
    if n == 0:
        return math.nan, -math.inf, math.inf, 0.0
    g = int(trim * n)
    h = n - 2 * g
    center = float(x[g : n - g].mean())
    if h < 2:
        return center, -math.inf, math.inf, 0.0
    se = math.sqrt((n - 1) * winsorized_std(x, trim) ** 2 / (h * (h - 1)))
    half = float(stats.t.ppf(1 - alpha / 2, h - 1)) * se
    return center, center - half, center + half, float(h - 1)


def one_sample(logs, alpha: float, trim: float = TRIM) -> ShiftInterval:
    """The interval of one cell's typical round centre, relative to that centre: what
    `--precision` targets and `harness report` prints as the achieved precision."""
    center, lo, hi, df = trimmed_interval(logs, alpha, trim)
    n = len(logs)
    return ShiftInterval(
        "one-sample", 0.0, _rel(lo - center), _rel(hi - center), 1 - alpha, df, n, n,
        winsorized_std(logs, trim),
    )  # fmt: skip


def expected_precision(logs, n: int, alpha: float, trim: float = TRIM) -> float:
    """The relative half-width one_sample would give with n rounds at the spread these
    logs show: what one more round is expected to reach (the --precision stopping rule
    decides before a round runs, so that the round taken last can be the eval round)."""
    g = int(trim * n)
    h = n - 2 * g
    s = winsorized_std(logs, trim)
    if h < 2 or not math.isfinite(s):
        return math.inf
    half = float(stats.t.ppf(1 - alpha / 2, h - 1)) * s * math.sqrt((n - 1) / (h * (h - 1)))
    return math.expm1(half)


def paired_shift(a_logs, b_logs, alpha: float, trim: float = TRIM) -> ShiftInterval:
    """B against A measured in the same rounds: the interval of the per-round log ratio.

    Round r of A and round r of B ran in the same runner process at the same moment, so
    what the round shares (a busy core, the clock, the heat) cancels in the ratio."""
    n = min(len(a_logs), len(b_logs))
    d = np.asarray(b_logs[:n], np.float64) - np.asarray(a_logs[:n], np.float64)
    center, lo, hi, df = trimmed_interval(d, alpha, trim)
    p = None
    if df > 0 and hi > lo:
        se = (hi - lo) / 2 / float(stats.t.ppf(1 - alpha / 2, df))
        p = float(2 * stats.t.sf(abs(center) / se, df)) if se > 0 else float(center == 0)
    return ShiftInterval(
        "paired", _rel(center), _rel(lo), _rel(hi), 1 - alpha, df, n, n,
        winsorized_std(d, trim), p,
    )  # fmt: skip


def two_run_shift(
    base_logs, cand_logs, alpha: float, trim: float = TRIM, run_noise: float = 0.0
) -> ShiftInterval:
    """Candidate against baseline, two separate runs: Yuen's trimmed Welch interval of
    the difference of log round centres (scipy.stats.ttest_ind with trim), widened by
    the run-to-run noise.

    Rounds spread over one run, but a whole run still sits at its own level (the host at
    that hour): on this host two quiet runs' typical rounds differ by 2-3 % SD even
    when each run's own interval is ±1 %. That component is invisible inside two runs,
    so it comes from outside: `run_noise` (relative SD of a run's level: the cell's
    history in a lab, else `harness compare --run-noise`). It adds 2 * run_noise^2 to
    the variance of the difference, with Welch-Satterthwaite degrees of freedom (the
    run-noise figure counted as known)."""
    x = np.asarray(base_logs, dtype=np.float64)
    y = np.asarray(cand_logs, dtype=np.float64)
    nx, ny = len(x), len(y)
    noise = _pooled_noise(x, y, trim)
    level = 1 - alpha
    est = _trimmed_mean(y, trim) - _trimmed_mean(x, trim) if nx and ny else math.nan
    if nx < 2 or ny < 2:
        return ShiftInterval("yuen", _rel(est), -math.inf, math.inf, level, 0.0, nx, ny, noise,
                             run_noise=run_noise)  # fmt: skip
    se, df = 0.0, math.inf
    if winsorized_std(x, trim) > 0 or winsorized_std(y, trim) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nearly-equal rounds: valid
            res = stats.ttest_ind(y, x, equal_var=False, trim=trim)
            ci = res.confidence_interval(level)
        df = float(res.df)
        se = (float(ci.high) - float(ci.low)) / 2 / float(stats.t.ppf(1 - alpha / 2, df))
    extra = 2 * math.log1p(run_noise) ** 2
    total = math.sqrt(se * se + extra)
    if total == 0:  # no spread anywhere: the difference is exact
        return ShiftInterval("yuen", _rel(est), _rel(est), _rel(est), level, df, nx, ny, 0.0,
                             float(est == 0), run_noise)  # fmt: skip
    df_eff = total**4 / (se**4 / df) if se > 0 and math.isfinite(df) else math.inf
    q = float(stats.t.ppf(1 - alpha / 2, df_eff)) if math.isfinite(df_eff) else _z(alpha)
    p = float(2 * (stats.t.sf(abs(est) / total, df_eff) if math.isfinite(df_eff)
                   else stats.norm.sf(abs(est) / total)))  # fmt: skip
    return ShiftInterval(
        "yuen", _rel(est), _rel(est - q * total), _rel(est + q * total), level, df_eff, nx, ny,
        noise, p, run_noise,
    )  # fmt: skip


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def _trimmed_mean(x: np.ndarray, trim: float) -> float:
    return float(stats.trim_mean(x, trim)) if len(x) else math.nan


def _pooled_noise(x: np.ndarray, y: np.ndarray, trim: float) -> float:
    sds = [winsorized_std(v, trim) for v in (x, y) if len(v) > 1]
    return math.sqrt(sum(s * s for s in sds) / len(sds)) if sds else math.nan


def latency_verdict(iv: ShiftInterval, threshold: float) -> str:
    """slower / faster / same / inconclusive (see the module docstring)."""
    if not iv.informative:
        return "inconclusive"
    if iv.ci_low > 0 and iv.estimate > threshold:
        return "slower"
    if iv.ci_high < 0 and iv.estimate < -threshold:
        return "faster"
    if iv.ci_low >= -threshold and iv.ci_high <= threshold:
        return "same"
    return "inconclusive"


def rounds_to_resolve(iv: ShiftInterval, threshold: float, trim: float = TRIM) -> int | None:
    """About how many rounds per run would turn this inconclusive interval into a
    verdict, at the noise it showed: the half-width must fall below the distance from
    the estimate to the nearest decision edge (0 beyond the threshold, the threshold
    inside it; at least a quarter of the threshold). None: not within 1000 rounds (the
    run-to-run noise alone may be too wide for two runs), or no noise figure."""
    if not (math.isfinite(iv.noise) and iv.noise > 0 and math.isfinite(iv.estimate)):
        return None
    e = abs(math.log1p(iv.estimate))
    t = math.log1p(threshold)
    need = max(e if e > t else t - e, t / 4)
    sides = 1 if iv.method in ("paired", "one-sample") else 2
    extra = 2 * math.log1p(iv.run_noise) ** 2 if sides == 2 else 0.0
    alpha = 1 - iv.level
    if _z(alpha) * math.sqrt(extra) >= need:
        return None
    for n in range(max(3, min(iv.rounds_baseline, iv.rounds_candidate)), MAX_ROUNDS_ADVICE + 1):
        h = n - 2 * int(trim * n)
        se2 = iv.noise**2 * sides * (n - 1) / (h * (h - 1))
        df = (h - 1) * sides * (1 + extra / se2) ** 2 if se2 > 0 else math.inf
        if float(stats.t.ppf(1 - alpha / 2, df)) * math.sqrt(se2 + extra) <= need:
            return n
    return None


def inconclusive_note(iv: ShiftInterval, threshold: float) -> str:
    """Why no verdict: the noise floor, and what would resolve it."""
    if iv.rounds_baseline < 2 or iv.rounds_candidate < 2:
        return (
            f"{min(iv.rounds_baseline, iv.rounds_candidate)} round on one side: no "
            "between-round evidence (run with --rounds 3 or more)"
        )
    what = "per-round difference" if iv.method == "paired" else "between-round"
    n = rounds_to_resolve(iv, threshold)
    if n:
        more = f"about {n} rounds per run would resolve ±{threshold:.0%}"
    elif iv.method != "paired" and iv.run_noise > 0:
        more = (
            f"two runs cannot resolve ±{threshold:.0%} at {iv.run_noise:.1%} run-to-run "
            "noise: time both in one run and compare --a/--b"
        )
    else:
        more = f"more than {MAX_ROUNDS_ADVICE} rounds would be needed to resolve ±{threshold:.0%}"
    return (
        f"{what} CV {iv.noise:.1%} over {min(iv.rounds_baseline, iv.rounds_candidate)} "
        f"rounds; interval {iv.ci_low:+.1%}..{iv.ci_high:+.1%}; {more}"
    )
