"""Oracle test matrix: every method on every layer kind equals an independent computation.

Each case (tests/layer_cases.py) is a tiny model (seeded weights, non-zero biases,
non-trivial BatchNormalization statistics) around one layer kind, with a rectifier somewhere
so that DeConvNet and Guided Backprop differ from the gradient. References (see `oracles.py`):

- gradient: `tf.GradientTape` over the model (softmax-free);
- input_t_gradient: x times that gradient;
- deconvnet / guided_backprop: a tape over a copy of the model whose rectifiers carry the
  method's gradient through `tf.custom_gradient`.

Cases whose activation is not a rectifier check the gradient family, and that DeConvNet and
Guided Backprop refuse the model naming the layer. Models are built once per module and shared
by the tests.
"""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers as L  # noqa: E402
from layer_cases import (  # noqa: E402
    CASES,
    CHANNELS_FIRST_CASES,
    METHODS,
    N_SAMPLES,
    RECTIFIER_METHODS,
    get_case,
)
from oracles import (  # noqa: E402
    assert_close,
    logits_model,
    rectifier_model,
    tape_gradient,
)

import keras_patterns as kp  # noqa: E402

# -- helpers for the references ---------------------------------------------------------------


def _clipped_rectifier(kind, max_value):
    """relu (clipped at `max_value` unless None) with the DeConvNet or Guided Backprop
    gradient: the signal passes where it is positive (and, for Guided Backprop, where the
    forward unit is on the linear part of the rectifier)."""

    @tf.custom_gradient
    def rectifier(x):
        y = tf.nn.relu(x) if max_value is None else tf.clip_by_value(x, 0.0, max_value)

        def grad(dy):
            positive = tf.cast(dy > 0, dy.dtype)
            if kind == "deconvnet":
                return dy * positive
            active = x > 0 if max_value is None else (x > 0) & (x < max_value)
            return dy * positive * tf.cast(active, dy.dtype)

        return y, grad

    return rectifier


_CAPS = {"relu": None, "relu6": 6.0}


def clipped_rectifier_model(model, kind):
    """Like `oracles.rectifier_model`, also for ReLU(max_value=...) layers and relu6."""

    def clone(layer):
        if isinstance(layer, L.ReLU):
            assert not layer.negative_slope and not layer.threshold
            cap = None if layer.max_value is None else float(layer.max_value)
            return L.Activation(_clipped_rectifier(kind, cap), name=layer.name)
        new = layer.__class__.from_config(layer.get_config())
        name = getattr(getattr(layer, "activation", None), "__name__", "")
        if name in _CAPS:
            new.activation = _clipped_rectifier(kind, _CAPS[name])
        return new

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy




_REFERENCES = {}
_ANALYZERS = {}


def reference(case, method, mode="max_activation", index=None):
    """The independent computation for `method` on `case` (cached per selection)."""
    key = (id(case), method, mode, None if index is None else tuple(np.ravel(index)))
    if key not in _REFERENCES:
        if method in ("gradient", "input_t_gradient"):
            g = tape_gradient(logits_model(case.reference), case.x, mode, index)
            value = g * case.x if method == "input_t_gradient" else g
        else:
            build = clipped_rectifier_model if case.clipped else rectifier_model
            value = tape_gradient(build(case.reference, method), case.x, mode, index)
        _REFERENCES[key] = value
    return _REFERENCES[key]


def check(name, method, mode="max_activation", selection=None):
    case = get_case(name)
    if case.refused and method in RECTIFIER_METHODS:
        with pytest.raises(kp.NotAnalyzableModelError, match=re.escape(f"'{case.refused}")):
            kp.create_analyzer(method, case.model, neuron_selection_mode=mode)
        return
    key = (name, method, mode)
    if key not in _ANALYZERS:  # index-mode tests share one analyzer (and its trace)
        _ANALYZERS[key] = kp.create_analyzer(method, case.model, neuron_selection_mode=mode)
    explanation = _ANALYZERS[key].analyze(case.x, neuron_selection=selection)
    assert explanation.shape == case.x.shape
    assert_close(explanation, reference(case, method, mode, selection))
    if method in RECTIFIER_METHODS:
        # the case is informative: the method differs from the gradient somewhere
        gradient = reference(case, "gradient", mode, selection)
        assert not np.allclose(explanation, gradient, rtol=0, atol=1e-6), name


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(CASES))
def test_max_activation(name, method):
    check(name, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(CHANNELS_FIRST_CASES))
def test_channels_first(name, method):
    check(name, method)


INDEX_CASES = (
    "dense_rank3", "conv1d_causal", "conv2d_strides_same", "conv2d_transpose_same",
    "separable2d", "max_pool2d_same", "global_avg_pool2d", "batchnorm_conv",
    "relu_max_value_6", "tanh", "add", "maximum", "dropout",
)


@pytest.mark.parametrize("selection", ["int", "per_sample", "all"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", INDEX_CASES)
def test_neuron_selection(name, method, selection):
    case = get_case(name)
    n_out = int(np.prod(case.model.outputs[0].shape[1:]))
    if selection == "all":
        check(name, method, mode="all")
    elif selection == "int":
        check(name, method, mode="index", selection=n_out - 1)
    else:
        per_sample = [(3 * i + 1) % n_out for i in range(N_SAMPLES)]
        check(name, method, mode="index", selection=per_sample)


# -- inputs the tests above do not cover ---------------------------------------------------------
