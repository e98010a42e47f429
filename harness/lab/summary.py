"""A lab night's outputs: Markdown (chat, issue trackers), JSON, and JUnit XML (CI).

JUnit: one <testcase> per planned cell, classname `lab.<lab>.<device>.<model>`, name
`<variant>/<delegate>/t<threads>` (`/b<batch>`, `/c<N>` when not 1); <failure> for a
regression against the baseline (slower, accuracy down, throughput down, energy up), a
failed cell or a cell lost with its device; <skipped> for a cell filtered out for the
device or unsupported on it, and for a measured cell whose verdict is inconclusive (the
message says the noise and what would resolve it).
Files in the output directory: summary.md, summary.json, junit.xml.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.lab.night import CellResult, NightResult

SCHEMA = 1
FILES = ("summary.md", "summary.json", "junit.xml")


def write_outputs(result: NightResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in FILES]
    paths[0].write_text(render_markdown(result), encoding="utf-8")
    paths[1].write_text(json.dumps(night_document(result), indent=2), encoding="utf-8")
    ET.ElementTree(junit_tree(result)).write(paths[2], encoding="utf-8", xml_declaration=True)
    return paths


def night_document(result: NightResult) -> dict:
    return _finite(
        {
            "schema": SCHEMA,
            "lab": result.lab,
            "night": result.night,
            "tag": result.tag,
            "store": _redact(result.store_url),
            "baseline": result.baseline.to_dict(),
            "notes": list(result.notes),
            "exit_code": result.exit_code,
            "counts": {k: result.count(k) for k in ("passed", "failure", "skipped")}
            | {"inconclusive": len(_inconclusive(result))},
            "regressions": len(result.regressions),
            "devices": [
                {
                    "label": d.label,
                    "serial": d.serial,
                    "reachable": d.reachable,
                    "lost": d.lost,
                    "capabilities": d.capabilities.to_dict() if d.capabilities else None,
                    "runs": {m.model: m.run_id for m in d.models},
                }
                for d in result.devices
            ],
            "cells": [c.to_dict() for c in result.cells],
        }
    )


def junit_tree(result: NightResult) -> ET.Element:
    suites = ET.Element("testsuites", name=f"harness lab {result.lab}")
    by_device: dict[str, list[CellResult]] = {}
    for c in result.cells:
        by_device.setdefault(c.cell.device, []).append(c)
    for device, cells in by_device.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{result.lab}.{device}",
            tests=str(len(cells)),
            failures=str(sum(c.outcome == "failure" for c in cells)),
            skipped=str(sum(c.outcome == "skipped" for c in cells)),
            errors="0",
            timestamp=result.night,
        )
        for c in cells:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"lab.{result.lab}.{device}.{c.cell.model}",
                name=c.cell.setting,
                time=f"{(c.median_us or 0) / 1e6:.6f}",
            )
            if c.outcome == "failure":
                kind = "regression" if c.status not in ("failed", "lost") else c.status
                el = ET.SubElement(case, "failure", type=kind, message=_message(c))
                el.text = _message(c)
            elif c.verdict == "inconclusive":
                ET.SubElement(case, "skipped", message=_message(c))
            elif c.outcome == "skipped":
                ET.SubElement(case, "skipped", message=f"{c.status}: {c.reason or ''}".strip())
    return suites


def render_markdown(result: NightResult) -> str:
    lines = [f"# Lab `{result.lab}` — night {result.night}", ""]
    unsure = len(_inconclusive(result))
    counts = (
        f"**{len(result.regressions)} regression(s), {result.count('failure')} failing, "
        f"{result.count('passed')} passed, {unsure} inconclusive, "
        f"{result.count('skipped') - unsure} not measured** · exit {result.exit_code}"
    )
    base = result.baseline
    against = f"{base.policy} `{base.label}`" if base.label else f"{base.policy}: none found"
    if base.policy == "none":
        against = "none"
    lines += [counts, "", f"Baseline: {against} · store: `{_redact(result.store_url)}`", ""]
    lines += [*(f"- {n}" for n in result.notes), ""] if result.notes else []
    lines += _table(
        "Regressions",
        ["device", "model", "cell", "median", "change", "verdict"],
        [
            [c.cell.device, c.cell.model, _cell(c), _us(c.median_us), _pct(c.change), c.verdict]
            for c in result.regressions
        ],
    )
    lines += _table(
        "Inconclusive (no regression found, none ruled out)",
        ["device", "model", "cell", "median", "change", "why"],
        [
            [c.cell.device, c.cell.model, _cell(c), _us(c.median_us), _pct(c.change), c.note]
            for c in _inconclusive(result)
        ],
    )
    lines += _table(
        "Failed cells",
        ["device", "model", "cell", "status", "reason"],
        [
            [c.cell.device, c.cell.model, _cell(c), c.status, c.reason or ""]
            for c in result.cells
            if c.status in ("failed", "lost")
        ],
    )
    lines += _table(
        "Devices",
        ["device", "serial", "state", "measured"],
        [[d.label, d.serial, _state(d), _measured(result, d.serial)] for d in result.devices],
    )
    lines += _table(
        "Measured cells",
        ["device", "model", "cell", "median", "95% CI", "accuracy", "change", "verdict"],
        [
            [
                c.cell.device,
                c.cell.model,
                _cell(c),
                _us(c.median_us),
                f"{_us(c.ci_low_us)}–{_us(c.ci_high_us)}" if c.ci_low_us else "",
                f"{c.accuracy:.4f}" if c.accuracy is not None else "",
                _pct(c.change),
                c.verdict or "",
            ]
            for c in result.cells
            if c.status == "ok"
        ],
    )
    lines += _table(
        "Sustained and energy",
        ["device", "model", "cell", "figures"],
        [
            [c.cell.device, c.cell.model, _cell(c), c.detail]
            for c in result.cells
            if c.status == "ok" and c.detail
        ],
    )
    lines += _table(
        "Not measured on purpose",
        ["device", "model", "cell", "status", "reason"],
        [
            [c.cell.device, c.cell.model, _cell(c), c.status, c.reason or ""]
            for c in result.cells
            if c.status in ("filtered", "unsupported")
        ],
    )
    return "\n".join(lines).rstrip() + "\n"


def _inconclusive(result: NightResult) -> list[CellResult]:
    return [c for c in result.cells if c.verdict == "inconclusive" and c.status == "ok"]


def _table(title: str, header: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return []
    out = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        out.append("| " + " | ".join(_md(v) for v in row) + " |")
    return [*out, ""]


def _md(v) -> str:
    return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")


def _cell(c: CellResult) -> str:
    return c.cell.setting


def _us(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return ""
    return f"{v / 1000:.3f} ms" if v >= 1000 else f"{v:.1f} µs"


def _pct(v: float | None) -> str:
    return f"{v:+.1%}" if v is not None and math.isfinite(v) else ""


def _state(d) -> str:
    if d.lost:
        return d.lost
    return "ok" if d.reachable else "unreachable"


def _measured(result: NightResult, serial: str) -> str:
    mine = [c for c in result.cells if c.cell.device == serial and c.outcome != "skipped"]
    got = sum(c.status in ("ok", "failed") for c in mine)
    return f"{got}/{len(mine)}"


def _message(c: CellResult) -> str:
    if c.status in ("failed", "lost"):
        return f"{c.status}: {c.reason or 'no reason given'}"
    return f"{c.verdict}: median {_us(c.median_us)} ({_pct(c.change)}); {c.note or ''}".rstrip("; ")


def _redact(url: str) -> str:
    """A store URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, creds = head.partition("://")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
