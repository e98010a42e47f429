"""Models of a lab, made ready once on the host before any device starts.

Sources that need it are converted with harness.convert.pipeline.convert_model (its
cache makes a second night free). A model that cannot be prepared (a corrupt file)
does not stop the lab: it keeps its error, and its cells become failed records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.cells import Cell
from harness.convert.pipeline import ConvertSpec, convert_model
from harness.convert.recipes import CALIBRATED, DEFAULT_VARIANTS
from harness.errors import HarnessError
from harness.lab.config import LabConfig, ModelEntry
from harness.lab.plan import expand
from harness.run import RunSpec, plan_run
from harness.runners.python_runner import TimingConfig

SUSTAINED_MARGIN_S = 120.0  # start-up and eval on top of a sustained cell (harness run's)


@dataclass(frozen=True)
class PreparedModel:
    """A lab model: a RunSpec template (device filled in per device), or why there is none."""

    entry: ModelEntry
    spec: RunSpec | None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.entry.name

    def spec_for(self, device: str) -> RunSpec:
        assert self.spec is not None
        return replace(self.spec, device=device)

    def cells_for(
        self, device: str, delegates, threads, batches=(1,), concurrency=(1,)
    ) -> list[Cell]:
        """Every cell planned for this model on `device`, before capability filtering."""
        if self.spec is not None:
            try:
                # the lab's own model only: a baseline twin swept beside it (lab.paired)
                # is measured, but is not a cell the night plans
                return plan_run(replace(self.spec_for(device), more_models=()))[1]
            except HarnessError:
                pass  # the build went away since prepare: fall through to the config's view
        from harness.lab.plan import ModelVariant

        variants = [
            ModelVariant(self.name, v, self.entry.source, None)  # type: ignore[arg-type]
            for v in _wanted_variants(self.entry)
        ]
        return expand(
            device, variants, tuple(delegates), tuple(threads), tuple(batches), tuple(concurrency)
        )


def timing_config(config: LabConfig) -> TimingConfig:
    """The lab's [timing] as the runner's; `sustained` adjusts it as `harness run
    --sustained` does: one long round per cell, and a cell watchdog that allows it."""
    t = config.timing
    rounds, cell_timeout, job_timeout = t.rounds, t.cell_timeout_s, t.timeout_s
    if config.sustained_s:
        rounds = 1
        # a sustained cell's length is known, so a watchdog of sustained + 120 s is never
        # early; it is set even where cell_timeout_s = 0 asked for none, because the job
        # bound below is counted from it
        cell_timeout = max(cell_timeout or 0.0, config.sustained_s + SUSTAINED_MARGIN_S)
        # a fixed job bound (timeout_s, 1 h by default) would kill a night of several
        # 5-minute cells: the runner counts one from the cells instead (each its full
        # watchdog, python_runner.job_timeout), as `harness run` does
        job_timeout = None
    return TimingConfig(
        runs=t.runs,
        min_secs=t.min_secs,
        warmup=t.warmup,
        timeout_s=job_timeout,
        rounds=rounds,
        cell_timeout_s=cell_timeout,
    )


def build_dir(config: LabConfig) -> Path:
    return config.build or config.path.parent / ".harness-lab" / config.name / "build"


def prepare_models(
    config: LabConfig, progress: Callable[[str], None] = lambda _: None
) -> list[PreparedModel]:
    """Convert (cached) or check every model of the lab; errors are kept, never raised."""
    return [_prepare(config, m, progress) for m in config.models]


def _prepare(config: LabConfig, m: ModelEntry, progress) -> PreparedModel:
    try:
        if m.converted or m.source.suffix.lower() == ".tflite":
            model_path = m.source
        else:
            progress(f"{m.name}: converting {', '.join(_wanted_variants(m))}")
            out = build_dir(config) / m.name
            spec = ConvertSpec(m.source, out, _wanted_variants(m), m.calibration, m.int8_io)
            model_path = convert_model(spec).manifest_path.parent
        spec = RunSpec(
            model=model_path,
            device="",
            variants=m.variants if m.converted else None,
            delegates=config.delegates,
            threads=config.threads,
            batches=config.batches,
            concurrency=config.concurrency,
            load=config.load,
            sustained_s=config.sustained_s,
            runner_options=config.runner_options,
            timing=timing_config(config),
            eval_path=m.eval_path,
            metrics=m.metrics,
        )
        variants, _ = plan_run(spec)
        if m.eval_path is not None:
            from harness.run import load_eval

            load_eval(m.eval_path, variants[0].info.inputs[0])
        return PreparedModel(m, spec)
    except HarnessError as exc:
        return PreparedModel(m, None, f"model could not be prepared: {exc}")


def _wanted_variants(m: ModelEntry) -> tuple[str, ...]:
    if m.variants:
        return m.variants
    if m.source.suffix.lower() == ".tflite":
        return ("fp32",)
    # the four pre-recipe variants by default (the lab's nightly cost stays as it was);
    # int16x8, w8, w4 when a lab entry names them
    if m.calibration is not None:
        return DEFAULT_VARIANTS
    return tuple(v for v in DEFAULT_VARIANTS if v not in CALIBRATED)
