"""keras-hub backbones (tiny configurations) flatten into graphs of known operations: every
inner operation is a node with a role, except the attention operations whose rules are
not there yet. Sizes that are None on symbolic inputs (the batch size, the sequence length:
causal masks, position embeddings, ViT's class token) are values of the graph. Oracles: the
model's own output for several batch sizes and sequence lengths, with padding; the
tf.GradientTape gradient for the image model; for token models, the tape gradient with
respect to the embedding table, read per token (tokens unique within a sample)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp
from keras_patterns.canonize import canonize
from keras_patterns.flatten import flatten
from keras_patterns.graph import CONSTANT, EMBEDDING, OPAQUE

keras_hub = pytest.importorskip("keras_hub")

# operations whose rules come with the attention work (their roles are not given here)
ATTENTION_OPS = {"Einsum", "Matmul", "DotProductAttention", "Softmax", "Rsqrt", "Sqrt",
                 "Reciprocal", "Power", "LayerNormalization"}


def _token_model(backbone, names):
    """The backbone on token inputs of any length, a Dense head on the mean (or BERT's
    pooled) output."""
    inputs = {n: keras.Input((None,), dtype="int32", name=n) for n in names}
    out = backbone(inputs)
    if isinstance(out, dict):
        h = out["pooled_output"]
    else:
        h = keras.ops.mean(out, axis=1)
    return keras.Model(inputs, layers.Dense(3, name="head")(h))


def _build(name):
    keras.utils.set_random_seed(7)
    small = dict(vocabulary_size=30, num_layers=1, hidden_dim=8, intermediate_dim=16)
    if name == "vit":
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=8,
            mlp_dim=16)
        inp = keras.Input((16, 16, 3))
        return keras.Model(inp, layers.Dense(3, name="head")(backbone(inp)[:, 0, :]))
    if name == "bert":
        backbone = keras_hub.models.BertBackbone(num_heads=2, max_sequence_length=6, **small)
        return _token_model(backbone, ("token_ids", "segment_ids", "padding_mask"))
    if name == "gpt2":
        backbone = keras_hub.models.GPT2Backbone(num_heads=2, max_sequence_length=6, **small)
    elif name == "gemma":
        backbone = keras_hub.models.GemmaBackbone(
            num_query_heads=2, num_key_value_heads=1, head_dim=4, **small)
    else:
        backbone = keras_hub.models.LlamaBackbone(
            num_query_heads=2, num_key_value_heads=1, **small)
    return _token_model(backbone, ("token_ids", "padding_mask"))


NAMES = ("bert", "vit", "gpt2", "gemma", "llama")


@pytest.fixture(scope="module")
def models():
    return {}


def _model(models, name):
    if name not in models:
        model = _build(name)
        models[name] = (model, canonize(flatten(model)))
    return models[name]


def _feed(model, batch, length, seed=0):
    """Inputs for `model`: unique tokens per sample, padding masks with zeros at the end."""
    rng = np.random.default_rng(seed)
    if len(model.inputs) == 1:
        return rng.normal(size=(batch, 16, 16, 3)).astype("float32")
    tokens = np.stack([rng.permutation(np.arange(1, 30))[:length] for _ in range(batch)])
    mask = np.ones((batch, length), "int32")
    for b in range(batch):
        mask[b, length - b % length:] = 0  # sample b: its last b tokens are padding
    feed = {"token_ids": tokens.astype("int32"), "padding_mask": mask}
    if any(t.name == "segment_ids" for t in model.inputs):
        feed["segment_ids"] = (np.arange(length)[None] >= length // 2).astype("int32").repeat(
            batch, 0)
    return feed


def _values(graph, feed):
    if not isinstance(feed, dict):
        return [tf.constant(feed)]
    return [tf.constant(feed[t.name]) for t in graph.inputs]


@pytest.mark.parametrize("name", NAMES)
def test_every_inner_operation_has_a_role_but_the_attention_ones(models, name):
    _, graph = _model(models, name)
    opaque = {n.name: n.layer_class for n in graph.nodes if n.role == OPAQUE}
    assert set(opaque.values()) <= ATTENTION_OPS, opaque
    if name != "vit":
        (embedding,) = [n for n in graph.nodes if n.name.endswith("token_embedding")]
        assert embedding.role == EMBEDDING
    # the sizes read off the symbolic shapes are graph values, their results constants
    assert any(n.layer_class == "DimensionOf" and n.role == CONSTANT for n in graph.nodes)


@pytest.mark.parametrize("name", NAMES)
def test_the_graph_computes_what_the_model_does_at_any_batch_size_and_length(models, name):
    model, graph = _model(models, name)
    for batch, length in ((1, 6), (3, 4), (4, 2)):
        feed = _feed(model, batch, length, seed=batch)
        assert_close(graph.evaluate(_values(graph, feed))[0], model(feed))
    # compiled with unknown sizes, as the reverse models run: the sizes are dynamic there
    specs = [tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype) for t in graph.inputs]
    compiled = tf.function(lambda *xs: graph.evaluate(list(xs))[0], input_signature=specs)
    feed = _feed(model, 3, 5, seed=9)
    assert_close(compiled(*_values(graph, feed)), model(feed))


def test_the_vit_gradient_is_the_tape_gradient(models):
    model, _ = _model(models, "vit")
    for batch in (1, 3):
        x = _feed(model, batch, None, seed=batch)
        analyzer = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
        assert_close(analyzer.analyze(x, neuron_selection=1),
                     tape_gradient(model, x, "index", [1] * batch))


def _table_oracle(model, feed):
    """Per token: sum over features of embedding times the gradient at the embedding's
    output, read off the tape gradient of the embedding table (each token occurs once per
    sample, so its row of the table gradient is the gradient at its position)."""
    table = next(layer for layer in model.get_layer(index=len(model.inputs)).layers
                 if layer.name == "token_embedding").embeddings
    out = []
    for b in range(len(feed["token_ids"])):
        one = {k: v[b:b + 1] for k, v in feed.items()}
        with tf.GradientTape() as tape:
            y = model(one)[:, 1]
        grad = tf.convert_to_tensor(tape.gradient(y, table)).numpy()
        rows = one["token_ids"][0]
        out.append(np.sum(table.numpy()[rows] * grad[rows], axis=-1))
    return np.stack(out)


@pytest.mark.parametrize("name", ["bert", "gpt2", "gemma", "llama"])
def test_input_times_gradient_of_tokens_is_the_tape_gradient_at_the_embedding(models, name):
    model, _ = _model(models, name)
    feed = _feed(model, 3, 5, seed=4)
    analyzer = kp.create_analyzer("input_t_gradient", model, neuron_selection_mode="index")
    got = analyzer.analyze(feed, neuron_selection=1)
    assert_close(got["token_ids"], _table_oracle(model, feed))
    assert np.all(got["padding_mask"] == 0)  # a mask carries no signal


def test_position_layers_are_constants_of_the_length_at_any_length():
    """keras-hub's learned, sinusoidal and rotary position layers: what they add or
    multiply depends on the sequence length only."""
    keras.utils.set_random_seed(8)
    inp = keras.Input((None,), dtype="int32")
    e = keras_hub.layers.TokenAndPositionEmbedding(20, 6, 8, name="embed")(inp)
    x = e + keras_hub.layers.SinePositionEncoding(name="sine")(e)
    x = keras_hub.layers.RotaryEmbedding(name="rotary")(x)
    model = keras.Model(inp, layers.Dense(2)(keras.ops.mean(x, axis=1)))
    graph = canonize(flatten(model))
    roles = {n.name: n.role for n in graph.nodes}
    assert not [name for name, role in roles.items() if role == OPAQUE]
    assert roles["embed/token_embedding"] == EMBEDDING
    for prefix in ("embed/position_embedding/", "sine/"):
        assert {r for name, r in roles.items() if name.startswith(prefix)} == {CONSTANT}
    assert roles["rotary/sin"] == roles["rotary/cos"] == CONSTANT
    for batch, length in ((1, 6), (3, 2)):
        tokens = np.random.default_rng(batch).integers(1, 20, (batch, length)).astype("int32")
        assert_close(graph.evaluate([tf.constant(tokens)])[0], model(tokens))


@pytest.mark.parametrize("name", ["vit", "gpt2"])
def test_the_graph_follows_the_weights_changed_after_it_was_built(models, name):
    """The traced graph reads the layers' variables (class token, position embeddings) on
    every call, as a model trained further (the explanation-grid callback) needs."""
    model, graph = _model(models, name)
    saved = [w.numpy() for w in model.weights]
    try:
        for w in model.weights:
            w.assign(w.numpy() + 0.25)
        feed = _feed(model, 2, 4, seed=3)
        assert_close(graph.evaluate(_values(graph, feed))[0], model(feed))
    finally:
        for w, v in zip(model.weights, saved):
            w.assign(v)
