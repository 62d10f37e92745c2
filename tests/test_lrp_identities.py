"""LRP identities (LRP-0 is input times gradient without biases; z+ is alpha=1 beta=0
ignoring the bias; ...), alpha-beta with a negative bias worked by hand, and finite relevance
on extreme inputs and dead units."""

import keras
import lrp_reference as ref
import numpy as np
import pytest
from keras import layers
from lrp_cases import (
    ANALYZERS,
    analyzer,
    assert_close,
    index_for,
    inputs,
    logits_tape_gradient,
    model,
)

import keras_patterns as kp

# -- identities -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_z_is_input_times_gradient_without_bias(key):
    """On a bias-free relu net, LRP-0 started with y is x * d y_sel / dx."""
    m = model(key)
    x = inputs(key)
    assert_close(analyzer("lrp.z", key).analyze(x), x * logits_tape_gradient(m, x))
    index = index_for(len(x), 3)
    got = analyzer("lrp.z", key, "index").analyze(x, neuron_selection=index)
    assert_close(got, x * logits_tape_gradient(m, x, index))


@pytest.mark.parametrize("key", ["dense", "conv"])
def test_z_plus_is_alpha_1_beta_0_ib(key):
    x = inputs(key)
    assert_close(analyzer("lrp.z_plus", key).analyze(x),
                 analyzer("lrp.alpha_1_beta_0_IB", key).analyze(x))


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_alpha_beta_1_0_without_bias_is_alpha_1_beta_0(key):
    x = inputs(key)
    assert_close(analyzer("lrp.alpha_beta", key, alpha=1.0, beta=0.0).analyze(x),
                 analyzer("lrp.alpha_1_beta_0", key).analyze(x))


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_ib_rules_equal_bias_rules_without_bias(key):
    x = inputs(key)
    for a, b in [("lrp.z", "lrp.z_IB"), ("lrp.epsilon", "lrp.epsilon_IB"),
                 ("lrp.alpha_2_beta_1", "lrp.alpha_2_beta_1_IB")]:
        assert_close(analyzer(a, key).analyze(x), analyzer(b, key).analyze(x))


@pytest.mark.parametrize("key", ["dense", "conv"])
def test_epsilon_default_is_z(key):
    x = inputs(key)
    assert_close(analyzer("lrp.epsilon", key).analyze(x), analyzer("lrp.z", key).analyze(x))


# -- alpha-beta with a negative bias (iNNvestigate bug report) --------------------------------


def _bias_case_model():
    m = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
    m.layers[0].kernel.assign(np.array([[1.0], [-1.0]], "float32"))
    m.layers[0].bias.assign(np.array([-1.0], "float32"))
    return m


# worked by hand: y = 1 - 1 - 1 = -1; z+ = 1 (x1 w1) + b+ (0) = 1; z- = -1 (x2 w2) + b- (-1) = -2
# alpha=2, beta=1: R = 2 * [1 * (-1) / 1, 0] - 1 * [0, 1 * (-1) * (-1 / -2)] = [-2, 0.5]
# alpha=1, beta=0: R = [-1, 0]
BIAS_CASE = [
    ("lrp.alpha_2_beta_1", {}, [-2.0, 0.5]),
    ("lrp.alpha_beta", {"alpha": 2.0, "beta": 1.0}, [-2.0, 0.5]),
    ("lrp.alpha_1_beta_0", {}, [-1.0, 0.0]),
]


@pytest.mark.parametrize("name,params,by_hand", BIAS_CASE)
def test_alpha_beta_negative_bias_is_finite(name, params, by_hand):
    m = _bias_case_model()
    x = np.array([[1.0, 1.0]], "float32")
    a = kp.create_analyzer(name, m, neuron_selection_mode="index", **params)
    got = a.analyze(x, neuron_selection=0)
    expected = ref.reference(name, m, x, "index", 0, **params)
    np.testing.assert_allclose(expected, [by_hand], atol=1e-6)  # the reference, by hand
    assert np.all(np.isfinite(got)) and np.abs(got).max() < 10
    assert_close(got, expected)


# -- numerics -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("name", list(ANALYZERS))
def test_finite_on_zero_huge_and_tiny_inputs(name, key):
    x = inputs(key, n=2)
    batch = np.concatenate([np.zeros_like(x[:1]), x * 1e20, x * 1e-20]).astype("float32")
    R = analyzer(name, key, **ANALYZERS[name]).analyze(batch)
    assert np.all(np.isfinite(R))


@pytest.mark.parametrize("key", ["dead", "half_dead"])
@pytest.mark.parametrize("name", list(ANALYZERS))
def test_dead_units(name, key):
    """Layers with inactive units (all of them in "dead"): finite, and still the closed form."""
    x = inputs(key, n=3)
    R = analyzer(name, key, **ANALYZERS[name]).analyze(x)
    assert np.all(np.isfinite(R))
    expected = ref.reference(name, model(key), x, **ANALYZERS[name])
    assert np.all(np.isfinite(expected))
    assert_close(R, expected)

