"""Token inputs are explained in embedding space (`reverse.EmbeddingCut`): each method's
values at the embedding output, one per token summed over the embedding dimension, or per
dimension with `per_dimension=True`. Oracles: tape gradients of the network after the
embedding, called on a float embedding value (Riemann sums for Integrated Gradients, the
same noise draws for the noise methods), and completeness."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L
from oracles import assert_close, tape_gradient

import keras_patterns as kp
from keras_patterns.noise import normal_copies, sample_keys

TOKENS, VOCABULARY, WIDTH = 6, 11, 4
INDEX = [0, 2, 1]


def _ids(seed=0):
    return np.random.default_rng(seed).integers(1, VOCABULARY, size=(3, TOKENS)).astype("int32")


_CASES = {}


def _case(kind):
    """(model, body, xs, e, table): `body(e, *others)` is the network after the embedding,
    `xs` the model inputs, `e` the embedding output of their token ids."""
    if kind in _CASES:
        return _CASES[kind]
    keras.utils.set_random_seed(7)
    ids = keras.Input((TOKENS,), dtype="int32", name="ids")
    embed = L.Embedding(VOCABULARY, WIDTH, name="embed", mask_zero=kind == "mask_zero")
    e = embed(ids)
    if kind == "conv":
        conv, pool, dense = L.Conv1D(5, 2, activation="tanh"), L.GlobalAveragePooling1D(), \
            L.Dense(3)
        model = keras.Model(ids, dense(pool(conv(e))))
        xs = [_ids()]

        def body(v):
            return dense(pool(conv(v)))
    elif kind == "padding":  # a second integer input, used as a mask, not embedded
        pad = keras.Input((TOKENS,), dtype="int32", name="pad")
        weights = keras.ops.expand_dims(keras.ops.cast(pad, "float32"), -1)
        dense1, pool, dense2 = L.Dense(5, activation="tanh"), L.GlobalAveragePooling1D(), \
            L.Dense(3)
        model = keras.Model([ids, pad], dense2(pool(dense1(L.Multiply()([e, weights])))))
        xs = [_ids(), np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 3 + [0] * 3], "int32")]

        def body(v, p=xs[1]):
            return dense2(pool(dense1(v * p[..., None].astype("float32"))))
    else:  # mask_zero: the pooling averages the tokens that are not 0
        pool, dense1, dense2 = L.GlobalAveragePooling1D(), L.Dense(5, activation="tanh"), \
            L.Dense(3)
        model = keras.Model(ids, dense2(dense1(pool(e))))
        xs = [_ids()]
        xs[0][1, 4:] = 0
        xs[0][2, 2:] = 0

        def body(v, x=xs[0]):
            return dense2(dense1(pool(v, mask=tf.not_equal(x, 0))))
    table = embed.embeddings.numpy()
    _CASES[kind] = (model, body, xs, table[xs[0]], table)
    return _CASES[kind]


def _analyze(name, model, xs, **kwargs):
    analyzer = kp.create_analyzer(name, model, neuron_selection_mode="index", **kwargs)
    out = analyzer.analyze(xs if len(xs) > 1 else xs[0], neuron_selection=INDEX)
    return out if len(xs) > 1 else [out]


def _riemann(body, e, e_ref, steps):
    """(e - e_ref) times the mean tape gradient at e_ref + k/steps (e - e_ref), k < steps."""
    grads = [tape_gradient(body, (e_ref + k / steps * (e - e_ref)).astype("float32"),
                           "index", INDEX) for k in range(steps)]
    return (e - e_ref) * np.mean(grads, axis=0)


@pytest.mark.parametrize("kind", ["conv", "padding", "mask_zero"])
def test_gradient_per_dimension_is_the_tape_gradient_at_the_embedding_output(kind):
    model, body, xs, e, _ = _case(kind)
    got = _analyze("gradient", model, xs, per_dimension=True)
    want = tape_gradient(body, e, "index", INDEX)
    assert got[0].shape == (3, TOKENS, WIDTH)
    assert_close(got[0], want)
    for other in got[1:]:  # the padding mask: no relevance
        assert other.shape == xs[1].shape and not other.any()


@pytest.mark.parametrize("kind", ["conv", "padding", "mask_zero"])
def test_integrated_gradients_is_the_riemann_sum_in_embedding_space(kind):
    model, body, xs, e, table = _case(kind)
    got = _analyze("integrated_gradients", model, xs, steps=8, per_dimension=True)
    assert_close(got[0], _riemann(body, e, np.zeros_like(e), 8), rtol=1e-4)
    tokens = _analyze("integrated_gradients", model, xs, steps=8, reference_token=3)
    assert_close(tokens[0], _riemann(body, e, table[3], 8).sum(axis=-1), rtol=1e-4)
    if kind == "padding":
        assert not tokens[1].any()


def test_integrated_gradients_is_complete_in_embedding_space():
    """Sum over tokens of IG = f(e) - f(e_ref) for many steps."""
    model, body, xs, e, table = _case("padding")
    reference = np.array([0, 0, 5, 5, 0, 0])
    got = _analyze("integrated_gradients", model, xs, steps=256,
                   reference_token=[reference, None])[0].sum(axis=1)
    rows = np.arange(3), INDEX
    want = body(e).numpy()[rows] - body(np.broadcast_to(table[reference], e.shape)).numpy()[rows]
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-4)


def _noise(case, n, scale, seed, stream=0, streams=1):
    """The noise of the copies of the embedding output, drawn as `keras_patterns.noise`
    does, with the standard deviation scale * (max - min of the embedding table)."""
    _, _, xs, e, table = case
    keys = tf.constant(sample_keys(xs, seed))
    stddev = scale * float(table.max() - table.min())
    return normal_copies(tf.constant(e), keys, tf.range(n), stream, streams, stddev).numpy()


def _tape_at_copies(body, e, noise):
    return np.stack([tape_gradient(body, (e + d).astype("float32"), "index", INDEX)
                     for d in noise])


@pytest.mark.parametrize("kind", ["conv", "padding"])
def test_noise_methods_are_statistics_of_tape_gradients_at_the_same_noise(kind):
    """SmoothGrad, SquareGrad and VarGrad at the embedding output; batch_size 6 puts the 7
    copies of 3 samples in groups of 2 (the last one half empty)."""
    case = _case(kind)
    model, body, xs, e, _ = case
    streams = (1, 2) if kind == "padding" else (0, 1)  # the mask input comes first
    g = _tape_at_copies(body, e, _noise(case, 7, 0.2, 5, *streams))
    want = {"smoothgrad": g.mean(axis=0), "squaregrad": (g ** 2).mean(axis=0),
            "vargrad": g.var(axis=0)}
    for name, expected in want.items():
        got = _analyze(name, model, xs, augment_by_n=7, noise_scale=0.2, seed=5,
                       batch_size=6, per_dimension=True)
        assert_close(got[0], expected, rtol=1e-4)


def test_vargrad_and_squaregrad_on_float_inputs():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((5,)), L.Dense(6, activation="tanh"), L.Dense(3)])
    x = np.random.default_rng(2).normal(size=(3, 5)).astype("float32")
    noise = normal_copies(tf.constant(x), tf.constant(sample_keys([x], 9)), tf.range(5), 0, 1,
                          0.5).numpy()
    g = np.stack([tape_gradient(model, x + d, "index", INDEX) for d in noise])
    for name, want in (("vargrad", g.var(axis=0)), ("squaregrad", (g ** 2).mean(axis=0))):
        got = _analyze(name, model, [x], augment_by_n=5, noise_scale=0.5, seed=9,
                       batch_size=3)[0]
        assert_close(got, want, rtol=1e-4)


def test_vargrad_does_not_cancel_for_a_large_mean():
    """y = x0 (1e4 + x1): dy/dx0 = 1e4 + x1 has the variance of x1's noise, which
    E[g^2] - E[g]^2 in float32 would lose (off by up to about 90 for a variance of 1)."""
    model = keras.Sequential([keras.Input((2,)),
                              L.Lambda(lambda t: t[:, :1] * (1e4 + t[:, 1:]))])
    x = np.array([[0.5, 1.0], [2.0, -1.0]], "float32")
    got = kp.create_analyzer("vargrad", model, allow_lambda_layers=True, augment_by_n=64,
                             noise_scale=1.0, seed=1, batch_size=8).analyze(x)
    noise = normal_copies(tf.constant(x), tf.constant(sample_keys([x], 1)), tf.range(64), 0, 1,
                          1.0).numpy().astype("float64")
    np.testing.assert_allclose(got[:, 0], np.var(noise[:, :, 1], axis=0), rtol=1e-3)
    np.testing.assert_allclose(got[:, 1], np.var(noise[:, :, 0], axis=0), rtol=1e-3)


@pytest.mark.parametrize("name", ["gradient", "input_t_gradient", "integrated_gradients",
                                  "smoothgrad", "vargrad", "lrp.epsilon", "attnlrp",
                                  "pattern.net"])
def test_per_dimension_sums_to_the_per_token_form(name):
    model, _, xs, _, _ = _case("conv")
    kwargs = {"augment_by_n": 3, "seed": 1} if name in ("smoothgrad", "vargrad") else {}
    if name == "integrated_gradients":
        kwargs = {"steps": 4}
    if name == "pattern.net":
        kwargs = {"pattern_type": "filter"}  # no fit: the patterns are the weights
    if name in ("lrp.epsilon", "attnlrp", "pattern.net"):
        model = keras.Sequential([keras.Input((TOKENS,), dtype="int32"),
                                  L.Embedding(VOCABULARY, WIDTH),
                                  L.Conv1D(5, 2, activation="relu"), L.Flatten(), L.Dense(3)])
    per_token = _analyze(name, model, xs, **kwargs)[0]
    per_dimension = _analyze(name, model, xs, per_dimension=True, **kwargs)[0]
    assert per_token.shape == xs[0].shape
    assert per_dimension.shape == xs[0].shape + (WIDTH,)
    assert_close(per_dimension.sum(axis=-1), per_token)
    assert np.abs(per_token).max() > 0


def test_input_times_gradient_per_dimension():
    model, body, xs, e, _ = _case("padding")
    got = _analyze("input_t_gradient", model, xs, per_dimension=True)
    assert_close(got[0], e * tape_gradient(body, e, "index", INDEX))


def test_bad_reference_tokens_are_named():
    model = _case("padding")[0]
    with pytest.raises(kp.InvalidInputError, match="'ids'.*vocabulary 0..10"):
        kp.create_analyzer("integrated_gradients", model, reference_token=[11, None])
    with pytest.raises(kp.InvalidInputError, match="'pad' .*feeds no Embedding"):
        kp.create_analyzer("integrated_gradients", model, reference_token=[1, 0])
    with pytest.raises(kp.InvalidInputError, match="'ids'.*token id or an array"):
        kp.create_analyzer("integrated_gradients", model, reference_token=[0.5, None])
    with pytest.raises(kp.InvalidInputError, match="token input 'ids'.*reference_token="):
        kp.create_analyzer("integrated_gradients", model, reference_inputs=[1.0, 0])
    with pytest.raises(kp.InvalidInputError, match="'pad'.*integer input feeds no Embedding"):
        kp.create_analyzer("integrated_gradients", model, reference_inputs=[0, 1])
    with pytest.raises(kp.InvalidInputError, match="reference_token has 1 entries"):
        kp.create_analyzer("integrated_gradients", model, reference_token=[1])


def test_ids_used_twice_and_two_embeddings_of_one_input():
    """The ids feed two Embeddings (per dimension: concatenated) and a mask computed from
    them (no crash, no relevance through it); dict inputs in max_activation mode."""
    keras.utils.set_random_seed(4)
    ids = keras.Input((TOKENS,), dtype="int32", name="ids")
    first, second = L.Embedding(VOCABULARY, WIDTH), L.Embedding(VOCABULARY, 2)
    keep = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(ids, 0), "float32"), -1)
    h = L.Concatenate()([first(ids), second(ids)])
    dense, pool = L.Dense(3, activation="tanh"), L.GlobalAveragePooling1D()
    out = L.Dense(2)(pool(dense(L.Multiply()([h, keep]))))
    model = keras.Model({"ids": ids}, out)
    x = _ids(3)
    x[0, 4:] = 0
    head = model.layers[-1]

    def body(e):
        return head(pool(dense(e * (x != 0)[..., None].astype("float32"))))

    e = np.concatenate([first(x).numpy(), second(x).numpy()], axis=-1)
    index = np.argmax(model({"ids": x}).numpy(), axis=1)
    g = tape_gradient(body, e, "index", index)
    got = kp.create_analyzer("gradient", model, per_dimension=True).analyze({"ids": x})
    assert_close(got["ids"], g)
    ig = kp.create_analyzer("integrated_gradients", model, steps=4).analyze({"ids": x})
    grads = [tape_gradient(body, (k / 4 * e).astype("float32"), "index", index)
             for k in range(4)]
    assert_close(ig["ids"], (e * np.mean(grads, axis=0)).sum(axis=-1), rtol=1e-4)


def test_per_dimension_refuses_an_embedding_of_computed_ids():
    ids = keras.Input((4,), dtype="int32")
    h = L.Flatten()(L.Embedding(10, 3, name="lookup")(L.Reshape((2, 2))(ids)))
    model = keras.Model(ids, L.Dense(2)(h))
    assert kp.create_analyzer("gradient", model).analyze(np.ones((1, 4), "int32")).shape == \
        (1, 4)
    with pytest.raises(kp.NotAnalyzableModelError, match="'lookup'.*per_dimension"):
        kp.create_analyzer("gradient", model, per_dimension=True)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.embed, self.dense = L.Embedding(VOCABULARY, WIDTH), L.Dense(2)

    def call(self, ids):
        return self.dense(keras.ops.mean(self.embed(ids), axis=1))


def test_a_subclassed_model_hides_its_embedding_from_the_copy_methods():
    model, x = _Subclassed(), _ids()
    model(x)
    for name in ("integrated_gradients", "smoothgrad"):
        with pytest.raises(kp.NotAnalyzableModelError, match="integer input.*make it functional"):
            kp.create_analyzer(name, model).analyze(x)


def test_integrated_gradients_on_a_keras_hub_bert_is_complete():
    """Token ids and segment ids of a small keras-hub BERT (random weights): the sum of IG
    over both equals f(x) - f(ref), ref being the zero token and segment embeddings (the
    output with both tables set to zero); the padding mask gets zeros."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=12)
    inputs = {k: keras.Input((12,), dtype="int32", name=k)
              for k in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(inputs, L.Dense(2)(backbone(inputs)["pooled_output"]))
    x = {"token_ids": np.random.default_rng(0).integers(1, 50, (2, 12)).astype("int32"),
         "segment_ids": np.repeat([[0] * 6 + [1] * 6], 2, axis=0).astype("int32"),
         "padding_mask": np.array([[1] * 12, [1] * 8 + [0] * 4], "int32")}
    ig = kp.create_analyzer("integrated_gradients", model, steps=256,
                            neuron_selection_mode="index").analyze(x, neuron_selection=0)
    tables = [backbone.token_embedding.embeddings, backbone.segment_embedding.embeddings]
    saved = [t.numpy() for t in tables]
    fx = model(x).numpy()[:, 0]
    for t in tables:
        t.assign(np.zeros_like(t.numpy()))
    f_ref = model(x).numpy()[:, 0]
    for t, s in zip(tables, saved):
        t.assign(s)
    np.testing.assert_allclose(ig["token_ids"].sum(1) + ig["segment_ids"].sum(1), fx - f_ref,
                               rtol=5e-3, atol=2e-5)
    assert not ig["padding_mask"].any()
