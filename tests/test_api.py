"""The public API: names, descriptions, errors."""

import keras
import numpy as np
import pytest
from keras import layers

import keras_patterns as kp

ENGINE_METHODS = {"gradient", "input_t_gradient", "smoothgrad", "integrated_gradients",
                  "deconvnet", "guided_backprop", "input", "random"}


def test_public_names():
    assert isinstance(kp.__version__, str) and kp.__version__.count(".") == 2
    assert issubclass(kp.NotAnalyzableModelError, ValueError)
    names = kp.list_analyzers()
    assert ENGINE_METHODS <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())


def test_unknown_analyzer_lists_the_names():
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(KeyError, match="gradient"):
        kp.create_analyzer("gradiant", m)


def test_unknown_parameter_is_an_error():
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(TypeError):
        kp.create_analyzer("gradient", m, noise=1)
    with pytest.raises(ValueError, match="postprocess"):
        kp.create_analyzer("gradient", m, postprocess="cube")


def test_input_and_random_baselines():
    m = keras.Sequential([keras.Input((3, 2)), layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(500, 3, 2)).astype("float32")
    assert np.array_equal(kp.create_analyzer("input", m).analyze(x), x)
    r = kp.create_analyzer("random", m, stddev=2.0, seed=3).analyze(x)
    assert r.shape == x.shape
    assert abs(r.std() - 2.0) < 0.1 and abs(r.mean()) < 0.1
    r2 = kp.create_analyzer("random", m, stddev=2.0, seed=3).analyze(x)
    assert np.array_equal(r, r2)


def test_no_output_on_stdout(capfd):
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    kp.create_analyzer("gradient", m).analyze(np.ones((2, 3), "float32"))
    out, _ = capfd.readouterr()
    assert out == ""
