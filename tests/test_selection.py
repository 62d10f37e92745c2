"""Neuron selection (iNNvestigate semantics), batching and input checks.

Oracle: tf.GradientTape with the start mask of each mode built in numpy.
"""

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(3, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(5),
    ])


def _x(n=6):
    return np.random.default_rng(1).normal(size=(n, 6, 6, 2)).astype("float32")


def test_max_activation_is_default(model):
    x = _x()
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))


def test_index_int_and_per_sample(model):
    x = _x()
    a = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
    assert_close(a.analyze(x, neuron_selection=3), tape_gradient(model, x, "index", 3))
    per = [0, 4, 1, 1, 2, 3]
    assert_close(a.analyze(x, neuron_selection=per), tape_gradient(model, x, "index", per))
    assert_close(a.analyze(x, neuron_selection=np.array(per)),
                 tape_gradient(model, x, "index", per))


def test_all_mode_is_gradient_of_the_sum(model):
    x = _x()
    a = kp.create_analyzer("gradient", model, neuron_selection_mode="all")
    assert_close(a.analyze(x), tape_gradient(model, x, "all"))


def test_index_mode_errors(model):
    a = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
    x = _x()
    with pytest.raises(kp.InvalidInputError, match="needs analyze"):
        a.analyze(x)
    with pytest.raises(kp.InvalidInputError, match="3 indices for a batch of 6"):
        a.analyze(x, neuron_selection=[0, 1, 2])
    with pytest.raises(kp.InvalidInputError, match="out of range"):
        a.analyze(x, neuron_selection=5)
    with pytest.raises(kp.InvalidInputError, match="out of range"):
        a.analyze(x, neuron_selection=-1)
    with pytest.raises(kp.InvalidInputError, match="int"):
        a.analyze(x, neuron_selection=1.5)


def test_neuron_selection_refused_in_other_modes(model):
    a = kp.create_analyzer("gradient", model)
    with pytest.raises(kp.InvalidInputError, match="only used with"):
        a.analyze(_x(), neuron_selection=1)


def test_unknown_mode(model):
    with pytest.raises(ValueError, match="neuron_selection_mode"):
        kp.create_analyzer("gradient", model, neuron_selection_mode="max")


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_batches_are_complete_and_independent_of_batch_size(model, batch_size):
    x = _x(9)
    a = kp.create_analyzer("gradient", model, neuron_selection_mode="index",
                           batch_size=batch_size)
    per = list(range(5)) + list(range(4))
    got = a.analyze(x, neuron_selection=per)
    assert got.shape == x.shape  # never cut to one sample
    assert_close(got, tape_gradient(model, x, "index", per))


def test_input_shape_errors(model):
    a = kp.create_analyzer("gradient", model)
    with pytest.raises(kp.InvalidInputError, match=r"expects shape \('batch', 6, 6, 2\)"):
        a.analyze(np.zeros((2, 5, 6, 2), "float32"))
    with pytest.raises(kp.InvalidInputError, match="one input .*a list of 2 items"):
        a.analyze([_x(), _x()])
    with pytest.raises(kp.InvalidInputError, match="empty"):
        a.analyze(np.zeros((0, 6, 6, 2), "float32"))


def test_multidimensional_output_is_flattened_per_sample():
    keras.utils.set_random_seed(3)
    i = keras.Input((5, 3))
    m = keras.Model(i, layers.Dense(4)(layers.Dense(6, activation="relu")(i)))  # (B, 5, 4)
    x = np.random.default_rng(2).normal(size=(3, 5, 3)).astype("float32")
    assert_close(kp.create_analyzer("gradient", m).analyze(x), tape_gradient(m, x))
    a = kp.create_analyzer("gradient", m, neuron_selection_mode="index")
    assert_close(a.analyze(x, neuron_selection=[0, 7, 19]),
                 tape_gradient(m, x, "index", [0, 7, 19]))


def test_a_float64_model_starts_from_its_float64_value():
    """The start value y is not rounded to float32: LRP-0 of a linear float64 model is x W
    to float64 precision."""
    import keras
    import numpy as np

    import keras_patterns as kp

    inp = keras.Input((6,), dtype="float64")
    dense = keras.layers.Dense(3, use_bias=False, dtype="float64")
    model = keras.Model(inp, dense(inp))
    x = np.random.default_rng(0).normal(size=(4, 6))
    got = kp.create_analyzer("lrp.z", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=0)
    expected = x * dense.kernel.numpy()[:, 0]
    assert np.max(np.abs(got - expected)) < 1e-12
