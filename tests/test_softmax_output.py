"""roles.softmax_output: the one decision whether a layer, an operation or a model ends in
a softmax, on every way Keras writes one, checked against the model's own outputs."""

import keras
import numpy as np
import pytest
from keras import layers

from keras_patterns.roles import softmax_output


def _model(last, nested=False):
    inp = keras.Input((4,))
    h = layers.Dense(3)(inp)
    out = last(h)
    model = keras.Model(inp, out)
    if nested:
        outer_in = keras.Input((4,))
        model = keras.Model(outer_in, model(outer_in))
    return model


CASES = [
    (layers.Softmax(), "layer", "layer"),
    (layers.Activation("softmax"), "layer", "layer"),
    (layers.Dense(2, activation="softmax"), "layer", "layer"),
    (layers.Activation("log_softmax"), None, "layer"),
    (layers.Dense(2, activation="log_softmax"), None, "layer"),
    (lambda h: keras.ops.softmax(h), "op", "op"),
    (lambda h: keras.ops.log_softmax(h), None, "op"),
    (layers.Activation("relu"), None, None),
    (layers.Dense(2), None, None),
    (lambda h: keras.ops.exp(h), None, None),
]


@pytest.mark.parametrize("last, plain, with_log", CASES)
@pytest.mark.parametrize("nested", [False, True])
def test_every_way_keras_writes_a_softmax(last, plain, with_log, nested):
    model = _model(last, nested)
    assert softmax_output(model) == plain
    assert softmax_output(model, log=True) == with_log
    y = np.asarray(model(np.random.default_rng(0).normal(size=(5, 4)).astype("float32")))
    # the oracle: a softmax's rows sum to one, a log-softmax's exponentials do
    assert np.allclose(y.sum(-1), 1, atol=1e-5) == (plain is not None)
    assert np.allclose(np.exp(y).sum(-1), 1, atol=1e-5) == (with_log is not None and
                                                           plain is None)


def test_outputs_that_end_differently_and_unreadable_models_give_none():
    inp = keras.Input((4,))
    h = layers.Dense(3)(inp)
    two = keras.Model(inp, [layers.Softmax()(h), layers.Dense(2)(h)])
    assert softmax_output(two) is None
    both = keras.Model(inp, [layers.Softmax()(h), layers.Dense(2, activation="softmax")(h)])
    assert softmax_output(both) == "layer"

    class Subclassed(keras.Model):
        def call(self, x):
            return keras.ops.softmax(x)

    assert softmax_output(Subclassed()) is None
