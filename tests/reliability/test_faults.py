"""Real sweeps through a faulty device: each cell measured once or failed with a reason.

The device is `harness serve-device`'s daemon (RSA auth on) with a fault injected by
count ("the 1st push of a .tflite, after 65537 bytes"), reached with adb-shell like any
board. After each sweep: no planned cell lost, none stored twice, every blob on the
device whole (its sha256 is its name), and a resume measures whatever is left.
"""

from __future__ import annotations

import pytest
from reliability_campaign import (
    TALLY,
    CountingStore,
    assert_blobs_whole,
    audit,
    small_spec,
    sweep,
)

# spec → (needs eval data so there are pulls, the fewest cells that must end "ok")
FAULTS = {
    "drop:cnxn": (False, 4),
    "drop:cnxn:times=2": (False, 4),
    "stall:cnxn:seconds=3": (False, 4),
    "drop:push:match=.tflite:after=1": (False, 4),
    "drop:push:match=.tflite:after=65537": (False, 4),
    "drop:push:match=.tflite:after=150000": (False, 4),
    "drop:push:match=.tflite:nth=2:after=4096": (False, 4),
    "drop:push:match=.py.part:after=0": (False, 4),
    "stall:push:match=.tflite:after=30000:seconds=3": (False, 4),
    "enospc:push:match=.tflite:after=1000": (False, 3),
    "drop:shell:match=job-r:after=10": (False, 3),
    "drop:shell:match=mv -f:after=0": (False, 3),
    "drop:pull:match=outputs/:after=100": (True, 4),
    "drop:pull:match=outputs/:nth=3:after=0": (True, 4),
    "stall:pull:match=outputs/:after=10:seconds=3": (True, 4),
    "reboot:push:match=.tflite:after=50000": (False, 4),
    "reboot:shell:match=job-r:after=10": (False, 3),
    # the runner's stream goes silent for 60 s: noticed after the idle timeout (5 s
    # here), not at the end of the job
    "stall:shell:match=job-r:after=10:seconds=60": (False, 3),
}


def _run_with_fault(spec_text, board, variants, digits, store_url, rounds=1):
    needs_eval, _ = FAULTS[spec_text]
    b = board(spec_text)
    spec = small_spec(variants, b.serial, digits / "eval.npz" if needs_eval else None, rounds)
    refused = CountingStore.refused
    run_id = sweep(spec, store_url, b.open())
    outcome = audit(spec, store_url, run_id, refused)
    TALLY.record(spec_text, b.fired(), outcome.lost, outcome.duplicated)
    return b, outcome


@pytest.mark.parametrize("spec_text", list(FAULTS))
def test_sweep_survives_the_fault(spec_text, board, variants, digits, store_url, monkeypatch):
    monkeypatch.setenv("HARNESS_STREAM_IDLE_TIMEOUT", "5")
    b, outcome = _run_with_fault(spec_text, board, variants, digits, store_url)
    assert b.fired() >= 1, "the fault never fired: the test proves nothing"
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    ok = sum(s == "ok" for s in outcome.statuses.values())
    assert ok >= FAULTS[spec_text][1], outcome.reasons
    assert assert_blobs_whole(b) >= 3  # runner + two models, each whole
