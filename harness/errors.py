"""User-facing errors: each becomes one line on stderr and a documented exit code."""

from __future__ import annotations

# Exit codes (documented in README.md):
EXIT_OK = 0
EXIT_REGRESSION = 1  # compare/recommend/lab: a verdict the caller should act on
EXIT_USER_ERROR = 2  # bad input: missing file, corrupt model, unknown option value
EXIT_DEVICE_ERROR = 3  # a device could not be reached or used
EXIT_NOTHING_MEASURED = 4  # run: no cell measured anything (each failed or unsupported)


class HarnessError(Exception):
    """A mistake the user can fix; shown as one line, never as a traceback."""

    exit_code = EXIT_USER_ERROR


class DeviceError(HarnessError):
    """A device is unreachable, unauthorized, or failed in a way no retry fixed."""

    exit_code = EXIT_DEVICE_ERROR


class NothingMeasured(HarnessError):
    """A run whose every cell failed or was unsupported: its rows are stored and shown,
    but a script must not read it as a measurement."""

    exit_code = EXIT_NOTHING_MEASURED


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from $name (default when unset); a bad value is a
    user mistake, said in one line."""
    import math
    import os

    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise HarnessError(f"${name} must be a positive number of seconds, not {text!r}")
    return value
