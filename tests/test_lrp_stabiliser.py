"""The LRP stabiliser: rules divide exactly, and zero denominators give finite relevance."""

import functools

import lrp_reference as ref
import numpy as np
import pytest
import tensorflow as tf

import keras_patterns.rules.lrp as rules_lrp
from keras_patterns.reverse.relevance import SumRelevance
from keras_patterns.rules.lrp import LayerView

# -- the stabiliser: exact division, zero denominators finite -------------------------------
#
# The rules without an epsilon of their own divide exactly (as iNNvestigate's SafeDivide does);
# only a zero (or subnormal) denominator is replaced, by +-1e-7. Checked on one Dense layer
# against the plain numpy formulas, with data whose float32 sums are exact (x in quarters, W in
# eighths, columns scaled by powers of two), so that the package's z is the numpy z.


class _DenseMap:
    """A dense kernel map for `LayerView`: f(v; K) = v @ K."""

    def __init__(self, kernel, bias):
        self.kernel = tf.constant(kernel, tf.float32)
        self.bias = None if bias is None else tf.constant(bias, tf.float32)

    def apply(self, v, kernel):
        return tf.matmul(v, kernel)

    def broadcast(self, vector, rank):
        return vector


def _rule_on_dense(rule, x, W, b, r):
    kmap = _DenseMap(W, b)
    xt = tf.constant(x, tf.float32)
    z = kmap.apply(xt, kmap.kernel) + (0.0 if b is None else kmap.bias)
    layer = LayerView(kmap, xt, z)
    return rule.relevance(layer, tf.constant(r, tf.float32)).numpy().astype(np.float64)


def _divide_plain(r, z):
    return r / z


def _divide_epsilon(r, z, eps):
    return r / ref.stab(z, eps)


def _divide_zero_as_eps(r, z):
    """iNNvestigate's SafeDivide (z == 0 -> 1e-7), subnormal float32 z counted as zero."""
    return r / np.where(np.abs(z) < np.finfo(np.float32).tiny, 1e-7, z)


def _numpy_rule(name, x, W, b, r, divide):
    """The rules' formulas in float64 with a given division (no stabiliser of their own)."""
    x, W, r = (np.asarray(a, np.float64) for a in (x, W, r))
    b = np.zeros(W.shape[1]) if b is None else np.asarray(b, np.float64)
    xp, xn, Wp, Wn = ref.pos(x), ref.neg(x), ref.pos(W), ref.neg(W)

    def alpha_beta(alpha, beta, bias):
        zp = xp @ Wp + xn @ Wn + (ref.pos(b) if bias else 0.0)
        zn = xp @ Wn + xn @ Wp + (ref.neg(b) if bias else 0.0)
        sp, sn = divide(r, zp), divide(r, zn)
        return (alpha * (xp * (sp @ Wp.T) + xn * (sp @ Wn.T))
                - beta * (xp * (sn @ Wn.T) + xn * (sn @ Wp.T)))

    if name in ("z", "z_ib"):
        return x * (divide(r, x @ W + (b if name == "z" else 0.0)) @ W.T)
    if name == "gamma":
        Wg = W + 0.25 * Wp
        return x * (divide(r, x @ Wg + b + 0.25 * ref.pos(b)) @ Wg.T)
    if name in ("w_square", "flat"):
        K = W * W if name == "w_square" else np.ones_like(W)
        return divide(r, np.ones_like(x) @ K) @ K.T
    if name == "alpha_2_beta_1":
        return alpha_beta(2.0, 1.0, True)
    if name == "alpha_2_beta_1_ib":
        return alpha_beta(2.0, 1.0, False)
    if name == "alpha_1_beta_0":
        return alpha_beta(1.0, 0.0, True)
    if name == "z_plus":
        return alpha_beta(1.0, 0.0, False)
    if name == "z_plus_fast":
        return x * (divide(r, x @ Wp) @ Wp.T)
    if name == "bounded":
        low, high = -2.0, 2.0
        z = x @ W - low * Wp.sum(axis=0) - high * Wn.sum(axis=0)
        s = divide(r, z)
        return x * (s @ W.T) - low * (s @ Wp.T) - high * (s @ Wn.T)
    raise KeyError(name)


