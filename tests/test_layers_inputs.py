"""The oracle test matrix continued (tests/test_layers.py): inputs its cases do not cover
(two model inputs, token inputs through an Embedding) and layers without a rule."""

import keras
import numpy as np
import pytest
from keras import layers as L
from layer_cases import METHODS, N_SAMPLES, RECTIFIER_METHODS, random_inputs, randomize
from oracles import assert_close, rectifier_model, tape_gradient

import keras_patterns as kp


def test_two_inputs():
    """A model with two inputs explains each of them."""
    keras.utils.set_random_seed(3)
    a_in, b_in = keras.Input((4,)), keras.Input((3,))
    a = L.Dense(5, activation="relu")(a_in)
    out = L.Dense(4)(L.Concatenate()([a, b_in]))
    model = randomize(keras.Model([a_in, b_in], out), 3)
    xs = [random_inputs((4,), 3), random_inputs((3,), 4)]
    for method in METHODS:
        got = kp.create_analyzer(method, model).analyze(xs)
        if method in RECTIFIER_METHODS:
            want = tape_gradient(rectifier_model(model, method), xs)
        else:
            want = tape_gradient(model, xs)
            if method == "input_t_gradient":
                want = [g * x for g, x in zip(want, xs)]
        assert len(got) == 2
        for g, w in zip(got, want):
            assert_close(g, w)


_EMBEDDING = {}


def _embedding_case():
    """tokens -> Embedding -> Conv1D(relu) -> Dense; `tail` maps the embedding output on."""
    if not _EMBEDDING:
        keras.utils.set_random_seed(5)
        tokens = keras.Input((6,), dtype="int32")
        embedded = L.Embedding(11, 4)(tokens)
        h = L.Conv1D(5, 2, activation="relu")(embedded)
        out = L.Dense(4)(L.Flatten()(h))
        model = randomize(keras.Model(tokens, out), 5)
        tail = keras.Model(embedded, out)  # shares the layers after the embedding
        x = np.random.default_rng(5).integers(0, 11, size=(N_SAMPLES, 6)).astype("int32")
        e = model.layers[1](x).numpy()
        _EMBEDDING.update(model=model, tail=tail, x=x, e=e)
    return _EMBEDDING


@pytest.mark.parametrize("mode", ["max_activation", "index"])
@pytest.mark.parametrize("method", METHODS)
def test_embedding(method, mode):
    """One value per token: the tape gradient at the embedding output summed over features
    (times the embedding vector for input_t_gradient)."""
    c = _embedding_case()
    index = [0, 3, 2] if mode == "index" else None
    got = kp.create_analyzer(method, c["model"], neuron_selection_mode=mode).analyze(
        c["x"], neuron_selection=index)
    tail = rectifier_model(c["tail"], method) if method in RECTIFIER_METHODS else c["tail"]
    g = tape_gradient(tail, c["e"], mode, index)
    want = (g * c["e"] if method == "input_t_gradient" else g).sum(axis=-1)
    assert got.shape == c["x"].shape
    assert_close(got, want)


def _unsupported_lstm():
    return keras.Sequential([keras.Input((4, 3)), L.LSTM(5, name="my_lstm"), L.Dense(2)])


def _unsupported_lambda():
    return keras.Sequential([keras.Input((4,)), L.Lambda(lambda t: t * 2.0, name="my_lambda"),
                             L.Dense(2)])


@pytest.mark.parametrize(
    "build, layer_name, layer_class, method",
    [(_unsupported_lstm, "my_lstm", "LSTM", m) for m in RECTIFIER_METHODS]
    + [(_unsupported_lstm, "my_lstm", "LSTM", m) for m in ("lrp.z", "pattern.net")]
    + [(_unsupported_lambda, "my_lambda", "Lambda", m) for m in METHODS],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_unsupported_layer(build, layer_name, layer_class, method):
    """Layers without a rule are refused by the methods that need one (the gradient family
    reverses them by their gradient: tests/test_any_layer.py); Lambda layers by every method
    unless allow_lambda_layers=True, as in iNNvestigate."""
    with pytest.raises(kp.NotAnalyzableModelError) as info:
        kp.create_analyzer(method, build())
    message = str(info.value)
    assert f"'{layer_name}'" in message and layer_class in message, message
