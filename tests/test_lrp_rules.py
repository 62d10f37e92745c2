"""LRP and Deep Taylor analyzers against the closed-form numpy reference (`lrp_reference`)
and conservation laws (identities, composites and the stabiliser: tests/test_lrp_*.py)."""

import keras
import lrp_reference as ref
import numpy as np
import pytest
from keras import layers
from lrp_cases import (
    ANALYZERS,
    CONSERVING_CASES,
    WITH_PARAMS,
    analyzer,
    assert_close,
    assert_conserves,
    draw_biases,
    index_for,
    inputs,
    logits_tape_gradient,
    model,
    selected_y,
)

import keras_patterns as kp

# -- the reference itself --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dense", "conv", "pool2d", "pool1d", "bn"])
def test_reference_forward_is_the_keras_forward(key):
    m = model(key)
    x = inputs(key)
    logits = m.layers[-1].input if key == "conv" else m.outputs[0]
    expected = keras.Model(m.inputs[0], logits)(x).numpy()
    if key == "conv":  # the softmax input: the last Dense layer without its activation
        last = m.layers[-1]
        expected = expected @ last.kernel.numpy() + last.bias.numpy()
    assert_close(ref.predict(m, x), expected, rtol=1e-5)


def test_reference_transposes_are_adjoint():
    """<f(v; K), s> == <v, f^T(K; s)> for every kernel map (checks the patch scatter)."""
    rng = np.random.default_rng(0)
    for key in ["conv", "pool2d", "pool1d"]:
        steps = ref.parse(model(key))
        ref.forward(steps, inputs(key).astype(np.float64))
        for s in steps:
            if s["kind"] != "kernel":
                continue
            op = s["op"]
            v = rng.normal(size=(2,) + tuple(s["layer"].input.shape[1:]))
            fv = op.f(v, op.W)
            t = rng.normal(size=fv.shape)
            assert np.isclose((fv * t).sum(), (v * op.fT(op.W, t)).sum(), rtol=1e-10)


@pytest.mark.parametrize("name,key", CONSERVING_CASES)
def test_reference_conserves(name, key):
    x = inputs(key, low=0.0)
    R = ref.reference(name, model(key), x, **ANALYZERS[name])
    assert_conserves(R, selected_y(model(key), x, "max_activation"))


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_reference_z_is_input_times_gradient(key):
    m = model(key)
    x = inputs(key)
    R = ref.reference("lrp.z", m, x)
    assert_close(R, x * logits_tape_gradient(m, x), rtol=1e-5)


# -- every analyzer against the closed form -------------------------------------------------


def _check_against_reference(name, key, mode, params):
    m = model(key)
    x = inputs(key)
    n_out = int(np.prod(m.output_shape[1:]))
    index = index_for(len(x), n_out) if mode == "index" else None
    got = analyzer(name, key, mode, **params).analyze(x, neuron_selection=index)
    expected = ref.reference(name, m, x, mode, index, **params)
    assert_close(got, expected)


@pytest.mark.parametrize("mode", ["max_activation", "index"])
@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("name", list(ANALYZERS))
def test_analyzer_equals_closed_form(name, key, mode):
    _check_against_reference(name, key, mode, ANALYZERS[name])


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("name,params", WITH_PARAMS)
def test_analyzer_parameters(name, params, key):
    _check_against_reference(name, key, "max_activation", params)


@pytest.mark.parametrize("name", ["lrp.z", "lrp.alpha_2_beta_1", "deep_taylor"])
def test_all_mode(name):
    """neuron_selection_mode="all": the relevance starts as y at every output."""
    _check_against_reference(name, "dense", "all", ANALYZERS[name])


def test_index_mode_with_one_int():
    x = inputs("conv")
    got = analyzer("lrp.epsilon", "conv", "index").analyze(x, neuron_selection=2)
    assert_close(got, ref.reference("lrp.epsilon", model("conv"), x, "index", 2))


@pytest.mark.parametrize("key", ["pool2d", "pool1d"])
@pytest.mark.parametrize(
    "name", ["lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.z_plus", "lrp.z_plus_fast",
             "lrp.gamma"]
)
def test_pooling_conv1d_dilation(name, key):
    """Max pooling (winner takes all), average and global average pooling (proportional),
    Conv1D, `same` padding with strides and dilation."""
    _check_against_reference(name, key, "max_activation", ANALYZERS[name])


@pytest.mark.parametrize(
    "name", ["lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.w_square", "deep_taylor"]
)
def test_batchnorm_is_folded(name):
    _check_against_reference(name, "bn", "max_activation", ANALYZERS[name])


def _merge_model():
    keras.utils.set_random_seed(9)
    x = keras.Input((6,))
    a = layers.Dense(4, name="branch_a")(x)
    b = layers.Dense(4, name="branch_b")(x)
    c = layers.Dense(3, name="branch_c")(x)
    s = layers.Add()([a, b])
    t = layers.Average()([a, b])
    h = layers.ReLU()(layers.Concatenate()([s, t, c]))
    out = layers.Dense(2, name="head")(h)
    m = keras.Model(x, out)
    draw_biases(m, np.random.default_rng(9))
    return m


def _merge_reference(m, x, rule):
    """Relevance through Add / Average (proportional) and Concatenate (routed)."""
    ops = {n: ref.DenseOp(m.get_layer(n).kernel.numpy(), m.get_layer(n).bias.numpy())
           for n in ("branch_a", "branch_b", "branch_c", "head")}
    x = x.astype(np.float64)
    a, b, c = (ops[n].f(x, ops[n].W) + ops[n].b for n in ("branch_a", "branch_b", "branch_c"))
    h = np.maximum(np.concatenate([a + b, (a + b) / 2, c], axis=1), 0)
    y = ops["head"].f(h, ops["head"].W) + ops["head"].b
    R = rule(ops["head"], h, ref.start_relevance(y))
    Rs, Rt, Rc = R[:, :4], R[:, 4:8], R[:, 8:]
    Ra_s, Rb_s = ref.sum_relevance([a, b], Rs)
    Ra_t, Rb_t = ref.sum_relevance([a, b], Rt)  # the average: proportional to a and b
    return (rule(ops["branch_a"], x, Ra_s + Ra_t) + rule(ops["branch_b"], x, Rb_s + Rb_t)
            + rule(ops["branch_c"], x, Rc))


@pytest.mark.parametrize("name", ["lrp.z", "lrp.epsilon_IB", "lrp.alpha_2_beta_1"])
def test_add_average_concatenate(name):
    m = _merge_model()
    x = np.random.default_rng(1).uniform(-1, 1, (5, 6)).astype("float32")
    got = kp.create_analyzer(name, m).analyze(x)
    rule_for, _ = ref.analyzer_setup(name)
    assert_close(got, _merge_reference(m, x, rule_for(None)))


# -- conservation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,key", CONSERVING_CASES)
def test_conservation(name, key):
    x = inputs(key, low=0.0)
    R = analyzer(name, key, **ANALYZERS[name]).analyze(x)
    assert_conserves(R, selected_y(model(key), x, "max_activation"))


def test_conservation_index_mode_negative_outputs():
    """Z-IB conserves whatever the sign of the selected output."""
    key = "dense_nobias"
    x = inputs(key, low=0.0)
    index = index_for(len(x), 3)
    R = analyzer("lrp.z_IB", key, "index").analyze(x, neuron_selection=index)
    y_sel = selected_y(model(key), x, "index", index)
    assert (y_sel < 0).any()
    assert_conserves(R, y_sel)

