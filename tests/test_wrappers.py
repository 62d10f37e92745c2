"""SmoothGrad and Integrated Gradients against closed forms and tape averages."""

import math

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close, select, tape_gradient

import keras_patterns as kp


def _relu_linear_model(w):
    """y = w^T relu(x): its gradient is w_i [x_i > 0]."""
    m = keras.Sequential([keras.Input((len(w),)), layers.ReLU(),
                          layers.Dense(1, use_bias=False)])
    m.layers[-1].kernel.assign(np.asarray(w, "float32")[:, None])
    return m


def _phi(z):
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def test_smoothgrad_without_noise_is_the_gradient():
    m = keras.Sequential([keras.Input((5,)), layers.Dense(4, activation="tanh"), layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    got = kp.create_analyzer("smoothgrad", m, noise_scale=0.0, augment_by_n=3).analyze(x)
    assert_close(got, tape_gradient(m, x))


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_smoothgrad_noise_scale_is_the_noise_std(sigma):
    """E[d/dx w^T relu(x + e)] = w * Phi(x / sigma) for e ~ N(0, sigma^2)."""
    w = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0], "float32")
    m = _relu_linear_model(w)
    x = np.array([[-1.0, -0.3, 0.0, 0.2, 0.7, 1.5]], "float32")
    n = 4000
    a = kp.create_analyzer("smoothgrad", m, noise_scale=sigma, augment_by_n=n, seed=11)
    got = a.analyze(x)
    expected = w * _phi(x / sigma)
    # Monte Carlo: each entry is w_i times a mean of n Bernoulli draws.
    tol = 5 * np.abs(w) * np.sqrt(0.25 / n)
    assert np.all(np.abs(got - expected) <= tol), (got, expected)
    # postprocess is applied to each noisy gradient before the mean.
    sq = kp.create_analyzer("smoothgrad", m, noise_scale=sigma, augment_by_n=n, seed=11,
                            postprocess="square").analyze(x)
    assert np.all(np.abs(sq - w**2 * _phi(x / sigma)) <= tol * np.abs(w))


def test_smoothgrad_seed_repeats_and_noise_changes():
    w = np.array([1.0, -2.0, 0.5], "float32")
    m = _relu_linear_model(w)
    x = np.array([[0.1, -0.1, 0.3]], "float32")
    a = lambda s: kp.create_analyzer("smoothgrad", m, noise_scale=1.0, augment_by_n=16, seed=s)
    assert np.array_equal(a(5).analyze(x), a(5).analyze(x))
    assert not np.array_equal(a(5).analyze(x), a(6).analyze(x))


def test_smoothgrad_neuron_is_chosen_on_the_clean_input():
    m = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    m.layers[0].kernel.assign(np.eye(4, 3, dtype="float32"))
    m.layers[0].bias.assign(np.zeros(3, "float32"))
    x = np.array([[0.0, 0.01, 0.0, 0.0]], "float32")  # output 1 is largest, barely
    got = kp.create_analyzer("smoothgrad", m, noise_scale=3.0, augment_by_n=32,
                             seed=1).analyze(x)
    # Linear model: every noisy copy has gradient W[:, k] for the chosen k = 1.
    assert_close(got, np.eye(4, 3, dtype="float32")[:, 1][None])


def _ig_oracle(fn, x, ref, steps, index):
    grads = []
    for k in range(steps):
        point = ref + (k / steps) * (x - ref)
        grads.append(tape_gradient(fn, point.astype("float32"), "index", index))
    return (x - ref) * np.mean(grads, axis=0)


def test_integrated_gradients_closed_form():
    """For y = w^T relu(x): IG_i = (x_i - r_i) w_i mean_k [r_i + a_k (x_i - r_i) > 0],
    a_k = k / steps (left Riemann sum)."""
    w = np.array([1.0, -2.0, 0.5, 3.0], "float32")
    m = _relu_linear_model(w)
    x = np.array([[1.0, 0.5, -1.0, 2.0]], "float32")
    ref = np.array([-1.0, -1.0, 1.0, 0.5], "float32")
    steps = 7
    alphas = np.arange(steps) / steps
    active = (ref[None, :, None] + alphas * (x - ref)[:, :, None]) > 0
    expected = (x - ref) * w * active.mean(axis=-1)
    got = kp.create_analyzer("integrated_gradients", m, reference_inputs=ref,
                             steps=steps).analyze(x)
    assert_close(got, expected)


