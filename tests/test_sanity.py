"""Sanity checks (`keras_patterns.evaluate.sanity`) against closed forms: the gradients of a
linear model are its weight columns, the gradient of a small MLP is computed in numpy from the
weights the randomisation drew, PatternNet's linear pattern Cov(x) w / (w' Cov(x) w), and
baselines that ignore the model."""

import keras
import numpy as np
import pytest
from scipy import stats

from keras_patterns.evaluate.sanity import (
    class_sensitivity,
    correlation,
    correlation_matrix,
    model_randomization,
    randomized_layers,
)


def linear_model(d=12, k=4, bias=True):
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(k, use_bias=bias)])
    w = np.random.normal(size=(d, k)).astype(np.float32)
    model.layers[0].set_weights([w, np.random.normal(size=k).astype(np.float32)] if bias
                                else [w])
    return model, w


def mlp(d=10, hidden=16, k=3):
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(k)])


def mlp_gradient(weights, x, classes):
    """d y_c / d x of Dense-relu-Dense from its weights, in numpy."""
    w1, b1, w2, _ = [np.asarray(w, np.float64) for w in weights]
    active = (x @ w1 + b1 > 0).astype(np.float64)
    return (active * w2[:, classes].T) @ w1.T


def test_correlation_measures_against_numpy_and_scipy():
    a = np.random.normal(size=(5, 3, 4))
    b = a + np.random.normal(size=a.shape)
    b[0, 0, :2] = b[0, 0, 2]  # ties for the ranks
    fa, fb = a.reshape(5, -1), b.reshape(5, -1)
    want = [np.corrcoef(fa[i], fb[i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(correlation(a, b), want, rtol=1e-10)
    want = [stats.spearmanr(fa[i], fb[i])[0] for i in range(5)]
    np.testing.assert_allclose(correlation(a, b, "spearman"), want, rtol=1e-10)
    want = [stats.spearmanr(np.abs(fa[i]), np.abs(fb[i]))[0] for i in range(5)]
    np.testing.assert_allclose(correlation(a, b, "spearman_abs"), want, rtol=1e-10)
    # constant explanations: 1 with another constant one, 0 with anything else
    const = np.ones((2, 6))
    np.testing.assert_array_equal(correlation(const, 3 * const), [1.0, 1.0])
    np.testing.assert_array_equal(correlation(const, np.random.normal(size=(2, 6))), [0, 0])
    e = np.random.normal(size=(4, 7))
    np.testing.assert_allclose(correlation_matrix(e), np.corrcoef(e), rtol=1e-10, atol=1e-12)


def test_class_sensitivity_of_a_linear_model_is_the_weight_correlation():
    """The gradient of class c is the weight column w_c for every input, so the class
    correlation matrix is numpy's correlation of the weight columns."""
    model, w = linear_model()
    x = np.random.normal(size=(6, 12)).astype(np.float32)
    result = class_sensitivity("gradient", model, x, batch_size=8)
    want = np.corrcoef(w.T.astype(np.float64))
    for m in result.matrices:
        np.testing.assert_allclose(m, want, rtol=1e-5, atol=1e-6)
    upper = np.triu_indices(4, 1)
    assert result.mean == pytest.approx(want[upper].mean(), rel=1e-5)
    np.testing.assert_array_equal(result.classes, np.arange(4))

    # input x gradient: x * w_c, so the correlation depends on the sample
    some = class_sensitivity("input_t_gradient", model, x, classes=[1, 3], measure="spearman")
    want = [stats.spearmanr(x[i] * w[:, 1], x[i] * w[:, 3])[0] for i in range(6)]
    np.testing.assert_allclose(some.per_sample, want, rtol=1e-5)
    np.testing.assert_allclose(some.matrices[:, 0, 1], want, rtol=1e-5)


def test_class_sensitivity_of_model_free_explanations():
    model, _ = linear_model()
    x = np.random.normal(size=(5, 12)).astype(np.float32)
    assert class_sensitivity("input", model, x).mean == pytest.approx(1.0)
    # seeded noise is keyed by the sample: the same noise for every class of an input
    assert class_sensitivity("random", model, x, seed=1).mean == pytest.approx(1.0)
    fresh = class_sensitivity("random", model, np.random.normal(size=(40, 12)))
    assert abs(fresh.mean) < 0.1


def test_gradient_after_randomising_the_last_layer():
    model = mlp()
    x = np.random.normal(size=(20, 10)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    classes = np.argmax(np.asarray(model(x)), axis=1)
    result = model_randomization("gradient", model, x, k=1, return_weights=True,
                                 return_explanations=True, measures=("pearson", "spearman_abs"))
    assert result.steps == ["", model.layers[-1].name]
    np.testing.assert_array_equal(result.classes, classes)
    old, new = result.weights
    for w, v in zip(old, before):
        np.testing.assert_array_equal(w, v)
    np.testing.assert_array_equal(new[0], before[0])  # the hidden layer is kept
    assert not np.allclose(new[2], before[2])  # the output kernel is drawn anew
    g0 = mlp_gradient(before, x.astype(np.float64), classes)
    g1 = mlp_gradient(new, x.astype(np.float64), classes)
    np.testing.assert_allclose(result.explanations[0], g0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.explanations[1], g1, rtol=1e-4, atol=1e-6)
    want = [np.corrcoef(g0[i], g1[i])[0, 1] for i in range(len(x))]
    np.testing.assert_allclose(result.per_sample["pearson"][1], want, rtol=1e-4, atol=1e-5)
    want = [stats.spearmanr(np.abs(g0[i]), np.abs(g1[i]))[0] for i in range(len(x))]
    np.testing.assert_allclose(result.per_sample["spearman_abs"][1], want, rtol=1e-4,
                               atol=1e-5)
    assert result.correlations["pearson"][0] == 1.0
    assert result.correlations["pearson"][1] < 0.8  # the gradient depends on the weights
    for w, v in zip(model.get_weights(), before):  # the user's model is unchanged
        np.testing.assert_array_equal(w, v)


def test_cascading_and_independent_randomisation():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, activation="relu"),
                              keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    x = np.random.normal(size=(8, 8)).astype(np.float32)
    before = model.get_weights()
    names = [layer.name for layer in randomized_layers(model)]
    top = model_randomization("gradient", model, x, return_weights=True)
    assert top.steps == ["", names[2], names[1], names[0]]
    assert top.randomized[3] == names[::-1]
    for s in range(1, 4):  # step s: the top s layers differ from the trained ones
        changed = [not np.allclose(top.weights[s][2 * j], before[2 * j]) for j in range(3)]
        assert changed == [j >= 3 - s for j in range(3)]
        g = np.asarray(top.per_sample["pearson"][s])
        assert g.shape == (8,) and np.isfinite(g).all()
    one = model_randomization("gradient", model, x, layers="independent", return_weights=True)
    for s in range(1, 4):
        changed = [not np.allclose(one.weights[s][2 * j], before[2 * j]) for j in range(3)]
        assert changed == [j == 3 - s for j in range(3)]
    for w, v in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, v)


def test_model_free_explanations_under_randomisation():
    model = mlp()
    x = np.random.normal(size=(30, 10)).astype(np.float32)
    same = model_randomization("input", model, x)
    for m in ("pearson", "spearman_abs"):
        np.testing.assert_allclose(same.correlations[m], 1.0)
    seeded = model_randomization("random", model, x, k=2, seed=3, init_seed=1)
    np.testing.assert_allclose(seeded.correlations["pearson"], 1.0)  # keyed by the sample
    fresh = model_randomization("random", model, x, k=2, stddev=1.0)
    assert np.all(np.abs(fresh.correlations["pearson"][1:]) < 0.15)


def test_pattern_net_is_refitted_after_randomisation():
    """A single linear layer: PatternNet's linear pattern of class c is
    a_c = Cov(x) w_c / (w_c' Cov(x) w_c) and its signal a_c * y_c; after randomisation the
    patterns of the new weights."""
    model, _ = linear_model(d=6, k=3)
    fit = np.random.normal(size=(400, 6)) @ np.random.normal(size=(6, 6))
    fit = fit.astype(np.float32)
    x = fit[:10]
    result = model_randomization("pattern.net", model, x, fit_data=fit, pattern_type="linear",
                                 neuron_selection=2, return_weights=True,
                                 return_explanations=True)
    cov = np.cov(fit.astype(np.float64).T)
    for s in range(2):
        w, b = [np.asarray(v, np.float64) for v in result.weights[s]]
        a = cov @ w[:, 2] / (w[:, 2] @ cov @ w[:, 2])
        y = x.astype(np.float64) @ w[:, 2] + b[2]
        np.testing.assert_allclose(result.explanations[s], y[:, None] * a[None, :], rtol=2e-3,
                                   atol=1e-4)
    w0, w1 = result.weights[0][0][:, 2], result.weights[1][0][:, 2]
    a0, a1 = cov @ w0, cov @ w1
    want = np.corrcoef(a0, a1)[0, 1] * np.sign(x @ w0 + result.weights[0][1][2]) * np.sign(
        x @ w1 + result.weights[1][1][2])
    np.testing.assert_allclose(result.per_sample["pearson"][1], want, rtol=1e-3, atol=1e-3)
