"""Localisation, complexity and robustness metrics against numpy on known cases."""

import keras
import numpy as np
import pytest
from keras import layers

from keras_patterns.evaluate import (
    average_stability,
    complexity,
    max_sensitivity,
    pointing_game,
    relevance_rank_accuracy,
    sensitivity,
    sparseness,
)


def test_rank_accuracy_and_pointing_game_on_hand_made_maps():
    r = np.array([[5.0, 1.0, 4.0, 0.0, -9.0], [0.0, 3.0, 1.0, 2.0, 0.5]])
    mask = np.array([[1, 0, 0, 0, 1], [0, 1, 1, 1, 0]], bool)
    # sample 0: K = 2, top-2 are features 0 and 2: one inside; top-1 is 0: inside
    # sample 1: K = 3, top-3 are 1, 3, 2: all inside; top-1 is 1: inside
    assert np.allclose(relevance_rank_accuracy(r, mask), [0.5, 1.0])
    assert list(pointing_game(r, mask)) == [True, True]
    assert list(pointing_game(r, ~mask)) == [False, False]


def test_image_channels_are_summed_into_pixels():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(3, 4, 4, 3))
    mask = rng.random((3, 4, 4)) > 0.6
    pixels = r.sum(-1).reshape(3, -1)
    expected = [mask[i].reshape(-1)[np.argsort(-pixels[i], kind="stable")[:mask[i].sum()]]
                .mean() for i in range(3)]
    assert np.allclose(relevance_rank_accuracy(r, mask), expected)
    with pytest.raises(ValueError, match="does not match"):
        pointing_game(r, mask[:, :3])


def test_complexity_is_the_entropy_and_sparseness_the_gini_index():
    one = np.zeros((1, 8))
    one[0, 3] = -2.0
    uniform = np.ones((1, 8))
    assert complexity(one)[0] == 0.0 and np.isclose(complexity(uniform)[0], np.log(8))
    a = np.abs(np.random.default_rng(1).normal(size=(4, 10)))
    p = a / a.sum(1, keepdims=True)
    assert np.allclose(complexity(-a), -(p * np.log(p)).sum(1))
    # Gini by its definition: mean absolute difference over twice the mean
    gini = [np.abs(row[:, None] - row[None, :]).sum() / (2 * len(row) ** 2 * row.mean())
            for row in a]
    assert np.allclose(sparseness(a), gini)
    assert sparseness(uniform)[0] == 0.0 and np.isclose(sparseness(one)[0], 1 - 1 / 8)
    assert complexity(np.zeros((1, 4)))[0] == 0.0 and sparseness(np.zeros((1, 4)))[0] == 0.0


@pytest.fixture(scope="module")
def linear():
    """f(x) = x W: its gradient does not move, input times gradient moves with x."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,))
    model = keras.Model(inp, layers.Dense(3, use_bias=False)(inp))
    return model


def test_the_gradient_of_a_linear_model_does_not_move(linear):
    x = np.random.default_rng(2).normal(size=(4, 5)).astype("float32")
    assert np.allclose(max_sensitivity("gradient", linear, x, radius=0.5), 0.0, atol=1e-6)


def test_input_times_gradient_moves_by_the_numpy_ratio(linear):
    x = np.random.default_rng(3).normal(size=(4, 5)).astype("float32")
    w = linear.weights[0].numpy()
    index = (x @ w).argmax(1)
    result = sensitivity("input_t_gradient", linear, x, radius=0.1, n_samples=6, seed=7,
                         batch_size=5)
    # the same draws, in the same order: chunks of batch_size // n_samples samples
    rng = np.random.default_rng(7)
    expected = []
    for i in range(4):
        delta = rng.uniform(-0.1, 0.1, size=(1, 6, 5))[0]
        g = w[:, index[i]]
        base = x[i] * g
        moved = (x[i] + delta).astype(np.float32) * g
        expected.append(np.linalg.norm(moved - base, axis=1) / np.linalg.norm(base))
    assert np.allclose(result.ratios, expected, rtol=1e-4)
    assert np.allclose(max_sensitivity("input_t_gradient", linear, x, radius=0.1,
                                       n_samples=6, seed=7, batch_size=5),
                       np.max(expected, axis=1), rtol=1e-4)
    assert np.allclose(average_stability("input_t_gradient", linear, x, radius=0.1,
                                         n_samples=6, seed=7, batch_size=5),
                       np.mean(expected, axis=1), rtol=1e-4)
