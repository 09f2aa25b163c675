"""Tests of ich.Metrics: against scikit-learn on random data with ties, a
hand-computed case, batching, undefined classes, the RSNA log loss against
a numpy formula, the seeded bootstrap and the errors."""

import math

import numpy as np
import pytest

import ich

sklearn_metrics = pytest.importorskip("sklearn.metrics")

NAMES = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid",
         "subdural"]


def random_data(n, decimals, seed, k=6):
    """Informative scores rounded to `decimals` (many ties), 0/1 labels."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(np.float32)
    p = np.clip(0.6 * rng.random((n, k)) + 0.4 * y * rng.random((n, k)), 0, 1)
    return np.round(p, decimals).astype(np.float32), y


def compute(p, y, **kw):
    m = ich.Metrics(**kw)
    m.update(p, y)
    return m.compute()


@pytest.mark.parametrize("decimals,seed", [(1, 1), (2, 2), (2, 3)])
def test_against_sklearn(decimals, seed):
    p, y = random_data(500, decimals, seed)
    r = compute(p, y, bootstrap=0)
    assert r["classes"] == NAMES
    assert r["samples"] == 500
    for c in range(6):
        yc, pc = y[:, c].astype(int), p[:, c].astype(np.float64)
        pred = (pc > 0.5).astype(int)  # the rule: p > 0.5 predicts 1
        assert r["auc"][c] == pytest.approx(sklearn_metrics.roc_auc_score(yc, pc), abs=1e-9)
        assert r["average_precision"][c] == pytest.approx(
            sklearn_metrics.average_precision_score(yc, pc), abs=1e-9)
        assert r["confusion"][c] == sklearn_metrics.confusion_matrix(
            yc, pred, labels=[0, 1]).tolist()
        assert r["precision"][c] == pytest.approx(
            sklearn_metrics.precision_score(yc, pred), abs=1e-12)
        assert r["recall"][c] == pytest.approx(sklearn_metrics.recall_score(yc, pred), abs=1e-12)
        assert r["f1"][c] == pytest.approx(sklearn_metrics.f1_score(yc, pred), abs=1e-12)
        assert r["accuracy"][c] == pytest.approx(
            sklearn_metrics.accuracy_score(yc, pred), abs=1e-12)
        (tn, fp), _ = r["confusion"][c]
        assert r["specificity"][c] == pytest.approx(tn / (tn + fp), abs=1e-12)
        fpr, tpr, thr = sklearn_metrics.roc_curve(yc, pc, drop_intermediate=False)
        ofpr, otpr, othr = r["roc"][c]
        np.testing.assert_allclose(ofpr, fpr, atol=1e-12)
        np.testing.assert_allclose(otpr, tpr, atol=1e-12)
        assert math.isinf(othr[0]) and othr[0] > 0  # sklearn 1.2 writes max + 1 there
        np.testing.assert_allclose(othr[1:], thr[1:], atol=0)
        best = int(np.argmax(tpr - fpr))
        assert r["youden_threshold"][c] == pytest.approx(
            thr[best] if best > 0 else math.inf)
        yd = r["youden"][c]
        assert yd["confusion"] == sklearn_metrics.confusion_matrix(
            yc, (pc >= r["youden_threshold"][c]).astype(int), labels=[0, 1]).tolist()
    assert r["accuracy_overall"] == pytest.approx(np.mean((p > 0.5) == (y >= 0.5)), abs=1e-12)
    pd = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        bce = -np.mean(y * np.maximum(np.log(pd), -100) + (1 - y) * np.maximum(np.log1p(-pd), -100))
    assert r["bce"] == pytest.approx(bce, rel=1e-10)


def test_rsna_log_loss_numpy():
    p, y = random_data(300, 2, 5)
    p[0, 0], p[1, 2] = 0.0, 1.0  # exercise the clipping
    r = compute(p, y, bootstrap=0)
    pc = np.clip(p.astype(np.float64), 1e-15, 1 - 1e-15)
    w = np.array([2, 1, 1, 1, 1, 1], dtype=np.float64)
    per = -(y * np.log(pc) + (1 - y) * np.log1p(-pc))
    expected = np.mean((per * w).sum(axis=1) / w.sum())
    assert r["rsna_log_loss"] == pytest.approx(expected, rel=1e-10)
    # sklearn's log_loss of the "any" column alone equals a one-class run
    r1 = compute(p[:, :1], y[:, :1], names=["any"], bootstrap=0)
    assert r1["rsna_log_loss"] == pytest.approx(
        sklearn_metrics.log_loss(y[:, 0], p[:, 0].astype(np.float64), eps=1e-15,
                                 labels=[0, 1]), rel=1e-9)


def test_hand_computed_one_class():
    # scores 0.9 0.8 0.8 0.4 0.3 0.1, labels 1 1 0 1 0 0: pairs won 3 + 2.5 + 2 of 9,
    # AUC 5/6; AP = 1/3*1 + 1/3*2/3 + 1/3*3/4 = 29/36; at 0.5 tp 2 fp 1 fn 1 tn 2.
    p = np.array([0.9, 0.8, 0.8, 0.4, 0.3, 0.1], dtype=np.float32)
    y = np.array([1, 1, 0, 1, 0, 0], dtype=np.float32)
    r = compute(p, y, names=["x"])
    assert r["auc"] == [pytest.approx(5 / 6, abs=1e-15)]
    assert r["average_precision"] == [pytest.approx(29 / 36, abs=1e-15)]
    assert r["confusion"] == [[[2, 1], [1, 2]]]
    assert r["f1"] == [pytest.approx(2 / 3)]
    assert r["youden_threshold"] == [pytest.approx(0.4)]


def test_batches_equal_one_call():
    p, y = random_data(333, 1, 9)
    whole = compute(p, y, bootstrap=100, seed=4)
    m = ich.Metrics(bootstrap=100, seed=4)
    for start in range(0, 333, 50):
        m.update(p[start:start + 50], y[start:start + 50])
    assert len(m) == 333
    parts = m.compute()
    for key in whole:
        if key == "roc":
            for a, b in zip(whole[key], parts[key]):
                for u, v in zip(a, b):
                    np.testing.assert_array_equal(u, v)
        else:
            assert whole[key] == parts[key], key


def test_undefined_is_none():
    p, y = random_data(50, 2, 11)
    y[:, 1] = 0  # epidural: no positives
    y[:, 2] = 1  # intraparenchymal: no negatives
    r = compute(p, y, bootstrap=20)
    for c in (1, 2):
        assert r["auc"][c] is None
        assert r["auc_ci"][c] is None
        assert r["youden_threshold"][c] is None
    assert r["average_precision"][1] is None and r["recall"][1] is None
    assert r["specificity"][2] is None
    assert r["average_precision"][2] == pytest.approx(1.0)
    assert isinstance(r["auc"][0], float)
    # nothing anywhere is NaN
    for key, value in r.items():
        if key != "roc":
            assert "nan" not in repr(value).lower(), key


def test_bootstrap_seeded():
    p, y = random_data(400, 2, 13)
    a = compute(p, y, seed=7)
    b = compute(p, y, seed=7)
    c = compute(p, y, seed=8)
    assert a["auc_ci"] == b["auc_ci"]
    assert a["auc_ci"] != c["auc_ci"]
    for k in range(6):
        low, high = a["auc_ci"][k]
        assert low < a["auc"][k] < high
        assert 0.01 < high - low < 0.3


def test_logits_match_probabilities():
    p, y = random_data(200, 2, 17)
    p = np.clip(p, 0.01, 0.99)
    logits = np.log(p / (1 - p)).astype(np.float32)
    rp = compute(p, y, bootstrap=0)
    rl = compute(logits, y, logits=True, bootstrap=0)
    for c in range(6):
        assert rl["auc"][c] == pytest.approx(rp["auc"][c], abs=1e-12)
        assert rl["confusion"][c] == rp["confusion"][c]
    x = logits.astype(np.float64)
    bce = np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
    assert rl["bce"] == pytest.approx(bce, rel=1e-10)


def test_errors():
    m = ich.Metrics()
    good = np.full((3, 6), 0.5, dtype=np.float32)
    with pytest.raises(ich.ShapeError):
        m.update(np.zeros((3, 5)), np.zeros((3, 5)))
    with pytest.raises(ich.ShapeError):
        m.update(good, np.zeros((4, 6)))
    with pytest.raises(ich.ShapeError):
        m.update(np.zeros(6), np.zeros(6))
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ich.InvalidArgumentError):
        m.update(bad, good)
    with pytest.raises(ich.InvalidArgumentError):
        m.update(good, bad)
    with pytest.raises(ich.InvalidArgumentError):
        m.update(good * 3, good)
    with pytest.raises(ich.InvalidArgumentError):
        m.update(good, good * 3)  # labels must lie in [0, 1]
    assert len(m) == 0
    with pytest.raises(ich.InvalidArgumentError):
        m.compute()  # no rows
    with pytest.raises(ich.InvalidArgumentError):
        ich.Metrics(names=["a", ""])
    with pytest.raises(TypeError):
        ich.Metrics(names="any")
    m.close()
    with pytest.raises(ich.InvalidArgumentError):
        m.update(good, good)


def sigmoid32(x):
    """The float32 probability of a logit, as ich_model_predict() reports it."""
    x = np.asarray(x, dtype=np.float32)
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def test_decision_rule_boundary():
    """p = 0.5 exactly predicts negative, the next float above positive; a
    logit whose float32 probability is 0.5 is negative too, though > 0."""
    above = np.nextafter(np.float32(0.5), np.float32(1))
    p = np.array([[0.5], [above], [0.5], [above]], dtype=np.float32)
    y = np.array([[0], [0], [1], [1]], dtype=np.float32)
    r = compute(p, y, names=["any"], bootstrap=0)
    assert r["confusion"][0] == sklearn_metrics.confusion_matrix(
        y[:, 0].astype(int), (p[:, 0] > 0.5).astype(int), labels=[0, 1]).tolist()
    assert r["confusion"][0] == [[1, 1], [1, 1]]
    assert r["youden"][0]["threshold"] == r["youden_threshold"][0]
    logits = np.array([[1e-8], [1e-6], [-1e-8], [0.0]], dtype=np.float32)
    assert sigmoid32(1e-8) == 0.5 and 1e-8 > 0  # the case "logit > 0" gets wrong
    yl = np.zeros_like(logits)
    rl = compute(logits, yl, names=["any"], logits=True, bootstrap=0)
    pred = (sigmoid32(logits[:, 0]) > 0.5).astype(int)
    assert pred.tolist() == [0, 1, 0, 0]
    assert rl["confusion"][0] == sklearn_metrics.confusion_matrix(
        yl[:, 0].astype(int), pred, labels=[0, 1]).tolist()
    assert rl["accuracy_overall"] == pytest.approx(0.75)
