"""The moment algebra of the signal quality (`layer_moments`, `residuals`, `regression`)
against explicit residuals and least squares in numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from signal_quality_oracle import assert_matches, np_rho, oracle

from keras_patterns.evaluate.layer_moments import LayerMoments
from keras_patterns.evaluate.patch_sums import LayerSums
from keras_patterns.evaluate.regression import regression_vectors
from keras_patterns.evaluate.residuals import correlations, residual_terms
from keras_patterns.evaluate.signal_quality import signal_quality
from keras_patterns.patterns.fit import prepare_graph
from keras_patterns.patterns.identity import pattern_keys
from keras_patterns.patterns.streaming import StatisticsPass, kernel_calls

# ---------------------------------------------------------------------------------------
# the moment algebra against explicit residuals


def moments_of(x, w, b, shift):
    """LayerMoments from sums of explicit observations around `shift`."""
    xc = x - shift
    m = (x @ w + b > 0).astype(np.float64)
    yc = xc @ w
    return LayerMoments(len(x), xc.sum(0), xc.T @ xc, shift, w, m.sum(0), xc.T @ m,
                           xc.T @ (m * yc))


@pytest.mark.parametrize("offset", [0.0, 300.0])
def test_two_component_moments_equal_explicit_residuals(offset):
    rng = np.random.default_rng(6)
    n, dim, f = 4000, 7, 5
    x = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + offset
    w, b = rng.normal(size=(dim, f)), rng.normal(size=f) - offset * 0.1
    b -= np.median(x @ w, axis=0)  # both regimes populated
    a_plus, a_minus = rng.normal(size=(dim, f)), rng.normal(size=(dim, f))
    a_plus /= np.sum(w * a_plus, 0)
    a_minus /= np.sum(w * a_minus, 0)
    parts = np.array_split(x, 3)
    shift = parts[0][:50].mean(0) + 0.1  # any shift
    fit, test = (moments_of(p, w, b, shift) for p in parts[1:])
    terms = residual_terms(fit, a_minus, a_plus - a_minus)
    u, c, c_inv, g = terms
    np.testing.assert_allclose(np.einsum("fij,fjk->fik", c, c_inv),
                               np.broadcast_to(np.eye(4), (f, 4, 4)), atol=1e-12)
    v = regression_vectors(fit.sigma, terms)
    corr = correlations(v, test, a_minus, a_plus - a_minus)
    for j in range(f):
        y = parts[1] @ w[:, j]
        m = (y + b[j] > 0)[:, None]
        d = parts[1] - np.where(m, a_plus[:, j], a_minus[:, j]) * y[:, None]
        dc, yc = d - d.mean(0), y - y.mean()
        sigma_dd = dc.T @ dc / len(d)
        scale = np.abs(sigma_dd).max()
        np.testing.assert_allclose(fit.sigma + u[j] @ c[j] @ u[j].T, sigma_dd, rtol=0,
                                   atol=1e-9 * scale)
        np.testing.assert_allclose(g[j], dc.T @ yc / len(d), rtol=0,
                                   atol=1e-9 * np.abs(g[j]).max())
        rho = np_rho((a_plus[:, j], a_minus[:, j]), parts, w[:, j], b[j])
        assert 1 - corr[j] == pytest.approx(rho, abs=1e-8)


def test_linear_type_moments_equal_explicit_residuals():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 6)) * np.arange(1, 7) + 5.0
    w = rng.normal(size=(6, 4))
    a = rng.normal(size=(6, 4))
    a /= np.sum(w * a, 0)
    parts = np.array_split(x, 3)
    fit, test = (moments_of(p, w, np.zeros(4), p[0]) for p in parts[1:])
    terms = residual_terms(fit, a)
    assert terms[0].shape == (4, 6, 2)  # U = [a, c]: a rank-2 update
    v = regression_vectors(fit.sigma, terms)
    corr = correlations(v, test, a)
    for j in range(4):
        assert 1 - corr[j] == pytest.approx(np_rho(a[:, j], parts, w[:, j], 0.0), abs=1e-9)


def test_ridge_does_not_move_well_posed_answers():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 9)) @ rng.normal(size=(9, 9))
    w = rng.normal(size=(9, 3))
    a = rng.normal(size=(9, 3))
    a /= np.sum(w * a, 0)
    parts = np.array_split(x, 3)
    fit, test = (moments_of(p, w, np.zeros(3), np.zeros(9)) for p in parts[1:])
    rho = {}
    for ridge in (1e-6, 1e-10, 1e-14):
        v = regression_vectors(fit.sigma, residual_terms(fit, a), ridge=ridge)
        rho[ridge] = 1 - correlations(v, test, a)
    exact = [np_rho(a[:, j], parts, w[:, j], 0.0) for j in range(3)]
    np.testing.assert_allclose(rho[1e-10], exact, atol=1e-10)
    np.testing.assert_allclose(rho[1e-14], exact, atol=1e-10)
    np.testing.assert_allclose(rho[1e-6], exact, atol=1e-5)


def test_rank_deficient_inputs_match_minimum_norm_least_squares():
    """Inputs that never vary (a dead ReLU channel: always 0; a constant one) make Sigma_x
    singular; the ridge gives the minimum-norm least-squares answer. S_w puts signal on
    the dead input, where the residual is then exactly -a y: rho = 0."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="dense")])
    rng = np.random.default_rng(9)
    x = rng.normal(size=(900, 6))
    x[:, 2] = 0.0
    x[:, 4] = 3.0
    x = x.astype("float32")
    result = signal_quality(model, x, estimators=("random", "filter", "linear", "relu"),
                            per_neuron=True)
    expected = oracle(model, x, ("random", "filter", "linear", "relu"))
    assert_matches(result, expected, atol=1e-6)
    np.testing.assert_allclose(result.per_neuron["filter"]["dense"], 0.0, atol=1e-6)


