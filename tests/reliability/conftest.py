"""The reliability campaign: faulty devices, bad inputs, hostile clients — and a tally.

Every fault test records (fault, times injected, cells lost, cells duplicated) and every
bad-input test is counted by category; the terminal summary prints both tables. The
existing one-line-error tests in tests/test_cli.py and tests/test_convert.py are counted
too when they ran in the same session (matched by test name below).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

# The daemon fixtures of tests/adbd, reused (tests/ is on sys.path; see tests/devices).
from adbd.conftest import device_root, start_daemon  # noqa: F401
from reliability_campaign import TALLY, Board

from harness.adbd import AdbDaemon, DaemonConfig, generate_adb_keypair
from harness.adbd.faults import parse_fault

# Bad-input tests that live elsewhere, counted by (file, test-function prefix) → category.
_EXISTING_BAD_INPUTS = {
    ("tests/test_convert.py", "test_bad_input_is_one_line_and_exit_2"): "files",
    ("tests/test_cli.py", "test_bad_model_paths_are_one_line"): "files",
    ("tests/test_cli.py", "test_bad_eval_file_is_one_line_and_stores_nothing"): "files",
    ("tests/test_cli.py", "test_bad_run_options_are_one_line"): "cli and config",
    ("tests/test_cli.py", "test_unknown_device_is_one_line"): "cli and config",
    ("tests/test_cli.py", "test_click_level_errors_exit_2_without_a_traceback"): "cli and config",
    ("tests/test_cli.py", "test_a_custom_op_model_is_an_unsupported_row"): "files",
    ("tests/lab/test_config.py", "test_each_mistake_is_one_line_naming_its_place"): (
        "cli and config"
    ),
    ("tests/lab/test_config.py", "test_the_cli_exits_2_with_one_line"): "cli and config",
    ("tests/devices/test_run_over_adb.py", "test_refused_port_is_one_line"): "cli and config",
    ("tests/devices/test_run_over_adb.py", "test_hostile_model_name_arrives_as_a_name"): (
        "hostile names"
    ),
    ("tests/adbd/test_adbd_security.py", "test_hostile_file_name_with_adb_shell"): (
        "hostile names"
    ),
    ("tests/adbd/test_adbd_security.py", "test_hostile_file_name_with_real_adb"): ("hostile names"),
}
# The daemon's own security tests count in the security row.
_EXISTING_SECURITY_FILES = (
    "tests/adbd/test_adbd_security.py",
    "tests/devices/test_run_over_adb.py",
)
_EXISTING_SECURITY = {
    "test_sync_refuses_dotdot_escape",
    "test_absolute_paths_stay_inside_root",
    "test_symlinks_pointing_out_are_refused",
    "test_no_auth_refused_on_public_address",
    "test_cli_refuses_no_auth_on_public_address",
    "test_oversized_header_closes_only_that_connection",
    "test_stalled_stream_does_not_block_others",
    "test_unknown_service_and_stream_limit",
    "test_unknown_key_never_gets_a_shell",
    "test_wrong_key_is_refused_with_one_line",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bad_input(category): a bad-input case counted in the reliability tally"
    )


@pytest.fixture(autouse=True)
def _bad_input_category(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("bad_input")
    if marker is not None:
        request.node.user_properties.append(("bad_input", marker.args[0]))


def _bad_input_category_of(report) -> str | None:
    for key, value in getattr(report, "user_properties", ()):
        if key == "bad_input":
            return value
    path, _, name = report.nodeid.partition("::")
    name = name.partition("[")[0]
    if path in _EXISTING_SECURITY_FILES and name in _EXISTING_SECURITY:
        return "security"
    return _EXISTING_BAD_INPUTS.get((path, name))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    tried: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            category = _bad_input_category_of(report)
            if category:
                tried[category] += 1
                passed[category] += outcome == "passed"
    if not TALLY.faults and not tried:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability tally")
    if TALLY.faults:
        write(f"{'fault':<48} {'sweeps':>6} {'injected':>8} {'lost':>5} {'duplicated':>10}")
        for name in sorted(TALLY.faults):
            r = TALLY.faults[name]
            write(f"{name:<48} {r.sweeps:>6} {r.injected:>8} {r.lost:>5} {r.duplicated:>10}")
        write("")
    if tried:
        write(f"{'bad input':<48} {'cases tried':>11} {'one line + exit code ok':>24}")
        for category in sorted(tried):
            write(f"{category:<48} {tried[category]:>11} {passed[category]:>24}")


# ----------------------------------------------------------------------------- devices


@pytest.fixture(scope="session")
def host_key_pair(tmp_path_factory):
    return generate_adb_keypair(tmp_path_factory.mktemp("host-key") / "adbkey")


@pytest.fixture
def host_key(host_key_pair, monkeypatch):
    """This host's ADB key, and a short adb-shell timeout so lost connections show fast."""
    monkeypatch.setenv("HARNESS_ADB_KEY", str(host_key_pair.private_key))
    monkeypatch.setenv("HARNESS_ADB_TIMEOUT", "2")
    return host_key_pair


@pytest.fixture
def board(tmp_path, host_key):
    """Factory: board(*fault_specs) → a Linux board (daemon with RSA auth) with those faults."""
    boards: list[Board] = []

    def start(*specs: str, root: Path | None = None) -> Board:
        root = root or tmp_path / f"board{len(boards)}"
        config = DaemonConfig(
            root=root,
            authorized_keys=host_key.public_key,
            props={"ro.harness.python": sys.executable},
            faults=tuple(parse_fault(s) for s in specs),
        )
        daemon = AdbDaemon(config)
        daemon.start()
        boards.append(Board(daemon, root))
        return boards[-1]

    yield start
    for b in boards:
        b.daemon.stop()