STABILISED = {
    "z": lambda: rules_lrp.Z(), "z_ib": lambda: rules_lrp.Z(bias=False),
    "gamma": lambda: rules_lrp.Gamma(), "w_square": rules_lrp.WSquare, "flat": rules_lrp.Flat,
    "alpha_2_beta_1": lambda: rules_lrp.AlphaBeta(2.0, 1.0),
    "alpha_2_beta_1_ib": lambda: rules_lrp.AlphaBeta(2.0, 1.0, bias=False),
    "alpha_1_beta_0": lambda: rules_lrp.AlphaBeta(1.0, 0.0), "z_plus": rules_lrp.ZPlus,
    "z_plus_fast": rules_lrp.ZPlusFast, "bounded": lambda: rules_lrp.Bounded(-2.0, 2.0),
}
# column scales: 1, ~1e-3, ~1e-6 (where +-1e-7 everywhere moved results by ~10%), ~1e-12
_SCALES = 2.0 ** np.array([0, -10, -20, -40])


def _exact_data(seed=0, n=5, d=6):
    rng = np.random.default_rng(seed)

    def nonzero(k, size):  # +-1 ... +-k
        return rng.integers(1, k + 1, size) * rng.choice([-1, 1], size)

    x = nonzero(8, (n, d)) / 4.0                                # quarters in [-2, 2]
    W = nonzero(8, (d, len(_SCALES))) / 8.0 * _SCALES           # eighths, scaled columns
    b = nonzero(4, len(_SCALES)) / 16.0 * _SCALES
    r = rng.normal(size=(n, len(_SCALES)))
    return x, W, b, r


def _denominators(name, x, W, b):
    """Every denominator the rule divides by (for the data's preconditions)."""
    xp, xn, Wp, Wn = ref.pos(x), ref.neg(x), ref.pos(W), ref.neg(W)
    return {
        "z": [x @ W + b], "z_ib": [x @ W], "gamma": [x @ (W + 0.25 * Wp) + b + 0.25 * ref.pos(b)],
        "w_square": [np.ones_like(x) @ (W * W)], "flat": [np.ones_like(x) @ np.ones_like(W)],
        "alpha_2_beta_1": [xp @ Wp + xn @ Wn + ref.pos(b), xp @ Wn + xn @ Wp + ref.neg(b)],
        "alpha_2_beta_1_ib": [xp @ Wp + xn @ Wn, xp @ Wn + xn @ Wp],
        "alpha_1_beta_0": [xp @ Wp + xn @ Wn + ref.pos(b)], "z_plus": [xp @ Wp + xn @ Wn],
        "z_plus_fast": [x @ Wp], "bounded": [x @ W + 2.0 * Wp.sum(0) - 2.0 * Wn.sum(0)],
    }[name]


