"""PatternNet and PatternAttribution through attention: the paper's guarantee on a linear
model with one attention layer of fixed attention (the toy of section 2, per token)."""

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close

import keras_patterns as kp

TOKENS, WIDTH = 4, 6


def _toy(seed=0, n=2000):
    """x_t = s_t a_s + d_t a_d per token; w reads the signal (wᵀa_s = 1, wᵀa_d = 0)."""
    rng = np.random.default_rng(seed)
    a_s = rng.normal(size=WIDTH)
    a_d = 0.9 * a_s + 0.5 * rng.normal(size=WIDTH)  # a distractor close to the signal
    w = np.linalg.lstsq(np.stack([a_s, a_d]), np.array([1.0, 0.0]), rcond=None)[0]
    s, d = rng.normal(size=(n, TOKENS, 1)), rng.normal(size=(n, TOKENS, 1))
    x = (s * a_s + d * a_d).astype("float32")
    return x, a_s, w


def _attention_model(w):
    """y = mean over tokens of (A V)_t with V = x w: one head of width 1, uniform attention
    (query and key kernels zero), the output projection and head reading that value."""
    keras.utils.set_random_seed(0)
    x = keras.Input((TOKENS, WIDTH))
    mha = layers.MultiHeadAttention(1, 1, use_bias=False, name="mha")
    h = mha(x, x)
    out = layers.Dense(1, use_bias=False, name="head")(layers.GlobalAveragePooling1D()(h))
    model = keras.Model(x, out)
    mha._query_dense.kernel.assign(np.zeros((WIDTH, 1, 1), "float32"))
    mha._key_dense.kernel.assign(np.zeros((WIDTH, 1, 1), "float32"))
    mha._value_dense.kernel.assign(w.reshape(WIDTH, 1, 1).astype("float32"))
    projection = np.zeros((1, 1, WIDTH), "float32")
    projection[0, 0, 0] = 1.0
    mha._output_dense.kernel.assign(projection)
    head = np.zeros((WIDTH, 1), "float32")
    head[0, 0] = 1.0
    model.get_layer("head").kernel.assign(head)
    return model


def _cosines(signal, direction):
    flat = signal.reshape(-1, WIDTH)
    return flat @ direction / (np.linalg.norm(flat, axis=1) * np.linalg.norm(direction))


@pytest.fixture(scope="module")
def toy():
    x, a_s, w = _toy()
    model = _attention_model(w)
    assert_close(model(x[:8]).numpy()[:, 0], (x[:8] @ w).mean(1), rtol=1e-4)
    return model, x, a_s, w


def test_patternnet_returns_the_planted_signal_of_every_token_through_attention(toy):
    model, x, a_s, w = toy
    analyzer = kp.create_analyzer("pattern.net", model, pattern_type="linear")
    analyzer.fit(x, batch_size=500)
    signal = analyzer.analyze(x[:16])
    assert np.all(np.abs(_cosines(signal, a_s)) > 0.999)
    # the gradient points along the filter w, not the signal (the toy is not trivial)
    gradient = kp.create_analyzer("gradient", model).analyze(x[:16])
    assert np.all(np.abs(_cosines(gradient, a_s)) < 0.99)
    # PatternAttribution: per token, the input times the back-projected signal along w ⊙ a_s
    attribution = kp.create_analyzer("pattern.attribution", model, pattern_type="linear",
                                     patterns=analyzer.patterns).analyze(x[:16])
    y = model(x[:16]).numpy()[:, 0]
    # each token's share: y / TOKENS spread along w ⊙ a_s (wᵀa_s = 1: it sums to y)
    expected = (y[:, None, None] / TOKENS) * (w * a_s)[None, None, :]
    assert_close(attribution, np.broadcast_to(expected, attribution.shape), rtol=2e-2)


def test_queries_and_keys_receive_no_signal(toy):
    model, x, a_s, w = toy
    analyzer = kp.create_analyzer("pattern.net", model, pattern_type="linear")
    analyzer.fit(x, batch_size=500)
    before = analyzer.analyze(x[:8])
    mha = model.get_layer("mha")
    kernels = [mha._query_dense.kernel.numpy(), mha._key_dense.kernel.numpy()]
    try:  # attention that is not uniform any more: the signal still moves along A only
        rng = np.random.default_rng(3)
        for v in (mha._query_dense.kernel, mha._key_dense.kernel):
            v.assign(rng.normal(size=v.shape).astype("float32"))
        changed = kp.create_analyzer("pattern.net", model, pattern_type="linear")
        changed.fit(x, batch_size=500)
        got = changed.analyze(x[:8])
        assert np.all(np.abs(_cosines(got, a_s)) > 0.999)
        assert not np.allclose(got, before)  # the attention weights moved the signal
    finally:
        mha._query_dense.kernel.assign(kernels[0])
        mha._key_dense.kernel.assign(kernels[1])


def test_layer_norm_passes_the_signal_back_in_the_input_units():
    """A LayerNormalization makes the model blind to the input's scale, so patterns fitted
    on c·X explain c·X with c times the signal of X (PatternNet, in input units) and the
    same attribution (PatternAttribution, in output units)."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((8,))
    h = layers.LayerNormalization(epsilon=1e-9, name="ln")(layers.Dense(8, name="d1")(inp))
    model = keras.Model(inp, layers.Dense(3, name="d2")(h))
    model.get_layer("ln").gamma.assign(np.linspace(0.5, 2.0, 8).astype("float32"))
    x = np.random.default_rng(0).normal(size=(400, 8)).astype("float32")
    out = {}
    for c in (1.0, 10.0):
        for method in ("pattern.net", "pattern.attribution"):
            analyzer = kp.create_analyzer(method, model, pattern_type="linear",
                                          neuron_selection_mode="index")
            analyzer.fit(c * x, batch_size=200)
            out[method, c] = analyzer.analyze(c * x[:16], neuron_selection=0)
    assert_close(out["pattern.net", 10.0], 10.0 * out["pattern.net", 1.0], rtol=1e-3)
    assert_close(out["pattern.attribution", 10.0], out["pattern.attribution", 1.0],
                 rtol=1e-3)
