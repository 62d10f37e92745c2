"""The structure a maintainer extends: a new LRP rule is one class and one registry line, a
new signal estimator one class and one line, composites are objects, graph nodes are
typed. Each extension is checked against an independent computation."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, rectifier_model, tape_gradient

import keras_patterns as kp
from keras_patterns import roles
from keras_patterns.canonize import fold_batchnorm, prepare
from keras_patterns.flatten import flatten
from keras_patterns.graph import KERNEL, Node
from keras_patterns.kernels import FoldedMap
from keras_patterns.patterns import estimators
from keras_patterns.rules import RULES, register
from keras_patterns.rules.composite import KERNELS, Composite
from keras_patterns.rules.lrp import AlphaBeta, Epsilon, Rule, Z


def _relu_cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(5, activation="relu"),
                             layers.Dense(3)])


def _x(n=3):
    return np.random.default_rng(0).uniform(0.1, 1.0, size=(n, 6, 6, 2)).astype("float32")


class TwiceZ(Rule):
    """Twice the z-rule's relevance (a rule written outside the package)."""

    name = "twice_z"

    def relevance(self, layer, r):
        return 2.0 * Z().relevance(layer, r)


@pytest.fixture()
def registered():
    register("twice_z", TwiceZ)  # the one registry line
    yield
    RULES.pop("twice_z")


def test_a_rule_registered_outside_the_package_is_usable_by_name(registered):
    """Doubling every layer's relevance doubles the input relevance once per kernel layer
    (three here): 8 x lrp.z."""
    model, x = _relu_cnn(), _x()
    want = 8.0 * kp.create_analyzer("lrp.z", model).analyze(x)
    assert_close(kp.create_analyzer("lrp", model, rule="twice_z").analyze(x), want)
    assert_close(kp.create_analyzer("lrp.twice_z", model).analyze(x), want)
    assert "lrp.twice_z" in kp.list_analyzers()
    mixed = kp.create_analyzer("lrp", model, rule=[(layers.Dense, "twice_z")]).analyze(x)
    assert_close(mixed, 4.0 * kp.create_analyzer("lrp.z", model).analyze(x))


def test_registry_factories_take_their_parameters_by_keyword():
    rule = RULES["epsilon_ib"](epsilon=0.25)
    assert isinstance(rule, Epsilon) and rule.epsilon == 0.25 and rule.bias is False
    rule = RULES["alpha_beta_ib"](alpha=3.0)
    assert (rule.alpha, rule.beta, rule.bias) == (3.0, 2.0, False)


def test_a_composite_object_equals_the_preset_it_spells_out():
    model, x = _relu_cnn(), _x()
    composite = Composite([(layers.Dense, Epsilon(0.1)), (KERNELS, AlphaBeta(1.0, 0.0))],
                          default=Epsilon(0.1))
    assert_close(kp.create_analyzer("lrp", model, composite=composite).analyze(x),
                 kp.create_analyzer("lrp.sequential_preset_a", model).analyze(x))
    with pytest.raises(ValueError, match="either composite= or rule="):
        kp.create_analyzer("lrp", model, composite=composite, rule="z")


class FilterTwice(estimators.Filter):
    """The filter estimator under another name (an estimator written outside)."""

    name = "filter_twice"


def test_an_estimator_registered_outside_the_package_is_usable_by_name():
    estimators.ESTIMATORS["filter_twice"] = FilterTwice  # the one registry line
    try:
        model, x = _relu_cnn(), _x()
        got = kp.create_analyzer("pattern.net", model, pattern_type="filter_twice").analyze(x)
        want = kp.create_analyzer("pattern.net", model, pattern_type="filter").analyze(x)
        assert_close(got, want)
    finally:
        estimators.ESTIMATORS.pop("filter_twice")
    with pytest.raises(ValueError, match="pattern_type='filter_twice' is not one of"):
        kp.compute_patterns(model, pattern_type="filter_twice")


def test_nodes_are_typed_and_the_graph_answers_the_methods_questions():
    model = _relu_cnn()
    graph = prepare(model)
    assert not hasattr(Node, "info") and "info" not in {f.name for f in dataclasses.fields(Node)}
    kernels = graph.kernel_nodes()
    assert [n.role for n in kernels] == [KERNEL] * 3
    first, hidden, last = kernels
    assert first.kernel_map.layer is model.layers[0] and first.source == model.layers[0].name
    assert graph.only_rectifiers_consume(first) and graph.only_rectifiers_consume(hidden)
    assert not graph.only_rectifiers_consume(last)
    assert graph.is_input_layer(first) and not graph.is_input_layer(hidden)
    assert graph.is_nonnegative(hidden.inputs[0]) and not graph.is_nonnegative(first.inputs[0])
    assert graph.layer_order == [layer.name for layer in model.layers]
    assert graph.first_non_rectifier() is None


