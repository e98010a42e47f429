"""PNG export: the chart SVGs screenshotted by headless Chromium (Debian `chromium`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.report.page import charts_page

CHROMIUM_ENV = "HARNESS_CHROMIUM"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_SIZE = re.compile(r'<svg class="chart[^"]*"[^>]*?width="(\d+(?:\.\d+)?)" height="(\d+)"')


def find_chromium() -> str | None:
    """$HARNESS_CHROMIUM, else the first Chromium-like browser on PATH."""
    if override := os.environ.get(CHROMIUM_ENV):
        return shutil.which(override)
    return next((p for n in _NAMES if (p := shutil.which(n))), None)


def chromium_command(browser: str, profile: Path, *args: str) -> list[str]:
    """Headless, sandbox-less (root in CI), with no network chatter or first-run work."""
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        *args,
    ]


def charts_size(charts: list[str], margin: int = 12, gap: int = 12) -> tuple[int, int]:
    """Window size that fits the charts stacked vertically."""
    sizes = [(float(m.group(1)), int(m.group(2))) for c in charts if (m := _SIZE.search(c))]
    width = int(max((w for w, _ in sizes), default=400)) + 2 * margin
    height = sum(h for _, h in sizes) + gap * len(sizes) + 2 * margin
    return width, height


def write_png(charts: list[str], out: Path, timeout: float = 90.0) -> Path:
    """Screenshot the charts into ``out``; HarnessError when Chromium is missing or fails."""
    browser = find_chromium()
    if browser is None:
        raise HarnessError(
            "--png needs headless Chromium, and none was found on PATH "
            "(Debian: apt-get install chromium; or set HARNESS_CHROMIUM)"
        )
    out = Path(out).resolve()
    if not out.parent.is_dir():
        raise HarnessError(f"cannot write {out}: no directory {out.parent}")
    width, height = charts_size(charts)
    with tempfile.TemporaryDirectory(prefix="harness-png-") as tmp:
        page = Path(tmp) / "charts.html"
        page.write_text(charts_page(charts), encoding="utf-8")
        cmd = chromium_command(
            browser,
            Path(tmp) / "profile",
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            page.as_uri(),
        )
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"Chromium took over {timeout:.0f} s to screenshot") from exc
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise HarnessError(f"Chromium could not write {out} (exit {proc.returncode}): {last}")
    return out
