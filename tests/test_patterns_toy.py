"""Patterns on the paper's toy data (section 2): the estimators recover the signal
direction, PatternNet returns the signal where the gradient returns w, and the sums keep the
covariance under a large offset."""

import keras
import numpy as np
from keras import layers
from oracles import assert_close

import keras_patterns as kp


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- the toy example of section 2 ------------------------------------------------------------

def _toy(n=40000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1, 1, n)
    eps = rng.normal(2.0, 1.0, n)  # distractor with mean 2
    x = np.outer(y, [1.0, 0.0]) + np.outer(eps, [1.0, 1.0])
    model = keras.Sequential([keras.Input((2,)),
                              layers.Dense(1, use_bias=False, activation="relu")])
    model.layers[0].kernel.assign(np.array([[1.0], [-1.0]], "float32"))  # w^T a_d = 0
    return model, x.astype("float32"), y


def test_toy_patterns_recover_the_signal_direction():
    model, x, _ = _toy()
    key = model.layers[0].name
    p = kp.compute_patterns(model, x, pattern_type="relu", batch_size=500)
    assert _cos(p[key]["a_plus"], [1, 0]) > 0.999
    lin = kp.compute_patterns(model, x, pattern_type="linear")
    assert _cos(lin[key]["a"], [1, 0]) > 0.999
    # The filter estimator returns the weight direction, which is not the signal.
    filt = kp.compute_patterns(model, None, pattern_type="filter")
    assert _cos(filt[key]["a"], [1, -1]) > 0.9999


def test_toy_eq8_shows_the_documented_deviation():
    """Eq. (8) with E[y] over all samples: a_+ = (a_s/3 + a_d) / (1/3) = (4, 3)."""
    model, x, _ = _toy()
    p = kp.compute_patterns(model, x, pattern_type="relu.eq8")
    np.testing.assert_allclose(p[model.layers[0].name]["a_plus"].ravel(), [4.0, 3.0], atol=0.1)


def test_toy_patternnet_returns_the_signal_and_gradient_returns_w():
    model, x, y = _toy()
    net = kp.create_analyzer("pattern.net", model).fit(x, batch_size=1000)
    att = kp.create_analyzer("pattern.attribution", model).fit(x, batch_size=1000)
    sample = x[:200]
    ys = y[:200]
    active = ys > 0
    expected_signal = np.outer(ys, [1.0, 0.0])  # a_s y
    got = net.analyze(sample)
    assert _cos(got[active], expected_signal[active]) > 0.999
    assert np.all(got[~active] == 0)  # the rectifier blocks inactive samples
    got_att = att.analyze(sample)
    assert _cos(got_att[active], (np.array([1.0, -1.0]) * [1.0, 0.0]) * ys[active, None]) > 0.999
    grad = kp.create_analyzer("gradient", model).analyze(sample[active])
    assert_close(grad, np.tile([1.0, -1.0], (int(active.sum()), 1)))


def test_64d_toy_with_several_distractors():
    rng = np.random.default_rng(1)
    d, k, n = 64, 5, 300000
    dist = rng.normal(size=(d, k))
    a_s = rng.normal(size=d) + dist @ rng.normal(size=k)  # partly along the distractors
    q, _ = np.linalg.qr(dist)
    w = a_s - q @ (q.T @ a_s)  # orthogonal to every distractor direction
    w /= w @ a_s  # w^T a_s = 1
    y = rng.uniform(-1, 1, n)
    eps = rng.normal(loc=[2.0, -1.0, 0.5, 3.0, 1.0], size=(n, k))
    x = (np.outer(y, a_s) + eps @ dist.T).astype("float32")
    model = keras.Sequential([keras.Input((d,)), layers.Dense(1, use_bias=False,
                                                               activation="relu")])
    model.layers[0].kernel.assign(w[:, None].astype("float32"))
    p = kp.compute_patterns(model, x, batch_size=4096)
    assert _cos(p[model.layers[0].name]["a_plus"], a_s) > 0.999
    assert _cos(w, a_s) < 0.9  # the filter is far from the signal direction
    net = kp.create_analyzer("pattern.net", model, patterns=p)
    sample = x[:50][y[:50] > 0]
    assert _cos(net.analyze(sample), np.outer(y[:50][y[:50] > 0], a_s)) > 0.999


def test_moments_do_not_cancel_with_large_offsets():
    """Sums around the first batch's means, added in float64: a mean of 1e3 over 500 batches
    keeps the covariance."""
    rng = np.random.default_rng(4)
    n = 50000
    y = rng.uniform(0.1, 1, n)
    x = (1000.0 + np.outer(y, [1.0, 0.0]) + np.outer(rng.normal(size=n), [1.0, 1.0]))
    model = keras.Sequential([keras.Input((2,)), layers.Dense(1, activation="relu")])
    model.layers[0].kernel.assign(np.array([[1.0], [-1.0]], "float32"))
    model.layers[0].bias.assign(np.array([1.0], "float32"))
    p = kp.compute_patterns(model, x.astype("float32"), batch_size=100)
    assert _cos(p[model.layers[0].name]["a_plus"], [1, 0]) > 0.999