@pytest.mark.parametrize("name", list(STABILISED))
def test_stabiliser_moves_no_finite_quotient(name):
    """Non-zero denominators, some of them ~1e-6 and ~1e-12: exactly r / z (float32 rounding
    of the division and back-projection only), as with iNNvestigate's SafeDivide."""
    x, W, b, r = _exact_data()
    zs = _denominators(name, x, W, b)
    assert all((z != 0).all() for z in zs)
    if name != "flat":  # flat's denominators are receptive-field sizes
        assert min(np.abs(z[:, 2:]).min() for z in zs if (z[:, 2:] != 0).all()) < 1e-5
    got = _rule_on_dense(STABILISED[name](), x, W, b, r)
    expected = _numpy_rule(name, x, W, b, r, _divide_plain)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def _zero_data():
    """Exact zeros of every kind: a zero input row, a zero kernel column, a cancellation
    (x = (1, 1, ...), w = (1, -1, 0, ...)), and products in the float32 subnormal range."""
    x = np.array([[0.0, 0.0, 0.0, 0.0],
                  [1.0, 1.0, 0.0, 0.0],
                  [1.0, 1.0, 1.0, 1.0],
                  [2.0 ** -70, 2.0 ** -70, 0.0, 0.0]])
    W = np.array([[1.0, 0.0, 2.0 ** -60, 0.5],
                  [-1.0, 0.0, 2.0 ** -60, -0.5],
                  [0.0, 0.0, 0.0, 0.25],
                  [0.0, 0.0, 0.0, 0.0]])
    r = np.array([[1.0, -2.0, 0.5, 3.0]] * 4)
    return x, W, r


@pytest.mark.parametrize("name", list(STABILISED))
def test_zero_denominators_are_finite(name):
    """Zero denominators give finite relevance, iNNvestigate's value r / 1e-7 (a float32
    subnormal counts as zero, where plain division would give inf)."""
    x, W, r = _zero_data()
    zs = _denominators(name, x, W, np.zeros(W.shape[1]))
    if name != "flat":
        assert any((np.abs(z) < np.finfo(np.float32).tiny).any() for z in zs)
    got = _rule_on_dense(STABILISED[name](), x, W, None, r)
    assert np.all(np.isfinite(got))
    expected = _numpy_rule(name, x, W, None, r, _divide_zero_as_eps)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


class _SumNode:
    """A two-input Add node, as the reverse layers see it."""

    name = "add"
    inputs = outputs = ()

    def forward(self, xs):
        return [xs[0] + xs[1]]


def test_sum_relevance_divides_exactly_and_zero_sums_are_finite():
    """Add / average pooling: r_i = x_i * r / (x_1 + x_2), exact for sums ~1e-6 and ~1e-12,
    r / 1e-7 where the sum is exactly zero."""
    a = np.array([[3.0, -1.0, 2.0 ** -20, 2.0 ** -40, 1.0, 0.0]])
    c = np.array([[-1.0, -2.0, 2.0 ** -21, -2.0 ** -42, -1.0, 0.0]])
    r = np.array([[1.0, 2.0, -1.5, 0.5, 2.0, -3.0]])
    layer = SumRelevance(_SumNode())
    got = layer.reverse([tf.constant(a, tf.float32), tf.constant(c, tf.float32)],
                        [tf.constant(a + c, tf.float32)], [tf.constant(r, tf.float32)])
    s = _divide_zero_as_eps(r, a + c)
    for g, part in zip(got, (a, c)):
        g = g.numpy()
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, part * s, rtol=1e-6, atol=0)


def test_epsilon_rule_adds_epsilon_everywhere():
    """lrp.epsilon's epsilon is the rule itself: z + epsilon * sign(z) in every denominator,
    also for the default 1e-7 (unlike the z-rule, which divides exactly)."""
    x, W, b, r = _exact_data()
    for eps in (1e-7, 0.1):
        got = _rule_on_dense(rules_lrp.Epsilon(eps), x, W, b, r)
        expected = _numpy_rule("z", x, W, b, r, functools.partial(_divide_epsilon, eps=eps))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    exact = _numpy_rule("z", x, W, b, r, _divide_plain)
    assert np.abs(_rule_on_dense(rules_lrp.Epsilon(1e-7), x, W, b, r) - exact).max() > (
        1e-3 * np.abs(exact).max())
    got = _rule_on_dense(rules_lrp.Gamma(epsilon=0.1), x, W, b, r)
    Wg = W + 0.25 * ref.pos(W)
    expected = x * ((r / ref.stab(x @ Wg + b + 0.25 * ref.pos(b), 0.1)) @ Wg.T)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