def test_a_random_pattern_nearly_orthogonal_to_w_matches_least_squares():
    """A random direction u nearly orthogonal to w gives a = u / (w^T u) a huge norm; with
    inputs that never vary (dead ReLUs upstream) Sigma_dd is then singular far beyond the
    ridge, and the Woodbury solve alone returned a v that anti-correlated with y (rho = 2
    for one neuron, where least squares gives rho = 0)."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(1800, 8))
    x = np.maximum(z @ rng.normal(size=(8, 64)) + rng.normal(size=64), 0)
    x = x * rng.uniform(0.01, 3, 64)
    x[:, :21] = 0.0
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, name="out")])
    model.get_layer("out").set_weights([(0.1 * rng.normal(size=(64, 10))).astype("float32"),
                                        np.zeros(10, "float32")])
    x = x.astype("float32")
    result = signal_quality(model, x, ("random",), seed=7, per_neuron=True)
    expected = oracle(model, x, ("random",), seed=7)
    assert_matches(result, expected, atol=1e-6)
    assert np.all(result.per_neuron["random"]["out"] <= 1.0)




# ---------------------------------------------------------------------------------------
# the two passes' sums


def test_both_passes_give_the_estimators_the_same_statistics():
    """The signal quality sums patches (`patch_sums`), `compute_patterns` sums kernel
    gradients (`patterns.statistics`, here in float64), around other shifts; written in the
    estimators' form (`LayerMoments.estimator_statistics`) the two agree for every regime,
    padding, strides and an input far from zero included."""
    model = keras.Sequential([
        keras.Input((7, 6, 2)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv"),
        keras.layers.Activation("relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="dense"),
    ])
    x = np.random.default_rng(20).normal(2.0, 1.0, size=(96, 7, 6, 2)).astype("float32")
    for name in ("conv", "dense"):  # both regimes populated, by the median pre-activation
        layer = model.get_layer(name)
        z = keras.Model(model.inputs, layer.output).predict(x, verbose=0)
        layer.bias.assign(layer.bias - np.median(z.reshape(-1, z.shape[-1]), axis=0))
    graph = prepare_graph(model)
    keys = pattern_keys(graph)
    statistics = StatisticsPass(graph, {key: ("all", "plus", "minus") for key in keys.values()},
                                precision="float64")
    statistics.run(x, 32, None, 0)
    sums = {key: LayerSums(node.kernel_map, True) for node, key in keys.items()}
    for batch in np.split(x, 3):
        for node, inputs, _, z in kernel_calls(graph, [tf.constant(batch)]):
            sums[keys[node]].add(tf.constant(0), inputs, z)
    for node, key in keys.items():
        want = statistics.stats[key].moments(mean_x=True)
        got = sums[key].moments(0).estimator_statistics(tuple(node.kernel_map.kernel.shape))
        assert set(got) == {"all", "plus", "minus"}
        for regime, fields in got.items():
            np.testing.assert_array_equal(fields["n"], want[regime]["n"])
            if regime != "all":  # both regimes populated, so that both are compared
                assert 0 < fields["n"].min() and fields["n"].max() < got["all"]["n"].min()
            # the statistics pass takes y from the model's float32 forward pass, this one
            # forms y = w^T x in float64: y agrees to float32 round-off (measured 1e-7
            # relative), x to float64 round-off (1e-15)
            for name, tolerance in (("mean_y", 1e-6), ("c_xy", 1e-6), ("mean_x", 1e-12)):
                scale = np.abs(want[regime][name]).max()
                np.testing.assert_allclose(fields[name], want[regime][name], rtol=0,
                                           atol=tolerance * scale,
                                           err_msg=f"{key} {regime} {name}")
