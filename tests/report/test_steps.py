"""Change-point detection on per-run figures (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.steps import Step, detect_steps, noise_level


def _noisy(levels: list[tuple[int, float]], sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, level) for n, level in levels])
    return y + sigma * rng.standard_normal(len(y))


def test_a_flat_series_has_no_steps():
    assert detect_steps([100.0] * 20) == []


@pytest.mark.parametrize("seed", range(8))
def test_noise_alone_is_not_a_step(seed):
    assert detect_steps(_noisy([(30, 100.0)], seed=seed), min_rel=0) == []


def test_a_step_is_found_at_the_first_point_of_the_new_level():
    steps = detect_steps(_noisy([(12, 100.0), (8, 112.0)]))
    assert len(steps) == 1
    s = steps[0]
    assert s.index == 12
    assert s.before == pytest.approx(100, abs=1.0)
    assert s.after == pytest.approx(112, abs=1.0)
    assert s.change == pytest.approx(0.12, abs=0.015)
    assert s.to_dict()["index"] == 12


def test_two_steps_up_and_down():
    steps = detect_steps(_noisy([(10, 100.0), (10, 130.0), (10, 105.0)], seed=3))
    assert [s.index for s in steps] == [10, 20]
    assert steps[0].change > 0.25 and steps[1].change < -0.15


def test_one_wild_run_is_not_a_step():
    y = _noisy([(20, 100.0)], seed=1)
    y[9] = 400.0
    assert detect_steps(y) == []


def test_a_change_in_only_the_last_run_waits_for_a_second_run():
    y = list(_noisy([(15, 100.0)], seed=2))
    assert detect_steps([*y, 150.0]) == []
    assert [s.index for s in detect_steps([*y, 150.0, 151.0])] == [15]


def test_small_relative_changes_are_ignored_by_min_rel():
    y = _noisy([(15, 1000.0), (15, 1010.0)], sigma=0.5)
    assert detect_steps(y) == []  # 1% < default 2%
    assert [s.index for s in detect_steps(y, min_rel=0.005)] == [15]


def test_within_run_noise_raises_the_bar():
    y = _noisy([(10, 100.0), (10, 104.0)], sigma=0.3)
    assert [s.index for s in detect_steps(y)] == [10]
    assert detect_steps(y, noise=[10.0] * len(y)) == []
    assert noise_level(np.asarray(y), [10.0] * len(y)) == 10.0


def test_short_or_non_finite_series_have_no_steps():
    assert detect_steps([]) == []
    assert detect_steps([1.0, 2.0, 3.0]) == []
    assert detect_steps([1.0, 1.0, float("nan"), 5.0, 5.0, 5.0]) == []


def test_step_change_of_a_zero_level():
    assert Step(3, 0.0, 1.0).change == float("inf")