def test_a_folded_map_stays_folded_in_its_channels_last_view():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2, 5, 5)),
                              layers.Conv2D(3, 3, data_format="channels_first"),
                              layers.BatchNormalization(axis=1)])
    bn = model.layers[1]
    bn.moving_variance.assign(np.array([4.0, 0.25, 1.0], "float32"))
    graph = fold_batchnorm(prepare(model))
    (node,) = graph.kernel_nodes()
    folded = node.kernel_map
    assert isinstance(folded, FoldedMap) and node.batchnorm == bn.name
    assert folded.batchnorm is bn and folded.unfolded.batchnorm is None
    assert folded.unfolded.unfolded is folded.unfolded
    assert folded.unfolded.layer is model.layers[0] and folded.layer is model.layers[0]
    scale = 1.0 / np.sqrt(np.array([4.0, 0.25, 1.0]) + bn.epsilon)
    assert_close(folded.kernel, model.layers[0].kernel.numpy() * scale)
    twin = folded.channels_last()
    assert isinstance(twin, FoldedMap)
    assert twin.layer.data_format == "channels_last" and twin.channel_axis == -1
    assert_close(twin.kernel, folded.kernel)
    assert flatten(model).layer_order == [layer.name for layer in model.layers]


# -- a layer class registered from outside the package --------------------------------------


def _twin_models(middle):
    """The same Dense layers around `middle()` (a fresh layer per call), and around ReLU."""
    keras.utils.set_random_seed(4)
    dense = [layers.Dense(8), layers.Dense(6), layers.Dense(3)]

    def build(rectifier):
        x = inputs = keras.Input((5,))
        for d in dense[:-1]:
            x = rectifier()(d(x))
        return keras.Model(inputs, dense[-1](x))

    return build(middle), build(layers.ReLU)


def test_a_layer_registered_outside_the_package_is_explained_by_its_role():
    """An element-wise rectifier written outside the package with TensorFlow ops (so that
    its call cannot be traced into keras.ops) is refused until it is registered; then
    Guided Backprop treats it as keras' ReLU: the tape oracle's Guided Backprop of the twin
    model with ReLU layers."""

    class ElementwiseRelu(keras.layers.Layer):
        def call(self, x):
            return tf.maximum(x, 0.0)

    custom, plain = _twin_models(ElementwiseRelu)
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    with pytest.raises(kp.NotAnalyzableModelError, match="ElementwiseRelu.*register_layer"):
        kp.create_analyzer("guided_backprop", custom)
    entry = roles.register_layer(ElementwiseRelu, roles.ACTIVATION, family="relu")
    assert roles.LAYERS[roles.LAYERS.name_of(entry)].layer_class is ElementwiseRelu
    assert "ElementwiseRelu" in roles.supported_summary()
    got = kp.create_analyzer("guided_backprop", custom).analyze(x)  # the model built before
    want = tape_gradient(rectifier_model(plain, "guided_backprop"), x)
    assert_close(got, want)
    assert not np.allclose(got, tape_gradient(plain, x), atol=1e-6)  # not the gradient
    with pytest.raises(ValueError, match="registered already"):
        roles.register_layer(ElementwiseRelu, roles.ACTIVATION, family="relu")


def test_a_summing_layer_registered_outside_the_package_divides_relevance():
    """A two-input sum registered as a summing map gets LRP's proportional split: LRP-epsilon
    equals that of the twin model with keras' Add."""

    class Plus(keras.layers.Layer):
        def call(self, xs):
            return tf.add(xs[0], xs[1])  # TensorFlow: not traced, so not inlined

    class PlusTakenForRouting(Plus):
        pass

    keras.utils.set_random_seed(5)
    a, b, head = layers.Dense(4), layers.Dense(4), layers.Dense(2)
    inputs = keras.Input((6,))

    def build(summing):
        return keras.Model(inputs, head(layers.ReLU()(summing()([a(inputs), b(inputs)]))))

    custom, plain = build(Plus), build(layers.Add)
    x = np.random.default_rng(2).normal(size=(5, 6)).astype("float32")
    with pytest.raises(kp.NotAnalyzableModelError, match="Plus"):
        kp.create_analyzer("lrp.epsilon", custom)
    roles.register_layer(Plus, roles.FIXED_LINEAR, is_sum=True)
    (node,) = [n for n in prepare(custom).nodes if isinstance(n.op, Plus)]
    assert node.is_sum and not node.is_routing
    want = kp.create_analyzer("lrp.epsilon", plain).analyze(x)
    assert_close(kp.create_analyzer("lrp.epsilon", custom).analyze(x), want)
    roles.register_layer(PlusTakenForRouting, roles.FIXED_LINEAR)  # not a sum: the split differs
    routed = kp.create_analyzer("lrp.epsilon", build(PlusTakenForRouting)).analyze(x)
    assert not np.allclose(routed, want, atol=1e-3)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((int, roles.ACTIVATION), {"family": "relu"}, TypeError, "Layer subclass"),
    ((layers.Layer, "linear"), {}, ValueError, "role 'linear' is not one of"),
    ((layers.Layer, roles.ACTIVATION), {}, ValueError, "needs family="),
    ((layers.Layer, roles.ACTIVATION), {"family": "rleu"}, ValueError, "family 'rleu'"),
    ((layers.Layer, roles.AFFINE), {"is_sum": True}, ValueError, "takes is_sum="),
    ((layers.Layer, roles.KERNEL), {}, ValueError, "needs kernel_maps="),
])
def test_register_layer_refuses_what_the_role_cannot_use(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        roles.register_layer(*args, **kwargs)
    assert roles.layer_role(layers.Layer()) is None
