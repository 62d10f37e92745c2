"""The tape form of the reverse pass (`reverse.tape`) gives the reverse model's explanations.

The reverse model (one Keras layer per node, each with its own vector-Jacobian product) is
checked against independent oracles throughout the suite; the analyzers run the tape form
where it applies. Here both run on the same analyzer and inputs: every kind of reverse
layer (gradient forms, gates, shares, the identity rule, and the custom gradients of LRP
rules, patterns and rectifier rules), branches whose signals add up, every neuron
selection mode, token inputs. Where the tape form cannot carry a signal (an integer
tensor that receives one, half-precision tensors) the analyzer keeps the reverse model.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import layers as L
from oracles import assert_close
from transformer_oracles import encoder

import keras_patterns as kp
from keras_patterns.zoo.transformers import build_text


def _cnn():
    keras.utils.set_random_seed(3)
    x = keras.Input((8, 8, 2))
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)
    b = L.Conv2D(4, 1, name="branch")(h)
    h = L.Add()([h, L.ReLU()(b)])
    h = L.MaxPooling2D()(h)
    h = L.Dense(6, activation="relu", name="d1")(L.Flatten()(h))
    return keras.Model(x, L.Dense(3, name="out")(h))


def _inputs(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    spec = model.inputs[0]
    if "int" in str(spec.dtype):
        return rng.integers(1, 20, size=(n,) + tuple(spec.shape[1:])).astype("int32")
    return rng.normal(size=(n,) + tuple(spec.shape[1:])).astype("float32")


def _pair(name, model, x, **kwargs):
    """The same analyzer twice: the tape form, and the reverse model forced."""
    if name.startswith("pattern."):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random data leaves dead units
            kwargs["patterns"] = kp.compute_patterns(model, x, batch_size=len(x))
    tape = kp.create_analyzer(name, model, **kwargs)
    layered = kp.create_analyzer(name, model, **kwargs)
    layered._tape_pass = False  # the reverse model (what `tape_pass` falls back to)
    return tape, layered


CNN_METHODS = ["gradient", "input_t_gradient", "integrated_gradients", "guided_backprop",
               "deconvnet", "lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1", "deep_taylor",
               "pattern.attribution"]
ENCODER_METHODS = ["gradient", "attnlrp", "cp_lrp", "lrp.epsilon", "pattern.attribution",
                   "integrated_gradients"]


@pytest.mark.parametrize("name", CNN_METHODS)
def test_the_tape_form_equals_the_reverse_model_on_a_branched_cnn(name):
    model = _cnn()
    x = _inputs(model)
    tape, layered = _pair(name, model, x)
    assert tape.tape_pass is not None
    assert_close(tape.analyze(x), layered.analyze(x), rtol=1e-5)


@pytest.mark.parametrize("name", ENCODER_METHODS)
@pytest.mark.parametrize("mode", ["max_activation", "index", "all"])
def test_the_tape_form_equals_the_reverse_model_on_an_encoder(name, mode):
    model = encoder(seed=1)
    x = _inputs(model)
    tape, layered = _pair(name, model, x, neuron_selection_mode=mode)
    assert tape.tape_pass is not None
    index = [0, 2, 1, 0] if mode == "index" else None
    assert_close(tape.analyze(x, neuron_selection=index),
                 layered.analyze(x, neuron_selection=index), rtol=1e-5)


@pytest.mark.parametrize("name", ["attnlrp", "cp_lrp", "integrated_gradients",
                                  "input_t_gradient"])
def test_the_tape_form_on_token_inputs(name):
    model = build_text(tokens=6, width=8, heads=2, blocks=1)
    x = _inputs(model)
    tape, layered = _pair(name, model, x)
    assert tape.tape_pass is not None
    for per_dimension in (False, True):
        tape.per_dimension = layered.per_dimension = per_dimension
        assert_close(tape.analyze(x), layered.analyze(x), rtol=1e-5)


def test_an_embedding_of_computed_ids_keeps_the_reverse_model():
    """A token's signal (one value per computed id, `EmbeddingReverse`) cannot ride on a
    tape: the analyzer keeps the reverse model."""
    ids = keras.Input((5,), dtype="int32")
    clipped = L.Lambda(lambda v: keras.ops.minimum(v, 9), name="clip")(ids)
    e = L.Embedding(10, 4, name="lookup")(clipped)
    model = keras.Model(ids, L.Dense(2)(L.GlobalAveragePooling1D()(e)))
    analyzer = kp.create_analyzer("gradient", model, allow_lambda_layers=True)
    assert analyzer.tape_pass is None
    assert analyzer.analyze(_inputs(model)).shape == (4, 5)


def test_half_precision_keeps_the_reverse_model():
    keras.utils.set_random_seed(0)
    x = keras.Input((6,))
    h = L.Dense(5, activation="relu", dtype="mixed_float16")(x)
    model = keras.Model(x, L.Dense(2, dtype="float32")(h))
    tape, layered = _pair("gradient", model, _inputs(model))
    assert tape.tape_pass is None
