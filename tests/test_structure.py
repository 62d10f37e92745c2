"""The structure a maintainer extends: a new LRP rule is one class and one registry line, a
new signal estimator one class and one line, composites are objects, graph nodes are
typed. Each extension is checked against an independent computation."""

import dataclasses

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close

import keras_patterns as kp
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
    scale = 1.0 / np.sqrt(np.array([4.0, 0.25, 1.0]) + bn.epsilon)
    assert_close(folded.kernel, model.layers[0].kernel.numpy() * scale)
    twin = folded.channels_last()
    assert isinstance(twin, FoldedMap)
    assert twin.layer.data_format == "channels_last" and twin.channel_axis == -1
    assert_close(twin.kernel, folded.kernel)
    assert flatten(model).layer_order == [layer.name for layer in model.layers]
