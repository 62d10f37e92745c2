"""AttnLRP and CP-LRP on transformers, against tape oracles and closed forms.

The oracles (`transformer_oracles`): a copy of the encoder computed by hand whose gradient
is modified as each treatment's rules say; input × its tape gradient is the relevance.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close
from transformer_oracles import encoder, randomize, relevance_copy, tape_relevance

import keras_patterns as kp


def _x(shape=(5, 8), n=3, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


@pytest.fixture(scope="module")
def fused():
    return encoder(seed=0)


@pytest.mark.parametrize("method, treatment", [("cp_lrp", "cp"), ("attnlrp", "attnlrp")])
def test_relevance_equals_input_times_the_gradient_of_the_modified_copy(fused, method,
                                                                        treatment):
    x = _x()
    analyzer = kp.create_analyzer(method, fused, neuron_selection_mode="index")
    got = analyzer.analyze(x, neuron_selection=2)
    expected = tape_relevance(relevance_copy(fused, treatment), x, 2)
    assert_close(got, expected, rtol=2e-4)


@pytest.mark.parametrize("method", ["cp_lrp", "attnlrp"])
def test_traced_attention_equals_fused_attention(fused, method):
    # with dropout, Keras' MultiHeadAttention computes softmax(QKᵀ)V with einsum and a
    # Softmax layer (products and a softmax in the graph) instead of one fused operation
    traced = encoder(seed=0, dropout=0.1)
    x = _x()
    assert any(n.layer_class == "Einsum" for n in
               kp.create_analyzer(method, traced).graph.nodes)
    assert any(n.layer_class == "DotProductAttention" for n in
               kp.create_analyzer(method, fused).graph.nodes)
    assert_close(traced(x), fused(x))
    a = kp.create_analyzer(method, fused, neuron_selection_mode="index")
    b = kp.create_analyzer(method, traced, neuron_selection_mode="index")
    assert_close(b.analyze(x, neuron_selection=0), a.analyze(x, neuron_selection=0),
                 rtol=2e-4)


def test_cp_lrp_conserves_the_logit_less_what_the_biases_absorb():
    model = encoder(seed=3)
    for w in model.weights:  # no bias, no β: nothing absorbs relevance
        if w.path.endswith("bias") or w.path.endswith("beta"):
            w.assign(np.zeros(w.shape, w.dtype))
    x = _x()
    got = kp.create_analyzer("cp_lrp", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=1)
    assert_close(got.reshape(len(x), -1).sum(1), model(x).numpy()[:, 1], rtol=1e-4)


def test_rms_scaled_layer_norm_holds_its_scale(fused):
    model = encoder(seed=4, rms=True)
    x = _x()
    got = kp.create_analyzer("cp_lrp", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=0)
    assert_close(got, tape_relevance(relevance_copy(model, "cp"), x, 0), rtol=2e-4)


def test_a_composite_mixes_the_treatments_per_layer():
    model = encoder(seed=0)
    x = _x()
    mixed = kp.create_analyzer("lrp", model, rule=[("mha*", "attnlrp")],
                               neuron_selection_mode="index")
    assert_close(mixed.analyze(x, neuron_selection=1),
                 kp.create_analyzer("attnlrp", model, neuron_selection_mode="index")
                 .analyze(x, neuron_selection=1), rtol=1e-5)
    # every other LRP analyzer treats attention as CP-LRP does
    assert_close(kp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
                 .analyze(x, neuron_selection=1),
                 kp.create_analyzer("cp_lrp", model, neuron_selection_mode="index")
                 .analyze(x, neuron_selection=1), rtol=1e-5)


# -- each rule on one operation, against its closed form ------------------------------------

def _one_op(shape, op):
    inp = keras.Input(shape)
    return keras.Model(inp, layers.Flatten()(op(inp)))


def test_softmax_under_attnlrp_is_its_deep_taylor_decomposition_at_the_input():
    model = _one_op((6,), layers.Softmax())
    x = _x((6,), n=4)
    y = tf.nn.softmax(x).numpy()
    j = 2
    got = kp.create_analyzer("attnlrp", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=j)
    r_out = np.zeros_like(y)
    r_out[:, j] = y[:, j]  # the start: the explained output's value
    expected = x * (r_out - y * r_out.sum(1, keepdims=True))
    assert_close(got, expected, rtol=1e-5)
    held = kp.create_analyzer("cp_lrp", model, neuron_selection_mode="index")
    assert np.all(held.analyze(x, neuron_selection=j) == 0)  # a gate under CP


def test_a_product_of_two_activations_splits_its_relevance_in_halves():
    a_in, b_in = keras.Input((3, 4)), keras.Input((4, 2))
    out = layers.Flatten()(keras.ops.matmul(layers.Dense(4, name="a")(a_in),
                                            layers.Dense(2, name="b")(b_in)))
    model = randomize(keras.Model([a_in, b_in], out), 5)
    xa, xb = _x((3, 4), n=2), _x((4, 2), n=2, seed=2)
    j = 3
    ra, rb = kp.create_analyzer("attnlrp", model, neuron_selection_mode="index").analyze(
        [xa, xb], neuron_selection=j)
    # numpy: A = xa Wa + ba, B = xb Wb + bb, y = A B; R_A = ½ A ⊙ (R/y) Bᵀ, then LRP-0
    la, lb = model.get_layer("a"), model.get_layer("b")
    wa, ba = la.kernel.numpy(), la.bias.numpy()
    wb, bb = lb.kernel.numpy(), lb.bias.numpy()
    A, B = xa @ wa + ba, xb @ wb + bb
    y = (A @ B).reshape(2, -1)
    s = np.zeros_like(y)
    s[:, j] = 1.0  # R / y at the explained output (R = y there)
    s = s.reshape(2, 3, 2)
    rA = 0.5 * A * (s @ np.swapaxes(B, 1, 2))
    rB = 0.5 * B * (np.swapaxes(A, 1, 2) @ s)
    expected_a = xa * ((rA / (xa @ wa + ba)) @ wa.T)
    expected_b = xb * ((rB / (xb @ wb + bb)) @ wb.T)
    assert_close(ra, expected_a, rtol=1e-4)
    assert_close(rb, expected_b, rtol=1e-4)
    assert_close(rA.sum() + rB.sum(), y[:, j].sum(), rtol=1e-5)  # the product conserves


def test_layer_norm_rule_matches_its_numpy_closed_form():
    model = randomize(_one_op((4, 6), layers.LayerNormalization(name="ln")), 6)
    x = _x((4, 6), n=2)
    j = 7
    got = kp.create_analyzer("cp_lrp", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=j)
    ln = model.get_layer("ln")
    gamma, beta = ln.gamma.numpy(), ln.beta.numpy()
    mu = x.mean(-1, keepdims=True)
    sigma = np.sqrt(x.var(-1, keepdims=True) + ln.epsilon)
    y = ((x - mu) / sigma * gamma + beta).reshape(2, -1)
    s = np.zeros_like(y)
    s[:, j] = 1.0
    s = s.reshape(x.shape)
    # with σ fixed, y = γ (x - mean(x)) / σ + β is linear: Jᵀ s = γ s / σ, centred
    g = gamma * s / sigma
    g = g - g.mean(-1, keepdims=True)
    assert_close(got, x * g, rtol=1e-4)
    # the relevance the rule passes plus β's share is the explained value
    assert_close(got.reshape(2, -1).sum(1) + beta.reshape(-1)[j % 6], y[:, j], rtol=1e-4)


def test_gelu_passes_relevance_unchanged():
    model = randomize(_one_op((5,), layers.Dense(5, activation="gelu", name="d")), 7)
    x = _x((5,), n=3)
    d = model.get_layer("d")
    z = x @ d.kernel.numpy() + d.bias.numpy()
    y = z * 0.5 * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))
    j = 1
    got = kp.create_analyzer("attnlrp", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=j)
    expected = x * d.kernel.numpy()[:, j] * (y[:, j] / z[:, j])[:, None]  # LRP-0 of R = y
    assert_close(got, expected, rtol=1e-4)


def test_the_books_of_attnlrp_add_up_and_each_entry_is_the_copy_s(fused):
    from transformer_oracles import kept_by_copy

    x = _x()
    analyzer = kp.create_analyzer("attnlrp", fused, neuron_selection_mode="index")
    books = analyzer.relevance_budget(x, neuron_selection=2)
    assert_close(books["explained"], fused(x).numpy()[:, 2], rtol=1e-5)
    total = sum(v for k, v in books.items() if k != "explained")
    assert_close(total, books["explained"], rtol=1e-4)  # the books balance
    inputs = [k for k in books if k.startswith("input:")]
    assert_close(books[inputs[0]], analyzer.analyze(x, neuron_selection=2).reshape(3, -1)
                 .sum(1), rtol=1e-5)
    expected = kept_by_copy(fused, x, 2)
    attention = next(k for k in books if k.endswith("dot_product_attention"))
    for name, key in (("head", "head"), ("ff1", "ff1"), ("ff2", "ff2"),
                      ("attention", attention)):
        assert_close(books[key], expected[name], rtol=5e-4)


@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp"])
def test_the_gradient_form_equals_the_relevance_form(fused, method):
    x = _x()
    fast = kp.create_analyzer(method, fused, neuron_selection_mode="index")
    assert fast._gradient_form  # LRP-0 everywhere: the modified gradient is carried
    slow = kp.create_analyzer(method, fused, neuron_selection_mode="index")
    slow._gradient_form = False  # relevance carried layer by layer
    assert_close(fast.analyze(x, neuron_selection=1), slow.analyze(x, neuron_selection=1),
                 rtol=1e-4)
    epsilon = kp.create_analyzer(method, fused, rule="epsilon")
    assert not epsilon._gradient_form


@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp"])
def test_a_key_without_signal_passes_its_part_to_the_query_fused_as_traced(method):
    """Keys computed from a constant carry no signal: the uniform rule at QKᵀ then gives the
    query all of the scores' relevance, in the fused operation as in einsum + softmax."""
    x = _x()
    out = {}
    for dropout in (0.0, 0.1):
        keras.utils.set_random_seed(8)
        inp = keras.Input((5, 8))
        keys = layers.Dense(8, name="keys")(keras.ops.ones_like(inp))  # no signal
        a = layers.MultiHeadAttention(2, 4, dropout=dropout, name="mha")(inp, inp, key=keys)
        model = randomize(keras.Model(inp, layers.Dense(3)(layers.Flatten()(a))), 9)
        out[dropout] = kp.create_analyzer(method, model, neuron_selection_mode="index") \
            .analyze(x, neuron_selection=2)
    assert np.any(out[0.0] != 0)
    assert_close(out[0.1], out[0.0], rtol=1e-4)
