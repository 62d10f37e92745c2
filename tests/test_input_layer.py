"""The input-layer rule behind preprocessing layers: the first kernel layer seen from the
input through element-wise affine layers (Rescaling, Normalization), reshapes, padding and
dropout is the input layer. Oracle: the numpy LRP walker (tests/lrp_reference.py) on the
same network without its preprocessing, fed the preprocessed input, with the bounds mapped
into the preprocessed units; the preprocessing passes the relevance unchanged."""

import keras
import numpy as np
import pytest
from keras import layers
from lrp_reference import RULES, P, reference, rule_bounded, walk
from oracles import assert_close

import keras_patterns as kp
from keras_patterns.rules.lrp import Bounded, Flat, Pass


def _body():
    return [layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(5, activation="relu"), layers.Dense(3)]


def _pair(preprocessing):
    """(model with the preprocessing, the same layers without it)."""
    keras.utils.set_random_seed(0)
    body = _body()
    with_pre = keras.Sequential([keras.Input((8, 8, 2))] + preprocessing + body)
    without = keras.Sequential([keras.Input((8, 8, 2))] + body)
    return with_pre, without


def _pixels(n=4):
    return np.random.default_rng(1).uniform(0, 255, size=(n, 8, 8, 2)).astype("float32")


def _normalization():
    norm = layers.Normalization(mean=[100.0, 30.0], variance=[900.0, 400.0])
    return norm, np.array([100.0, 30.0]), np.sqrt([900.0, 400.0])


def test_rescaling_with_the_flat_preset_and_the_rules_it_reports():
    model, bare = _pair([layers.Rescaling(1 / 255.0), layers.Dropout(0.5)])
    x = _pixels()
    for name in ("lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat"):
        analyzer = kp.create_analyzer(name, model)
        rules = analyzer.rules()
        assert isinstance(rules[model.layers[2].name], Flat)
        assert isinstance(rules[model.layers[0].name], Pass)
        assert_close(analyzer.analyze(x), reference(name, bare, x / 255.0))
        plain = kp.create_analyzer(name.replace("_flat", ""), model).analyze(x)
        assert np.abs(analyzer.analyze(x) - plain).max() > 1e-3 * np.abs(plain).max()


def test_bounds_in_model_units_are_mapped_through_rescaling():
    model, bare = _pair([layers.Rescaling(2 / 255.0, offset=-1.0)])
    x = _pixels()
    got = kp.create_analyzer("deep_taylor.bounded", model, low=0.0, high=255.0).analyze(x)
    want = reference("deep_taylor.bounded", bare, x * 2 / 255.0 - 1.0, low=-1.0, high=1.0)
    assert_close(got, want)


def test_bounds_are_mapped_per_channel_through_normalization_and_padding():
    norm, mean, std = _normalization()
    model, bare = _pair([norm, layers.ZeroPadding2D(1), layers.Cropping2D(1)])
    x = _pixels()
    got = kp.create_analyzer("lrp.z", model, input_layer_rule=(0.0, 255.0)).analyze(x)
    low, high = (0.0 - mean) / std, (255.0 - mean) / std  # per channel
    want = walk(bare, (x - mean) / std,
                lambda step: P(rule_bounded, low=low, high=high) if step["is_input"]
                else RULES["z"])
    assert_close(got, want)


def test_a_layer_between_that_is_no_preprocessing_keeps_the_layer_from_being_the_input_layer():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(3, 1), layers.ReLU(),
                              layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                              layers.Dense(3)])
    rules = kp.create_analyzer("lrp.sequential_preset_a_flat", model).rules()
    first, second = model.layers[0].name, model.layers[2].name
    assert isinstance(rules[first], Flat) and not isinstance(rules[second], Flat)


@pytest.mark.parametrize("rule", [(0.0, 255.0), Bounded(0.0, 255.0)])
def test_input_layer_rule_reaches_the_kernel_behind_rescaling(rule):
    model, _ = _pair([layers.Rescaling(1 / 255.0)])
    rules = kp.create_analyzer("lrp.epsilon", model, input_layer_rule=rule).rules()
    assert isinstance(rules[model.layers[1].name], Bounded)
