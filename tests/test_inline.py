"""Custom layers (a `call` made of layers and keras.ops, as keras-hub writes its blocks) are
inlined: their call is traced and every inner operation is a node with its own rule, named
with the layer's path. Oracles: the same model written as plain functional layers with the
same weights, tf.GradientTape on the original model, and the model's own output."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp
from keras_patterns.canonize import prepare
from keras_patterns.flatten import flatten
from keras_patterns.graph import OPAQUE


class Residual(layers.Layer):
    """x + relu(Dense(x)): a custom layer made of a layer, a keras.ops call and an add."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(units, name="inner_dense")

    def call(self, x):
        return x + keras.ops.relu(self.dense(x))


class TwoBlocks(layers.Layer):
    """A custom layer made of two custom layers and a dropout (inference: the identity)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.first = Residual(units, name="first")
        self.second = Residual(units, name="second")
        self.dropout = layers.Dropout(0.9, name="dropout")

    def call(self, x, training=None):
        return self.second(self.dropout(self.first(x), training=training))


def _residual_twins():
    """A model with the custom layer, and the same model as plain functional layers with
    the same weights."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = layers.Dense(5, activation="relu", name="stem")(inp)
    custom = keras.Model(inp, layers.Dense(3, name="head")(Residual(5, name="residual")(h)))
    stem, inner, head = layers.Dense(5, activation="relu"), layers.Dense(5), layers.Dense(3)
    h = stem(inp)
    plain = keras.Model(inp, head(layers.Add()([h, keras.ops.relu(inner(h))])))
    stem.set_weights(custom.get_layer("stem").get_weights())
    inner.set_weights(custom.get_layer("residual").dense.get_weights())
    head.set_weights(custom.get_layer("head").get_weights())
    return custom, plain


