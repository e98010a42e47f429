"""Headless Debian Chromium for the report tests: load a page, dump its DOM, screenshot.

Skipped when Chromium is absent, unless HARNESS_REQUIRE_ALL=1 (CI): then it fails.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from harness.report.png import chromium_command, find_chromium


def require_chromium() -> str:
    browser = find_chromium()
    if browser is None:
        if os.environ.get("HARNESS_REQUIRE_ALL") == "1":
            pytest.fail("Chromium is required (HARNESS_REQUIRE_ALL=1): apt-get install chromium")
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    return browser


def load(page: Path, tmp: Path, *args: str) -> tuple[str, list[str]]:
    """(DOM after the page's scripts ran, console messages) of a file:// page."""
    cmd = chromium_command(
        require_chromium(),
        tmp / "profile",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.resolve().as_uri(),
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, console


def dump_dom(page: Path, tmp: Path) -> tuple[str, list[str]]:
    return load(page, tmp, "--dump-dom", "--virtual-time-budget=2000")


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw pixel bytes) of an 8-bit RGB/RGBA non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def distinct_colours(path: Path, step: int = 3) -> int:
    """How many distinct RGB colours a PNG holds (sampling every ``step``-th pixel)."""
    width, _, rows = png_pixels(path)
    bpp = len(rows[0]) // width
    seen = set()
    for row in rows[::step]:
        for x in range(0, width, step):
            seen.add(row[x * bpp : x * bpp + 3])
    return len(seen)
