"""Graph walking: nested, shared, multi-input/-output models, keras.ops nodes, softmax.

Oracle: tf.GradientTape over the user's model.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import layers, ops
from oracles import assert_close, tape_gradient

import keras_patterns as kp


def _x(*shape):
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def _check_gradient(model, x, output=None, **kw):
    fn = model if output is None else (lambda v: model(v)[output])
    expected = tape_gradient(fn, x)
    got = kp.create_analyzer("gradient", model, **kw).analyze(x)
    if isinstance(expected, list):
        for g, e in zip(got, expected):
            assert_close(g, e)
    else:
        assert_close(got, expected)
    return got


def test_sequential_built_three_ways():
    x = _x(4, 6)
    for how in ("input", "build", "call"):
        if how == "input":
            m = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu"),
                                  layers.Dense(3)])
        else:
            m = keras.Sequential([layers.Dense(5, activation="relu"), layers.Dense(3)])
            if how == "build":
                m.build((None, 6))
            else:
                m(x)
        _check_gradient(m, x)


def test_unbuilt_sequential_is_refused():
    m = keras.Sequential([layers.Dense(3)])
    with pytest.raises(kp.NotAnalyzableModelError, match="not built"):
        kp.create_analyzer("gradient", m)


@pytest.mark.parametrize("method", ["guided_backprop", "lrp.z", "pattern.net"])
def test_subclassed_model_is_refused_by_rule_methods(method):
    """Methods with a rule per layer need the functional graph; the message names the way
    out. (The gradient family explains it with a tape: tests/test_any_layer.py.)"""
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    m = Sub()
    m(_x(2, 3))
    with pytest.raises(kp.NotAnalyzableModelError,
                       match=r"subclassed.*keras\.Model\(inputs, model\.call\(inputs\)\)"):
        kp.create_analyzer(method, m)


def _nested():
    inner_seq = keras.Sequential(
        [keras.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(8)], name="inner_seq"
    )
    i = keras.Input((8,))
    middle = keras.Model(i, layers.ReLU()(inner_seq(layers.Dense(6)(i))), name="middle")
    o = keras.Input((8,))
    h = middle(o)
    out = layers.Dense(4)(h)
    return keras.Model(o, out)


def test_nested_models_are_inlined():
    m = _nested()
    a = kp.create_analyzer("gradient", m)
    names = [n.name for n in a.graph.nodes]
    assert any(n.startswith("middle/inner_seq/") for n in names), names
    x = _x(5, 8)
    _check_gradient(m, x)
    # Guided backprop sees the ReLU inside the nested model (a model that hides its
    # layers from the rules would silently give the gradient instead).
    gb = kp.create_analyzer("guided_backprop", m).analyze(x)
    assert not np.allclose(gb, a.analyze(x))


def test_shared_layer_each_call_is_a_node():
    shared = layers.Dense(5, activation="relu", name="shared")
    i = keras.Input((5,))
    h = shared(i)
    h = shared(h)  # the same layer applied twice
    m = keras.Model(i, layers.Dense(2)(h))
    a = kp.create_analyzer("gradient", m)
    kernels = [n.name for n in a.graph.nodes if n.role == "kernel"]
    assert kernels.count("shared") == 1 and "shared_1" in kernels
    _check_gradient(m, _x(3, 5))


def test_shared_nested_model_used_twice():
    block = keras.Sequential([keras.Input((4,)), layers.Dense(4, activation="tanh")],
                             name="block")
    i = keras.Input((4,))
    m = keras.Model(i, layers.Dense(3)(block(block(i))))
    _check_gradient(m, _x(3, 4))


def test_fan_out_signals_are_summed():
    i = keras.Input((6,))
    h = layers.Dense(6, activation="relu")(i)
    a = layers.Dense(4)(h)
    b = layers.Dense(4)(h)
    c = layers.Dense(4)(i)  # the input itself also fans out
    m = keras.Model(i, layers.Dense(2)(layers.Add()([a, b, c])))
    _check_gradient(m, _x(5, 6))


def test_several_inputs_give_a_list():
    i1, i2 = keras.Input((5,), name="left"), keras.Input((3,), name="right")
    h = layers.Concatenate()([layers.Dense(4, activation="relu")(i1), i2])
    m = keras.Model([i1, i2], layers.Dense(3)(h))
    xs = [_x(4, 5), _x(4, 3)]
    got = _check_gradient(m, xs)
    assert isinstance(got, list) and [g.shape for g in got] == [(4, 5), (4, 3)]


def test_input_that_does_not_reach_the_output_gets_zeros():
    i1, i2 = keras.Input((5,)), keras.Input((3,))
    m = keras.Model([i1, i2], [layers.Dense(2)(i1), layers.Dense(2)(i2)])
    got = kp.create_analyzer("gradient", m, output_index=0).analyze([_x(2, 5), _x(2, 3)])
    assert np.all(got[1] == 0) and np.any(got[0] != 0)


def test_several_outputs_need_output_index():
    i = keras.Input((5,))
    h = layers.Dense(6, activation="relu")(i)
    m = keras.Model(i, [layers.Dense(3)(h), layers.Dense(2)(h)])
    with pytest.raises(kp.NotAnalyzableModelError, match="output_index"):
        kp.create_analyzer("gradient", m)
    with pytest.raises(kp.NotAnalyzableModelError, match="out of range"):
        kp.create_analyzer("gradient", m, output_index=2)
    x = _x(3, 5)
    for k in (0, 1):
        _check_gradient(m, x, output=k, output_index=k)


def test_keras_ops_in_the_graph():
    i = keras.Input((6,))
    h = layers.Dense(6)(i)
    h = ops.relu(h) + i  # keras.ops.relu node and an Add op node
    h = h[:, 1:5]  # slicing
    m = keras.Model(i, layers.Dense(3)(h))
    x = _x(4, 6)
    _check_gradient(m, x)
    # keras.ops.relu is a rectifier for guided backprop too.
    kp.create_analyzer("guided_backprop", m).analyze(x)


@pytest.mark.parametrize("how", ["activation_arg", "activation_layer", "softmax_layer"])
def test_final_softmax_is_stripped_with_a_warning(how):
    i = keras.Input((5,))
    h = layers.Dense(6, activation="relu")(i)
    if how == "activation_arg":
        logits_layer = layers.Dense(4, activation="softmax")
        out = logits_layer(h)
    else:
        logits_layer = layers.Dense(4)
        soft = layers.Activation("softmax") if how == "activation_layer" else layers.Softmax()
        out = soft(logits_layer(h))
    m = keras.Model(i, out)
    x = _x(3, 5)

    def logits(v):
        hidden = m.layers[1](v)
        return ops.matmul(hidden, logits_layer.kernel) + logits_layer.bias

    with pytest.warns(UserWarning, match="softmax") as record:
        a = kp.create_analyzer("gradient", m)
    assert record[0].filename == __file__  # the warning points at the user's line
    assert_close(a.analyze(x), tape_gradient(logits, x))


def test_the_users_model_is_not_modified():
    m = _nested()
    x = _x(3, 8)
    before_out = m(x).numpy()
    before_weights = [w.copy() for w in m.get_weights()]
    nodes = {id(layer): (len(layer._inbound_nodes), len(layer._outbound_nodes))
             for layer in m._flatten_layers()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings for a model without softmax
        for name in ("gradient", "guided_backprop", "integrated_gradients"):
            kp.create_analyzer(name, m).analyze(x)
    assert np.array_equal(m(x).numpy(), before_out)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), before_weights))
    after = {id(layer): (len(layer._inbound_nodes), len(layer._outbound_nodes))
             for layer in m._flatten_layers()}
    assert after == nodes


def test_reverse_model_shares_the_forward_variables():
    m = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    a = kp.create_analyzer("gradient", m)
    x = _x(2, 4)
    g1 = a.analyze(x)
    m.layers[0].kernel.assign(2 * m.layers[0].kernel)  # the user retrains / edits weights
    assert_close(a.analyze(x), 2 * g1)
    assert isinstance(a.reverse_model, keras.Model)
    assert a.reverse_model.count_params() == 0  # no copies of the weights