def _inputs(shape, n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


@pytest.mark.parametrize("method", ["gradient", "lrp.epsilon", "pattern.net",
                                    "guided_backprop"])
def test_a_custom_layer_is_explained_as_its_functional_twin(method):
    custom, plain = _residual_twins()
    x = _inputs((6,))
    assert_close(custom(x), plain(x))
    got, want = (kp.create_analyzer(method, m) for m in (custom, plain))
    if method == "pattern.net":
        got.fit(_inputs((6,), n=64, seed=1), batch_size=16)
        want.fit(_inputs((6,), n=64, seed=1), batch_size=16)
    assert_close(got.analyze(x), want.analyze(x))
    names = [n.name for n in got.graph.nodes]
    assert "residual/inner_dense" in names
    assert any(n.startswith("residual/relu") for n in names)  # keras.ops names are numbered


def test_a_custom_layer_inside_a_custom_layer_carries_both_prefixes():
    keras.utils.set_random_seed(1)
    inp = keras.Input((4,))
    outer = TwoBlocks(4, name="blocks")
    model = keras.Model(inp, layers.Dense(2)(outer(inp)))
    inner_nodes = {layer.name: len(layer._inbound_nodes) for layer in
                   outer._flatten_layers(include_self=False)}
    graph = prepare(model)
    names = [n.name for n in graph.nodes]
    assert {"blocks/first/inner_dense", "blocks/second/inner_dense", "blocks/dropout"} <= set(
        names)
    assert all(n.role != OPAQUE for n in graph.nodes)
    x = _inputs((4,))
    assert_close(graph.evaluate([tf.constant(x)])[0], model(x))  # the dropout at inference
    # tracing leaves the user's layers as they were (no Keras nodes added)
    assert inner_nodes == {layer.name: len(layer._inbound_nodes) for layer in
                           outer._flatten_layers(include_self=False)}


def _bert(num_layers=2, hidden=8, seq=5):
    import keras_hub

    keras.utils.set_random_seed(2)
    return keras_hub.models.BertBackbone(
        vocabulary_size=30, num_layers=num_layers, num_heads=2, hidden_dim=hidden,
        intermediate_dim=16, max_sequence_length=seq)


def _encoder_model(backbone, seq=5, hidden=8):
    """The backbone's transformer layers on a float input, a Dense head on the first token."""
    x = inp = keras.Input((seq, hidden))
    for k in range(backbone.num_layers):
        x = backbone.get_layer(f"transformer_layer_{k}")(x)
    return keras.Model(inp, layers.Dense(3, name="head")(x[:, 0, :]))


def test_bert_encoder_layers_are_inlined_and_their_gradient_is_the_tape_gradient():
    model = _encoder_model(_bert())
    x = _inputs((5, 8), n=4)
    analyzer = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
    names = [n.name for n in analyzer.graph.nodes]
    assert "transformer_layer_0/feedforward_intermediate_dense" in names
    for inner in ("transformer_layer_1/self_attention_layer/softmax",
                  "transformer_layer_0/self_attention_layer/einsum"):  # numbered names
        assert any(n.startswith(inner) for n in names)
    assert_close(analyzer.graph.evaluate([tf.constant(x)])[0], model(x))
    assert_close(analyzer.analyze(x, neuron_selection=1),
                 tape_gradient(model, x, "index", [1] * 4))


def test_the_whole_bert_backbone_is_inlined_under_its_path_and_computes_the_same():
    backbone = _bert(num_layers=1)
    inputs = {name: keras.Input((5,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(inputs, layers.Dense(2)(backbone(inputs)["pooled_output"]))
    tokens = np.random.default_rng(0).integers(1, 30, size=(3, 5)).astype("int32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype="int32")
    feed = {"token_ids": tokens, "segment_ids": np.zeros_like(tokens), "padding_mask": mask}
    graph = flatten(model)
    names = [n.name for n in graph.nodes]
    assert backbone.name.startswith("bert_backbone")
    assert f"{backbone.name}/transformer_layer_0/self_attention_layer/query" in names
    order = {t.name: i for i, t in enumerate(graph.inputs)}
    values = [tf.constant(feed[name]) for name in sorted(order, key=order.get)]
    assert_close(graph.evaluate(values)[0], model(feed))


class SortedTail(layers.Layer):
    """A Dense layer, then its features sorted: a permutation chosen by the values, which
    no method has a rule for."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(8, name="inner_dense")

    def call(self, x):
        return keras.ops.sort(self.dense(x), axis=-1)


@pytest.mark.parametrize("method", ["lrp.epsilon", "guided_backprop", "pattern.attribution"])
def test_relevance_methods_name_the_first_inner_operation_without_a_rule(method):
    backbone = _bert()
    x = inp = keras.Input((5, 8))
    for k in range(backbone.num_layers):
        x = backbone.get_layer(f"transformer_layer_{k}")(x)
    model = keras.Model(inp, layers.Dense(3)(SortedTail(name="tail")(x)[:, 0, :]))
    nodes = prepare(model).nodes
    assert {n.name: n.role for n in nodes}["tail/sort"] == OPAQUE
    first = next(n for n in nodes if n.role == OPAQUE)  # an attention operation, or sort
    assert "/" in first.name  # a path into a traced layer
    with pytest.raises(kp.NotAnalyzableModelError) as error:
        kp.create_analyzer(method, model)
    assert f"'{first.name}' ({first.layer_class})" in str(error.value)


class TensorFlowClassToken(layers.Layer):
    """Prepends a learned token tiled by TensorFlow itself (`tf.tile`, `tf.shape`), which
    symbolic Keras tensors do not enter, so it cannot be traced (keras-hub's ViT token,
    tiled with keras.ops, is: see tests/test_sizes_and_casts.py)."""

    def build(self, shape):
        self.token = self.add_weight(shape=(1, 1, shape[-1]), initializer="random_normal")

    def call(self, x):
        token = tf.tile(tf.convert_to_tensor(self.token), [tf.shape(x)[0], 1, 1])
        return keras.ops.concatenate([token, x], axis=1)


class Counter(layers.Layer):
    """Counts its calls in a variable: a stateful call, whose traced graph would not count."""

    def build(self, shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        self.count.assign_add(1.0)
        return keras.ops.relu(x)


@pytest.mark.parametrize("layer, why", [
    (TensorFlowClassToken, r"could not be traced.*KerasTensor"),
    (Counter, r"could not be traced.*assigns variables"),
])
def test_a_layer_that_cannot_be_traced_stays_opaque_and_says_why(layer, why):
    keras.utils.set_random_seed(3)
    inp = keras.Input((4, 3))
    custom = layer(name="odd")
    model = keras.Model(inp, layers.Dense(2)(layers.Flatten()(custom(layers.Dense(3)(inp)))))
    state = [v.numpy().copy() for v in custom.weights]
    (node,) = [n for n in prepare(model).nodes if n.name == "odd"]
    assert node.role == OPAQUE
    with pytest.raises(kp.NotAnalyzableModelError, match=r"'odd' \(" + layer.__name__
                       + r"\).*" + why):
        kp.create_analyzer("lrp.epsilon", model)
    assert all(np.array_equal(v.numpy(), s) for v, s in zip(custom.weights, state))
    assert keras.ops.shape.__module__.startswith("keras.")  # keras.ops restored after a failure
    x = _inputs((4, 3), n=3)
    got = kp.create_analyzer("gradient", model).analyze(x)  # its vector-Jacobian product
    assert_close(got, tape_gradient(model, x))


class SelfAttention(layers.Layer):
    """Self-attention without a mask argument of its own: the Keras mask of its input
    reaches the inner MultiHeadAttention when the model runs on values."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attention = layers.MultiHeadAttention(2, 4)

    def call(self, x):
        return self.attention(x, x)


def test_a_layer_fed_a_keras_mask_stays_one_node_and_computes_what_the_model_does():
    """Tracing would lose the mask of the attention's values (the output of token 0 then
    differs by about 0.03 here), so the layer is kept whole and the graph is exact."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((6,), dtype="int32")
    with pytest.warns(UserWarning, match="mask"):  # Keras: the layer does not take a mask
        h = SelfAttention(name="attend")(layers.Embedding(10, 8, mask_zero=True)(inp))
    model = keras.Model(inp, layers.Dense(2)(h[:, 0]))
    graph = prepare(model)
    (node,) = [n for n in graph.nodes if n.name == "attend"]
    assert node.role == OPAQUE and "Keras mask" in node.why
    tokens = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]], dtype="int32")
    assert_close(graph.evaluate([tf.constant(tokens)])[0], model(tokens))