def test_integrated_gradients_equals_tape_average_on_a_cnn():
    keras.utils.set_random_seed(4)
    m = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                          layers.MaxPooling2D(), layers.Flatten(), layers.Dense(4)])
    x = np.random.default_rng(3).normal(size=(3, 6, 6, 2)).astype("float32")
    ref = np.full((6, 6, 2), 0.25, "float32")
    index = np.argmax(m(x).numpy(), axis=1)  # chosen on the input itself
    got = kp.create_analyzer("integrated_gradients", m, reference_inputs=ref,
                             steps=5).analyze(x)
    assert_close(got, _ig_oracle(m, x, ref, 5, index))
    a = kp.create_analyzer("integrated_gradients", m, steps=4, neuron_selection_mode="index")
    assert_close(a.analyze(x, neuron_selection=[1, 2, 3]),
                 _ig_oracle(m, x, np.zeros_like(ref), 4, [1, 2, 3]))


def test_integrated_gradients_completeness():
    """sum(IG) -> f(x) - f(ref) as the path integral is resolved."""
    m = keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="tanh"), layers.Dense(2)])
    x = np.random.default_rng(5).normal(size=(3, 5)).astype("float32")
    index = np.argmax(m(x).numpy(), axis=1)
    ig = kp.create_analyzer("integrated_gradients", m, steps=512).analyze(x)
    y = m(x).numpy()[np.arange(3), index]
    y0 = m(np.zeros_like(x)).numpy()[np.arange(3), index]
    np.testing.assert_allclose(ig.sum(axis=1), y - y0, rtol=2e-2, atol=1e-3)


def test_wrappers_refuse_an_embedding_of_computed_ids():
    """Token inputs are explained in embedding space (tests/test_token_inputs.py); ids that
    reach an Embedding through another layer have no embedding output to modify."""
    i = keras.Input((4,), dtype="int32")
    ids = layers.Reshape((2, 2), name="regroup")(i)
    h = layers.Flatten()(layers.Embedding(10, 3, name="lookup")(ids))
    m = keras.Model(i, layers.Dense(2)(h))
    for name in ("smoothgrad", "integrated_gradients", "vargrad", "squaregrad"):
        with pytest.raises(kp.NotAnalyzableModelError, match="'lookup'.*computed tensor"):
            kp.create_analyzer(name, m)


def test_parameter_errors():
    m = _relu_linear_model([1.0, 2.0])
    with pytest.raises(ValueError, match="steps"):
        kp.create_analyzer("integrated_gradients", m, steps=0)
    with pytest.raises(ValueError, match="augment_by_n"):
        kp.create_analyzer("smoothgrad", m, augment_by_n=0)


def test_select_oracle_is_one_hot():
    y = np.array([[1.0, 3.0, 2.0]])
    assert np.array_equal(select(y, "max_activation"), [[0, 1, 0]])


def test_a_float64_model_is_explained_in_float64():
    """The copies' weights take the gradients' dtype (a float64 model failed)."""
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((4,), dtype="float64"),
                          layers.Dense(3, activation="tanh", dtype="float64"),
                          layers.Dense(2, dtype="float64")])
    x = np.random.default_rng(1).normal(size=(2, 4))
    index = np.argmax(m(x).numpy(), axis=1)
    got = kp.create_analyzer("integrated_gradients", m, steps=4).analyze(x)
    grads = [tape_gradient(m, k / 4 * x, "index", index) for k in range(4)]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, x * np.mean(grads, axis=0), rtol=1e-12)
    for name in ("smoothgrad", "vargrad", "squaregrad"):
        e = kp.create_analyzer(name, m, augment_by_n=3, seed=0).analyze(x)
        assert e.dtype == np.float64 and np.isfinite(e).all()
