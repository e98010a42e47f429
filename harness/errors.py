"""User-facing errors: each becomes one line on stderr and a documented exit code."""

from __future__ import annotations

# Exit codes (documented in README.md):
EXIT_OK = 0
EXIT_REGRESSION = 1  # compare/recommend/lab: a verdict the caller should act on
EXIT_USER_ERROR = 2  # bad input: missing file, corrupt model, unknown option value
EXIT_DEVICE_ERROR = 3  # a device could not be reached or used


class HarnessError(Exception):
    """A mistake the user can fix; shown as one line, never as a traceback."""

    exit_code = EXIT_USER_ERROR


class DeviceError(HarnessError):
    """A device is unreachable, unauthorized, or failed in a way no retry fixed."""

    exit_code = EXIT_DEVICE_ERROR
