"""The gradient family explains any differentiable model: layers without a rule (recurrent,
attention, custom layers) are reversed by their vector-Jacobian product, and a subclassed
model by a plain tape, with the same neuron selection and batching. Oracle: tf.GradientTape
on the model itself."""

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp

GRADIENT_FAMILY = ["gradient", "input_t_gradient", "smoothgrad", "integrated_gradients"]


class Scale(layers.Layer):
    """A custom layer keras-patterns has no rule for."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return keras.ops.tanh(x) * self.w


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.a = layers.Dense(6, activation="relu")
        self.b = layers.Dense(3)

    def call(self, x):
        return self.b(self.a(x) * 2.0)


def _sequence_model(kind):
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 3))
    if kind == "lstm":
        h = layers.LSTM(4)(inp)
    elif kind == "gru":
        h = layers.GRU(4, return_sequences=True)(inp)
        h = layers.Flatten()(h)
    elif kind == "attention":
        h = layers.MultiHeadAttention(num_heads=2, key_dim=3)(inp, inp)
        h = layers.GlobalAveragePooling1D()(h)
    else:
        h = layers.Flatten()(Scale()(layers.Dense(4)(inp)))
    return keras.Model(inp, layers.Dense(3)(h))


def _expected(method, model, x, mode, index):
    g = tape_gradient(model, x, mode, index)
    if method == "gradient":
        return g
    return x * g


@pytest.mark.parametrize("kind", ["lstm", "gru", "attention", "custom"])
@pytest.mark.parametrize("mode,index", [("max_activation", None), ("index", [2, 0, 1, 2])])
@pytest.mark.parametrize("method", ["gradient", "input_t_gradient"])
def test_layers_without_a_rule_are_reversed_by_their_gradient(kind, mode, index, method):
    model = _sequence_model(kind)
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    analyzer = kp.create_analyzer(method, model, neuron_selection_mode=mode, batch_size=3)
    assert_close(analyzer.analyze(x, neuron_selection=index),
                 _expected(method, model, x, mode, index))


def test_smoothgrad_and_integrated_gradients_on_an_lstm():
    model = _sequence_model("lstm")
    x = np.random.default_rng(0).normal(size=(3, 5, 3)).astype("float32")
    ig = kp.create_analyzer("integrated_gradients", model, steps=4).analyze(x)
    index = np.argmax(model(x).numpy(), axis=1)
    mean = sum(tape_gradient(model, x * k / 4, "index", index) for k in range(4)) / 4
    assert_close(ig, x * mean)
    sg = kp.create_analyzer("smoothgrad", model, augment_by_n=3, noise_scale=1e-30,
                            seed=0).analyze(x)
    assert_close(sg, tape_gradient(model, x))


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet", "lrp.epsilon",
                                    "deep_taylor", "pattern.attribution"])
def test_methods_with_a_rule_per_layer_still_refuse_them(method):
    with pytest.raises(kp.NotAnalyzableModelError,
                       match=r"'lstm(_\d+)?' \(LSTM\).*gradient methods"):
        kp.create_analyzer(method, _sequence_model("lstm"))


@pytest.mark.parametrize("method", GRADIENT_FAMILY)
def test_a_subclassed_model_is_explained_with_a_tape(method):
    keras.utils.set_random_seed(0)
    model = Subclassed()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    model(x[:1])
    kwargs = {"augment_by_n": 2, "noise_scale": 1e-30, "seed": 0} if method == "smoothgrad" \
        else {"steps": 3} if method == "integrated_gradients" else {}
    got = kp.create_analyzer(method, model, batch_size=2, **kwargs).analyze(x)
    if method == "integrated_gradients":
        index = np.argmax(model(x).numpy(), axis=1)
        want = x * sum(tape_gradient(model, x * k / 3, "index", index) for k in range(3)) / 3
    elif method == "input_t_gradient":
        want = x * tape_gradient(model, x)
    else:
        want = tape_gradient(model, x)
    assert_close(got, want)


def test_a_subclassed_model_nested_in_a_functional_one():
    keras.utils.set_random_seed(0)
    inner = Subclassed()
    inp = keras.Input((4,))
    model = keras.Model(inp, layers.Dense(2)(inner(layers.Dense(4, activation="relu")(inp))))
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    analyzer = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
    assert_close(analyzer.analyze(x, neuron_selection=1), tape_gradient(model, x, "index",
                                                                         [1, 1, 1]))


def _layer_scale_model():
    from keras.src.applications.convnext import LayerScale

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    h = layers.Conv2D(4, 3, activation="relu", use_bias=False)(inp)
    h = LayerScale(0.5, 4)(h)
    h = layers.Flatten()(h)
    out = layers.Dense(3, use_bias=False)(layers.Dense(5, activation="relu", use_bias=False)(h))
    return keras.Model(inp, out)


def test_layer_scale_is_an_element_wise_affine_layer_for_the_rule_methods():
    """ConvNeXt's LayerScale: lrp.z through it conserves relevance on a bias-free ReLU net
    (sum of the input relevance = the explained output), and the gradient is the tape's."""
    model = _layer_scale_model()
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(4, 6, 6, 2)).astype("float32")
    relevance = kp.create_analyzer("lrp.z", model).analyze(x)
    y = model(x).numpy().max(axis=1)
    assert_close(relevance.reshape(4, -1).sum(axis=1), y, rtol=1e-4)
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))
    guided = kp.create_analyzer("guided_backprop", model).analyze(x)
    assert np.isfinite(guided).all()
