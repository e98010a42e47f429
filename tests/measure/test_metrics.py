"""Every built-in metric against scikit-learn's implementation on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from harness.errors import HarnessError
from harness.measure.metrics import (
    BUILTINS,
    check_metrics,
    compute_metrics,
    parse_metric,
    primary,
)

RNG = np.random.default_rng(7)
N = 300


def _value(text, outputs, labels=None, reference=None) -> float:
    [m] = compute_metrics((parse_metric(text),), outputs, labels, reference)
    assert m.error is None, m.error
    return m.value


@pytest.fixture
def multiclass():
    logits = RNG.normal(size=(N, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # labels agree with the top class about half the time, so nothing is 0 or 1
    y = np.where(RNG.random(N) < 0.5, probs.argmax(axis=1), RNG.integers(0, 10, N))
    return probs.astype(np.float32), y


@pytest.fixture
def binary():
    y = RNG.integers(0, 2, N)
    score = np.clip(0.35 * y + RNG.normal(0.35, 0.25, N), 0, 1)
    return score.astype(np.float32)[:, None], y


def test_top1_and_topk_match_sklearn(multiclass):
    probs, y = multiclass
    assert _value("top1", probs, y) == pytest.approx(skm.accuracy_score(y, probs.argmax(1)))
    for k in (1, 3, 5):
        want = skm.top_k_accuracy_score(y, probs, k=k, labels=range(10))
        assert _value(f"topk:k={k}", probs, y) == pytest.approx(want)
    assert 0.3 < _value("top1", probs, y) < 0.8  # the arrays do not make it trivial


def test_auc_precision_recall_f1_match_sklearn(binary, multiclass):
    score, y = binary
    s = score[:, 0]
    assert _value("auc", score, y) == pytest.approx(skm.roc_auc_score(y, s))
    for t in (0.3, 0.5, 0.7):
        pred = s >= t
        for name, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            want = fn(y, pred, zero_division=0)
            assert _value(f"{name}:threshold={t}", score, y) == pytest.approx(want)
    # a softmax over two classes reads column 1 by default; class=C one-vs-rest for more
    two = np.stack([1 - s, s], axis=1)
    assert _value("auc", two, y) == pytest.approx(skm.roc_auc_score(y, s))
    probs, yc = multiclass
    want = skm.roc_auc_score(yc == 3, probs[:, 3])
    assert _value("auc:class=3", probs, yc) == pytest.approx(want)
    want = skm.f1_score(yc == 3, probs[:, 3] >= 0.2)
    assert _value("f1:class=3,threshold=0.2", probs, yc) == pytest.approx(want)


def test_auc_ties_count_a_half():
    score = np.array([[0.5], [0.5], [0.2], [0.9]], dtype=np.float32)
    y = np.array([1, 0, 0, 1])
    assert _value("auc", score, y) == pytest.approx(skm.roc_auc_score(y, score[:, 0]))


def test_mae_rmse_match_sklearn():
    y = RNG.normal(size=(N, 3))
    out = (y + RNG.normal(scale=0.3, size=(N, 3))).astype(np.float32)
    assert _value("mae", out, y) == pytest.approx(skm.mean_absolute_error(y, out))
    assert _value("rmse", out, y) == pytest.approx(np.sqrt(skm.mean_squared_error(y, out)))
    y1 = y[:, 0]
    assert _value("mae", out[:, :1], y1) == pytest.approx(skm.mean_absolute_error(y1, out[:, 0]))


def test_reference_metrics_match_sklearn(multiclass):
    ref, _ = multiclass
    out = ref + RNG.normal(scale=0.01, size=ref.shape).astype(np.float32)
    mse = skm.mean_squared_error(ref.ravel(), out.ravel())
    snr = 10 * np.log10(np.mean(ref.astype(np.float64) ** 2) / mse)
    assert _value("snr", out, reference=ref) == pytest.approx(snr, rel=1e-5)
    cos = np.diag(skm.pairwise.cosine_similarity(out, ref)).mean()
    assert _value("cosine", out, reference=ref) == pytest.approx(cos, rel=1e-6)
    assert _value("max_abs", out, reference=ref) == pytest.approx(
        skm.max_error(ref.ravel(), out.ravel()), rel=1e-6
    )
    assert _value("mean_abs", out, reference=ref) == pytest.approx(
        skm.mean_absolute_error(ref.ravel(), out.ravel()), rel=1e-6
    )
    agree = skm.accuracy_score(ref.argmax(1), out.argmax(1))
    assert _value("agreement", out, reference=ref) == pytest.approx(agree)
    assert _value("snr", ref, reference=ref) == 200.0  # identical: capped, stays finite


def test_each_definition_carries_direction_and_units():
    lower = {n for n, d in BUILTINS.items() if not d.higher_is_better}
    assert lower == {"mae", "rmse", "max_abs", "mean_abs"}
    assert BUILTINS["snr"].units == "dB" and BUILTINS["top1"].threshold_units == "pp"
    [m] = compute_metrics((parse_metric("rmse"),), np.zeros((2, 1)), np.ones(2), None)
    assert (m.value, m.higher_is_better) == (1.0, False)
    assert primary([m.to_dict()]).better(0.5, 1.0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("top2", "unknown metric 'top2'"),
        ("topk:k=0", "k must be >= 1"),
        ("topk:n=5", "unknown option 'n'"),
        ("f1:threshold=abc", "could not convert"),
        ("no_such_module_xyz:fn", "cannot import no_such_module_xyz"),
        ("json:no_such_function", "has no function"),
    ],
)
def test_bad_metric_texts_are_one_clear_error(text, match):
    with pytest.raises(HarnessError, match=match):
        parse_metric(text)


def test_checks_before_a_run():
    y = np.arange(10) % 2
    ten = (-1, 10)
    with pytest.raises(HarnessError, match="auc: the output has 10 classes"):
        check_metrics((parse_metric("auc"),), ("probs",), ten, y, True)
    check_metrics((parse_metric("auc:class=2"),), ("probs",), ten, y, True)
    with pytest.raises(HarnessError, match="needs labels"):
        check_metrics((parse_metric("top1"),), ("probs",), ten, None, True)
    check_metrics((parse_metric("snr"),), ("probs",), ten, None, True)  # reference only
    with pytest.raises(HarnessError, match="needs eval data"):
        check_metrics((parse_metric("snr"),), ("probs",), ten, None, False)
    with pytest.raises(HarnessError, match="integer class labels"):
        check_metrics((parse_metric("top1"),), ("probs",), ten, y.astype(float), True)
    check_metrics((parse_metric("mae"),), ("probs",), ten, y.astype(float), True)
    with pytest.raises(HarnessError, match="no output 'boxes'"):
        check_metrics((parse_metric("top1:output=boxes"),), ("probs",), ten, y, True)


def test_a_user_metric_is_recorded_and_its_failure_is_contained(tmp_path, monkeypatch):
    (tmp_path / "team_metrics.py").write_text(
        "__version__ = '1.2'\n"
        "def worst_margin(outputs, labels):\n"
        "    '''Smallest top-1 probability.'''\n"
        "    return float(outputs.max(axis=1).min())\n"
        "worst_margin.units = 'probability'\n"
        "def broken(outputs, labels):\n"
        "    raise RuntimeError('boom\\nsecond line')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = np.array([[0.9, 0.1], [0.4, 0.6]], dtype=np.float32)
    ok, bad = compute_metrics(
        (parse_metric("team_metrics:worst_margin"), parse_metric("team_metrics:broken")),
        out,
        None,
        None,
    )
    assert (ok.name, ok.value, ok.version, ok.units) == (
        "team_metrics:worst_margin",
        pytest.approx(0.6),
        "1.2",
        "probability",
    )
    assert (bad.value, bad.error) == (None, "RuntimeError: boom")


def test_compare_judges_the_primary_metric_in_its_own_direction_and_units():
    from harness.measure.compare import CompareConfig, compare_accuracy

    [rmse] = compute_metrics((parse_metric("rmse"),), np.zeros((2, 1)), np.ones(2), None)
    [snr] = compute_metrics((parse_metric("snr"),), np.ones((2, 1)), None, np.ones((2, 1)))
    cfg = CompareConfig()
    assert compare_accuracy(0.10, 0.12, cfg, rmse).down  # rmse up = worse (default 0)
    assert not compare_accuracy(0.12, 0.10, cfg, rmse).down  # rmse down = better
    assert not compare_accuracy(0.10, 0.12, CompareConfig(metric_threshold=0.05), rmse).down
    lost = compare_accuracy(40.0, 38.5, cfg, snr)  # 1.5 dB lost, default threshold 1 dB
    assert lost.down and (lost.change, lost.units, lost.change_pp) == (-1.5, "dB", None)
    assert not compare_accuracy(40.0, 39.5, cfg, snr).down
    top1 = compare_accuracy(0.978, 0.972, cfg)  # no metric given: top-1 in pp, as before
    assert top1.down and top1.change_pp == pytest.approx(-0.6)
