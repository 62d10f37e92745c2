"""Sizes known only on values, casts, and values that do not depend on the input.

A custom layer that reads a size off `keras.ops.shape` (None on symbolic inputs: the batch
size) is traced with that size as a graph value (`DimensionOf`); what is computed from it
alone is `CONSTANT`. Casts between float dtypes route values; a cast of an integer mask is
constant. Oracles: the model's own output at several batch sizes, tf.GradientTape, and for
networks that are linear in the explained input, the z-rule's closed form: relevance =
input times gradient (what a constant adds is absorbed, as a bias is)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp
from keras_patterns import roles
from keras_patterns.canonize import prepare
from keras_patterns.graph import CONSTANT, EMBEDDING, FIXED_LINEAR, OPAQUE


class ClassToken(layers.Layer):
    """Prepends a learned token tiled to the batch size read off `keras.ops.shape` (as
    keras-hub's ViT embedding does)."""

    def build(self, shape):
        self.token = self.add_weight(shape=(1, 1, shape[-1]), initializer="random_normal")

    def call(self, x):
        token = keras.ops.tile(self.token, (keras.ops.shape(x)[0], 1, 1))
        return keras.ops.concatenate([token, x], axis=1)


def _linear_model_with_class_token():
    keras.utils.set_random_seed(3)
    inp = keras.Input((4, 3))
    token = ClassToken(name="class_token")
    h = token(layers.Dense(3, use_bias=False)(inp))
    return keras.Model(inp, layers.Dense(2, use_bias=False)(layers.Flatten()(h))), token


def _x(shape, n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def test_a_size_read_off_the_shape_is_a_graph_value_and_the_graph_fits_any_batch():
    model, token = _linear_model_with_class_token()
    inbound = len(token._inbound_nodes)
    graph = prepare(model)
    roles = {n.name: (n.layer_class, n.role) for n in graph.nodes}
    assert roles["class_token/dimension_of"] == ("DimensionOf", CONSTANT)
    assert roles["class_token/tile"] == ("Tile", CONSTANT)
    assert roles["class_token/concatenate"][1] == FIXED_LINEAR
    assert len(token._inbound_nodes) == inbound  # the user's layer is left as it was
    assert keras.ops.shape.__module__.startswith("keras.")  # keras.ops restored
    for n in (1, 5):
        x = _x((4, 3), n, seed=n)
        assert_close(graph.evaluate([tf.constant(x)])[0], model(x))


@pytest.mark.parametrize("method", ["gradient", "guided_backprop", "deconvnet", "lrp.z"])
def test_relevance_passes_the_token_and_stops_at_the_constant(method):
    model, _ = _linear_model_with_class_token()
    x = _x((4, 3), 3, seed=1)
    got = kp.create_analyzer(method, model, neuron_selection_mode="index").analyze(
        x, neuron_selection=1)
    grad = tape_gradient(model, x, "index", [1] * 3)
    # linear in x, no rectifier: the rectifier methods are the gradient; the z-rule gives
    # x * gradient (the token's share, a constant, is absorbed)
    assert_close(got, x * grad if method == "lrp.z" else grad)


def test_a_cast_between_float_dtypes_routes_values():
    keras.utils.set_random_seed(4)
    inp = keras.Input((5,))
    h = layers.Dense(4, use_bias=False)(inp)
    h = keras.ops.cast(keras.ops.cast(h, "float64"), "float32")  # exact both ways
    model = keras.Model(inp, layers.Dense(2, use_bias=False)(h))
    graph = prepare(model)
    assert [n.role for n in graph.nodes if n.layer_class == "Cast"] == [FIXED_LINEAR] * 2
    x = _x((5,), 4)
    got = kp.create_analyzer("lrp.z", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=0)
    assert_close(got, x * tape_gradient(model, x, "index", [0] * 4))


def test_a_cast_integer_mask_is_constant_and_gets_no_relevance():
    keras.utils.set_random_seed(5)
    x_in, mask_in = keras.Input((4, 3), name="x"), keras.Input((4,), dtype="int32", name="mask")
    h = layers.Dense(3, use_bias=False)(x_in)
    h = h * keras.ops.expand_dims(keras.ops.cast(mask_in, "float32"), -1)
    model = keras.Model([x_in, mask_in], layers.Dense(2, use_bias=False)(layers.Flatten()(h)))
    graph = prepare(model)
    assert {n.role for n in graph.nodes if n.layer_class in ("Cast", "ExpandDims")} == {
        CONSTANT}
    x = _x((4, 3), 3)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], "int32")
    for method in ("gradient", "lrp.z"):
        got = kp.create_analyzer(method, model, neuron_selection_mode="index").analyze(
            [x, mask], neuron_selection=1)
        with tf.GradientTape() as tape:
            xt = tf.constant(x)
            tape.watch(xt)
            y = model([xt, tf.constant(mask)])[:, 1]
        grad = tape.gradient(y, xt).numpy()
        assert_close(got[0], grad if method == "gradient" else x * grad)
        assert np.all(got[1] == 0)


def test_a_reversible_embedding_is_an_embedding_only_where_it_looks_tokens_up():
    keras.utils.set_random_seed(6)
    table = layers.ReversibleEmbedding(12, 4, name="table")
    inp = keras.Input((5,), dtype="int32")
    h = table(inp)
    logits = table(keras.ops.mean(h, axis=1), reverse=True)  # the tied output projection
    model = keras.Model(inp, logits)
    graph = prepare(model)
    roles = [(n.name, n.role) for n in graph.nodes if n.name.split("/")[0].startswith("table")]
    assert roles[0] == ("table", EMBEDDING)
    assert all(role != EMBEDDING for _, role in roles[1:])  # the reverse call is traced
    tokens = np.random.default_rng(0).integers(0, 12, size=(3, 5)).astype("int32")
    assert_close(graph.evaluate([tf.constant(tokens)])[0], model(tokens))


def test_a_call_the_registered_role_does_not_cover_is_opaque_and_says_why():
    class Roll(layers.Layer):
        """Rolls the features by one, forwards or back (TensorFlow: not traceable)."""

        def call(self, x, back=False):
            return tf.roll(x, -1 if back else 1, axis=-1)

    roles.register_layer(Roll, FIXED_LINEAR, covers=lambda args, kwargs: not kwargs.get("back"))
    keras.utils.set_random_seed(7)
    inp = keras.Input((5,))
    roll = Roll(name="roll")
    model = keras.Model(inp, layers.Dense(2)(roll(roll(layers.Dense(5)(inp)), back=True)))
    found = {n.name: n for n in prepare(model).nodes if n.name.startswith("roll")}
    assert [n.role for n in found.values()] == [FIXED_LINEAR, OPAQUE]
    assert "'fixed_linear' does not describe this call" in found["roll_1"].why
    with pytest.raises(kp.NotAnalyzableModelError, match=r"'roll_1' \(Roll\)"):
        kp.create_analyzer("lrp.epsilon", model)
    x = _x((5,), 3)
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))
