"""Deterministic fault injection for the daemon: the flaky USB hub, on purpose.

A fault names what goes wrong (``drop``, ``stall``, ``enospc``, ``reboot``), at which
event (``cnxn``, ``push``, ``pull``, ``shell``), on which occurrence of that event and
after how many bytes. Everything is counted, never timed or random, so a test that
injects "drop the 2nd push after 64 KiB" sees exactly that on every run::

    drop:cnxn                       close the socket when the host's CNXN arrives
    drop:push:nth=2:after=65536     cut the connection 64 KiB into the 2nd push
    stall:pull:after=100:seconds=5  stop sending for 5 s, 100 bytes into a pull
    enospc:push:after=1000          the disk fills up 1000 bytes into a push
    reboot:shell:match=runner.py    power-cycle when a shell running runner.py starts
    drop:shell:match=runner.py:after=10:times=2

Options: ``nth`` (1-based occurrence of the event that fires first, default 1),
``times`` (how many matching occurrences in a row fire, default 1), ``after`` (bytes
of the push/pull/shell output before the fault, default 0), ``match`` (only events
whose path or command contains this text count), ``seconds`` (stall length, default
5), ``down`` (how long a reboot keeps the port closed, default 0.5).

A ``drop`` or ``reboot`` in the middle of a push leaves the partial file on disk, as
a power cut would; the host must never rename or use it. ``enospc`` makes the SEND
writer fail with ENOSPC, which the host sees as a FAIL reply (the partial file is
removed, as adbd does). A reboot closes every connection and shell, keeps the sandbox,
and listens again on the same port.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.adbd.packets import ProtocolError

KINDS = ("drop", "stall", "enospc", "reboot")
EVENTS = ("cnxn", "push", "pull", "shell")
_ALLOWED = {
    "cnxn": {"drop", "stall", "reboot"},
    "push": {"drop", "stall", "enospc", "reboot"},
    "pull": {"drop", "stall", "reboot"},
    "shell": {"drop", "stall", "reboot"},
}


class FaultSpecError(ValueError):
    """A --inject-fault SPEC that cannot be parsed."""


class InjectedFault(ProtocolError):
    """Raised in a service thread after an injected drop/reboot: the session is over."""


@dataclass(frozen=True)
class Fault:
    """One planned fault; see the module docstring for the spec syntax."""

    kind: str
    event: str
    nth: int = 1
    times: int = 1
    after: int = 0
    match: str = ""
    seconds: float = 5.0
    down: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault {self.kind!r}; one of {', '.join(KINDS)}")
        if self.event not in EVENTS:
            raise FaultSpecError(f"unknown event {self.event!r}; one of {', '.join(EVENTS)}")
        if self.kind not in _ALLOWED[self.event]:
            raise FaultSpecError(f"{self.kind} cannot happen at {self.event}")
        if self.nth < 1 or self.times < 1 or self.after < 0:
            raise FaultSpecError("nth and times must be >= 1, after >= 0")
        if self.seconds < 0 or self.down < 0:
            raise FaultSpecError("seconds and down must not be negative")

    @property
    def spec(self) -> str:
        """The spec string this fault round-trips to (for logs and tallies)."""
        parts = [self.kind, self.event]
        defaults = Fault.__dataclass_fields__
        for name in ("nth", "times", "after", "match", "seconds", "down"):
            value = getattr(self, name)
            if value != defaults[name].default:
                parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
        return ":".join(parts)


def parse_fault(spec: str) -> Fault:
    """``KIND:EVENT[:key=value]...`` → Fault; FaultSpecError says what is wrong."""
    kind, _, rest = spec.strip().partition(":")
    event, _, opts = rest.partition(":")
    values: dict[str, object] = {}
    for opt in filter(None, opts.split(":")):
        key, eq, value = opt.partition("=")
        if not eq:
            raise FaultSpecError(f"fault option {opt!r} is not key=value")
        try:
            if key in ("nth", "times", "after"):
                values[key] = int(value)
            elif key in ("seconds", "down"):
                values[key] = float(value)
            elif key == "match":
                values[key] = value
            else:
                raise FaultSpecError(f"unknown fault option {key!r}")
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"fault option {key}={value!r} is not a number") from exc
    return Fault(kind, event, **values)  # type: ignore[arg-type]


class Tripwire:
    """A fault armed for one push, pull or shell: fires once ``after`` bytes went by."""

    def __init__(self, fault: Fault, injector: FaultInjector, drop: Callable[[], None]):
        self.fault = fault
        self._injector = injector
        self._drop = drop
        self._seen = 0
        self._done = False
        self._lock = threading.Lock()  # a shell's stdout and stderr pumps share one wire

    def feed(self, data: bytes, emit: Callable[[bytes], None]) -> None:
        """Pass ``data`` to ``emit``, firing the fault at exactly the byte offset."""
        with self._lock:
            fire_now = not self._done and self._seen + len(data) >= self.fault.after
            cut = max(0, self.fault.after - self._seen) if fire_now else len(data)
            self._seen += len(data)
        if data[:cut]:
            emit(data[:cut])
        if fire_now:
            self.fire()
        if data[cut:]:
            emit(data[cut:])

    def fire(self) -> None:
        """Do the fault now (once): drop/reboot raise InjectedFault, enospc raises OSError."""
        with self._lock:
            if self._done:
                return
            self._done = True
        fault = self.fault
        if fault.kind == "stall":
            time.sleep(fault.seconds)
        elif fault.kind == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        elif fault.kind == "drop":
            self._drop()
            raise InjectedFault(f"injected fault {fault.spec}")
        elif fault.kind == "reboot":
            self._injector.reboot(fault.down)
            raise InjectedFault(f"injected fault {fault.spec}")


class FaultInjector:
    """Counts events and hands out the fault planned for each; thread-safe.

    Counts live as long as the daemon object, across reboots, so "the 2nd push" means
    the 2nd push the device ever saw.
    """

    def __init__(self, faults: tuple[Fault, ...], reboot: Callable[[float], None]):
        self.faults = faults
        self._reboot = reboot
        self._lock = threading.Lock()
        self._seen = [0] * len(faults)
        self._fired = [0] * len(faults)

    def arm(self, event: str, subject: str, drop: Callable[[], None]) -> Tripwire | None:
        """Count one ``event`` on ``subject`` (a path or command); its Tripwire, if any."""
        chosen = None
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.event != event or fault.match not in subject:
                    continue
                self._seen[i] += 1
                if chosen is None and fault.nth <= self._seen[i] < fault.nth + fault.times:
                    self._fired[i] += 1
                    chosen = fault
        return Tripwire(chosen, self, drop) if chosen else None

    def reboot(self, down_s: float) -> None:
        """Power-cycle the daemon from another thread (this one is about to end)."""
        threading.Thread(target=self._reboot, args=(down_s,), name="adbd-reboot").start()

    def fired(self) -> dict[str, int]:
        """How many times each fault (by spec) was injected so far."""
        with self._lock:
            return {f.spec: n for f, n in zip(self.faults, self._fired, strict=True)}
