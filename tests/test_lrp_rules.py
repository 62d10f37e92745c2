"""LRP and Deep Taylor analyzers against the closed-form numpy reference (`lrp_reference`),
conservation laws and known identities."""

import functools
import warnings

import keras
import lrp_reference as ref
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import keras_patterns as kp
import keras_patterns.rules.lrp as rules_lrp
from keras_patterns.reverse.relevance import SumRelevance
from keras_patterns.rules.lrp import LayerView

RTOL = 1e-4

# name -> constructor parameters (also passed to the reference)
ANALYZERS = {
    "lrp.z": {},
    "lrp.z_IB": {},
    "lrp.epsilon": {},
    "lrp.epsilon_IB": {},
    "lrp.w_square": {},
    "lrp.flat": {},
    "lrp.alpha_beta": {"alpha": 3.0, "beta": 2.0},
    "lrp.alpha_2_beta_1": {},
    "lrp.alpha_2_beta_1_IB": {},
    "lrp.alpha_1_beta_0": {},
    "lrp.alpha_1_beta_0_IB": {},
    "lrp.z_plus": {},
    "lrp.z_plus_fast": {},
    "lrp.gamma": {},
    "lrp.sequential_preset_a": {},
    "lrp.sequential_preset_b": {},
    "lrp.sequential_preset_a_flat": {},
    "lrp.sequential_preset_b_flat": {},
    "deep_taylor": {},
    "deep_taylor.bounded": {"low": -1.0, "high": 1.0},
}
# the same analyzers with non-default parameters
WITH_PARAMS = [
    ("lrp.epsilon", {"epsilon": 0.05}),
    ("lrp.epsilon_IB", {"epsilon": 0.05}),
    ("lrp.gamma", {"gamma": 0.6}),
    ("lrp.alpha_beta", {"alpha": 1.5, "beta": 0.5}),
    ("lrp.sequential_preset_a", {"epsilon": 0.3}),
    ("lrp.sequential_preset_b_flat", {"epsilon": 0.3}),
    ("deep_taylor.bounded", {"low": -2.0, "high": 0.5}),
]


# -- helpers ---------------------------------------------------------------------------------


def assert_close(got, expected, rtol=RTOL):
    got = np.asarray(got, np.float64)
    expected = np.asarray(expected, np.float64)
    assert got.shape == expected.shape
    assert np.all(np.isfinite(got))
    scale = max(np.abs(expected).max(), 1e-6)
    err = np.abs(got - expected).max() / scale
    assert err <= rtol, f"max relative error {err:.3g} (scale {scale:.3g})"


def _draw_biases(model, rng, scale=0.3):
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(0.0, scale, layer.bias.shape).astype("float32"))


def dense_stack(bias=True, seed=1):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((6,)),
            layers.Dense(8, activation="relu", use_bias=bias, name="dense_a1"),
            layers.Dense(5, activation="relu", use_bias=bias, name="dense_a2"),
            layers.Dense(3, use_bias=bias, name="dense_out"),
        ]
    )
    _draw_biases(m, np.random.default_rng(seed))
    return m


def conv_stack(bias=True, seed=2):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", use_bias=bias,
                          name="conv_1"),
            layers.Conv2D(4, 2, padding="valid", dilation_rate=1, activation="relu",
                          use_bias=bias, name="conv_2"),
            layers.Flatten(),
            # a final softmax: the logits are explained
            layers.Dense(3, activation="softmax", use_bias=bias, name="dense_out"),
        ]
    )
    _draw_biases(m, np.random.default_rng(seed))
    return m


def dead_stack(seed=3):
    """The first layer's units are all dead (very negative bias)."""
    m = dense_stack(seed=seed)
    m.layers[0].bias.assign(np.full(8, -50.0, "float32"))
    return m


def half_dead_stack(seed=11):
    """Half of the first layer's units and two of the second layer's are dead."""
    m = dense_stack(seed=seed)
    b1, b2 = m.layers[0].bias.numpy(), m.layers[1].bias.numpy()
    b1[:4] = -50.0
    b2[:2] = -50.0
    m.layers[0].bias.assign(b1)
    m.layers[1].bias.assign(b2)
    return m


def pool2d_stack(seed=4):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((9, 8, 2)),
            layers.Conv2D(3, (3, 2), strides=(2, 3), padding="same", activation="relu"),
            layers.Conv2D(4, 2, padding="same", dilation_rate=2),
            layers.ReLU(),
            layers.MaxPooling2D(2, strides=1),
            layers.AveragePooling2D(2),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3),
        ]
    )
    _draw_biases(m, np.random.default_rng(seed), scale=0.1)
    return m


def pool1d_stack(seed=5):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((12, 2)),
            layers.Conv1D(4, 3, dilation_rate=2, padding="same", activation="relu"),
            layers.MaxPooling1D(2),
            layers.Conv1D(3, 2, strides=2, padding="valid", activation="relu"),
            layers.AveragePooling1D(2, strides=1),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2),
        ]
    )
    _draw_biases(m, np.random.default_rng(seed), scale=0.1)
    return m


def bn_stack(seed=6):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((6,)),
            layers.Dense(8, name="dense_a1"),
            layers.BatchNormalization(epsilon=1e-3),
            layers.ReLU(),
            layers.Dense(3, name="dense_out"),
        ]
    )
    rng = np.random.default_rng(seed)
    _draw_biases(m, rng)
    bn = m.layers[1]
    bn.gamma.assign(rng.uniform(0.5, 1.5, 8).astype("float32") * rng.choice([-1, 1], 8))
    bn.beta.assign(rng.normal(0, 0.3, 8).astype("float32"))
    bn.moving_mean.assign(rng.normal(0, 0.3, 8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype("float32"))
    return m


def linear_model(seed=10):
    """One Dense layer without bias; every unit has positive and negative weights."""
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((6,)), layers.Dense(3, use_bias=False)])
    W = m.layers[0].kernel.numpy()
    assert ((W > 0).any(axis=0) & (W < 0).any(axis=0)).all()
    return m


_MODELS = {}


def model(key):
    if key not in _MODELS:
        builders = {
            "dense": dense_stack,
            "conv": conv_stack,
            "dense_nobias": lambda: dense_stack(bias=False, seed=7),
            "conv_nobias": lambda: conv_stack(bias=False, seed=8),
            "dead": dead_stack,
            "half_dead": half_dead_stack,
            "pool2d": pool2d_stack,
            "pool1d": pool1d_stack,
            "bn": bn_stack,
            "linear": linear_model,
        }
        _MODELS[key] = builders[key]()
    return _MODELS[key]


# data seeds chosen so that no denominator of the rules is nearly zero (float32 vs float64)
INPUT_SEED = {"dense": 1, "conv": 6, "pool2d": 0, "pool1d": 4, "bn": 5}


def inputs(key, n=6, seed=None, low=-1.0, high=1.0):
    shape = model(key).input_shape[1:]
    seed = INPUT_SEED.get(key, 0) if seed is None else seed
    return np.random.default_rng(seed).uniform(low, high, (n,) + shape).astype("float32")


_ANALYZERS = {}


def analyzer(name, key, mode="max_activation", **params):
    k = (name, key, mode, repr(sorted(params.items())))
    if k not in _ANALYZERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the softmax removal warning
            _ANALYZERS[k] = kp.create_analyzer(
                name, model(key), neuron_selection_mode=mode, **params
            )
    return _ANALYZERS[k]


def index_for(n, n_out):
    return np.arange(n) % n_out


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


CONSERVING = ["lrp.z_IB", "lrp.epsilon_IB", "lrp.w_square", "lrp.flat", "lrp.z_plus_fast",
              "lrp.z_plus", "lrp.alpha_1_beta_0_IB", "lrp.alpha_2_beta_1_IB", "lrp.z",
              "lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "lrp.alpha_beta", "lrp.gamma"]
# alpha-beta with beta > 0 conserves only where every unit has a negative contribution
# (z- != 0): not after a relu (zero inputs), so those run on the one-layer model
_NEEDS_Z_MINUS = ("lrp.alpha_2_beta_1_IB", "lrp.alpha_2_beta_1", "lrp.alpha_beta")
CONSERVING_CASES = [
    (n, k)
    for n in CONSERVING
    for k in (("linear",) if n in _NEEDS_Z_MINUS else ("dense_nobias", "conv_nobias", "linear"))
] + [
    ("lrp.w_square", "dense"),  # the rules that ignore x conserve with biases too
    ("lrp.w_square", "conv"),
    ("lrp.flat", "dense"),
    ("lrp.flat", "conv"),
]


def _selected_y(m, x, mode, index=None):
    y = ref.predict(m, x)
    return ref.start_relevance(y, mode, index).reshape(len(x), -1).sum(axis=1)


def _assert_conserves(R, y_sel):
    sums = R.reshape(len(R), -1).sum(axis=1)
    np.testing.assert_allclose(sums, y_sel, rtol=RTOL, atol=RTOL * np.abs(y_sel).max())


@pytest.mark.parametrize("name,key", CONSERVING_CASES)
def test_reference_conserves(name, key):
    x = inputs(key, low=0.0)
    R = ref.reference(name, model(key), x, **ANALYZERS[name])
    _assert_conserves(R, _selected_y(model(key), x, "max_activation"))


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_reference_z_is_input_times_gradient(key):
    m = model(key)
    x = inputs(key)
    R = ref.reference("lrp.z", m, x)
    assert_close(R, x * _tape_gradient(m, x), rtol=1e-5)


# -- a. every analyzer against the closed form -------------------------------------------------


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
    _draw_biases(m, np.random.default_rng(9))
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


# -- b. conservation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,key", CONSERVING_CASES)
def test_conservation(name, key):
    x = inputs(key, low=0.0)
    R = analyzer(name, key, **ANALYZERS[name]).analyze(x)
    _assert_conserves(R, _selected_y(model(key), x, "max_activation"))


def test_conservation_index_mode_negative_outputs():
    """Z-IB conserves whatever the sign of the selected output."""
    key = "dense_nobias"
    x = inputs(key, low=0.0)
    index = index_for(len(x), 3)
    R = analyzer("lrp.z_IB", key, "index").analyze(x, neuron_selection=index)
    y_sel = _selected_y(model(key), x, "index", index)
    assert (y_sel < 0).any()
    _assert_conserves(R, y_sel)


# -- c. identities -----------------------------------------------------------------------------


def _tape_gradient(m, x, index=None):
    """d y_sel / dx of the logits (start 1 at the selected output)."""
    last = m.layers[-1]
    logits_model = keras.Model(m.inputs, last.input)
    W = tf.constant(last.kernel.numpy(), tf.float64)
    b = tf.constant(last.bias.numpy() if last.use_bias else np.zeros(W.shape[-1]), tf.float64)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.matmul(tf.cast(logits_model(xt), tf.float64), W) + b
    y_np = y.numpy()
    mask = ref.start_relevance(y_np, "index" if index is not None else "max_activation", index)
    mask = (mask != 0).astype(np.float64)
    return tape.gradient(y, xt, output_gradients=tf.constant(mask)).numpy()


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_z_is_input_times_gradient_without_bias(key):
    """On a bias-free relu net, LRP-0 started with y is x * d y_sel / dx."""
    m = model(key)
    x = inputs(key)
    assert_close(analyzer("lrp.z", key).analyze(x), x * _tape_gradient(m, x))
    index = index_for(len(x), 3)
    got = analyzer("lrp.z", key, "index").analyze(x, neuron_selection=index)
    assert_close(got, x * _tape_gradient(m, x, index))


@pytest.mark.parametrize("key", ["dense", "conv"])
def test_z_plus_is_alpha_1_beta_0_ib(key):
    x = inputs(key)
    assert_close(analyzer("lrp.z_plus", key).analyze(x),
                 analyzer("lrp.alpha_1_beta_0_IB", key).analyze(x))


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_alpha_beta_1_0_without_bias_is_alpha_1_beta_0(key):
    x = inputs(key)
    assert_close(analyzer("lrp.alpha_beta", key, alpha=1.0, beta=0.0).analyze(x),
                 analyzer("lrp.alpha_1_beta_0", key).analyze(x))


@pytest.mark.parametrize("key", ["dense_nobias", "conv_nobias"])
def test_ib_rules_equal_bias_rules_without_bias(key):
    x = inputs(key)
    for a, b in [("lrp.z", "lrp.z_IB"), ("lrp.epsilon", "lrp.epsilon_IB"),
                 ("lrp.alpha_2_beta_1", "lrp.alpha_2_beta_1_IB")]:
        assert_close(analyzer(a, key).analyze(x), analyzer(b, key).analyze(x))


@pytest.mark.parametrize("key", ["dense", "conv"])
def test_epsilon_default_is_z(key):
    x = inputs(key)
    assert_close(analyzer("lrp.epsilon", key).analyze(x), analyzer("lrp.z", key).analyze(x))


# -- d. alpha-beta with a negative bias (iNNvestigate bug report) --------------------------------


def _bias_case_model():
    m = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
    m.layers[0].kernel.assign(np.array([[1.0], [-1.0]], "float32"))
    m.layers[0].bias.assign(np.array([-1.0], "float32"))
    return m


# worked by hand: y = 1 - 1 - 1 = -1; z+ = 1 (x1 w1) + b+ (0) = 1; z- = -1 (x2 w2) + b- (-1) = -2
# alpha=2, beta=1: R = 2 * [1 * (-1) / 1, 0] - 1 * [0, 1 * (-1) * (-1 / -2)] = [-2, 0.5]
# alpha=1, beta=0: R = [-1, 0]
BIAS_CASE = [
    ("lrp.alpha_2_beta_1", {}, [-2.0, 0.5]),
    ("lrp.alpha_beta", {"alpha": 2.0, "beta": 1.0}, [-2.0, 0.5]),
    ("lrp.alpha_1_beta_0", {}, [-1.0, 0.0]),
]


@pytest.mark.parametrize("name,params,by_hand", BIAS_CASE)
def test_alpha_beta_negative_bias_is_finite(name, params, by_hand):
    m = _bias_case_model()
    x = np.array([[1.0, 1.0]], "float32")
    a = kp.create_analyzer(name, m, neuron_selection_mode="index", **params)
    got = a.analyze(x, neuron_selection=0)
    expected = ref.reference(name, m, x, "index", 0, **params)
    np.testing.assert_allclose(expected, [by_hand], atol=1e-6)  # the reference, by hand
    assert np.all(np.isfinite(got)) and np.abs(got).max() < 10
    assert_close(got, expected)


# -- e. numerics -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("name", list(ANALYZERS))
def test_finite_on_zero_huge_and_tiny_inputs(name, key):
    x = inputs(key, n=2)
    batch = np.concatenate([np.zeros_like(x[:1]), x * 1e20, x * 1e-20]).astype("float32")
    R = analyzer(name, key, **ANALYZERS[name]).analyze(batch)
    assert np.all(np.isfinite(R))


@pytest.mark.parametrize("key", ["dead", "half_dead"])
@pytest.mark.parametrize("name", list(ANALYZERS))
def test_dead_units(name, key):
    """Layers with inactive units (all of them in "dead"): finite, and still the closed form."""
    x = inputs(key, n=3)
    R = analyzer(name, key, **ANALYZERS[name]).analyze(x)
    assert np.all(np.isfinite(R))
    expected = ref.reference(name, model(key), x, **ANALYZERS[name])
    assert np.all(np.isfinite(expected))
    assert_close(R, expected)


# -- f. composite rules ------------------------------------------------------------------------


def _rule_by(choice):
    """rule_for(step) from a function of the step's layer / position."""
    return lambda step: ref.RULES[choice(step)]


COMPOSITES = [
    (
        "conv",
        [("dense_*", "epsilon"), (keras.layers.Conv2D, "alpha_1_beta_0")],
        lambda s: "epsilon" if s["layer"].name == "dense_out" else "alpha_1_beta_0",
    ),
    (
        "conv",
        # positions count every layer of the model (the Flatten is position 2)
        [(0, "flat"), (1, "z_plus"), (3, "w_square")],
        lambda s: ["flat", "z_plus", "w_square"][s["position"]],
    ),
    (
        "conv",  # first match wins
        [("conv_1", "gamma"), ("conv*", "z"), ("*", "alpha_2_beta_1")],
        lambda s: {"conv_1": "gamma", "conv_2": "z"}.get(s["layer"].name, "alpha_2_beta_1"),
    ),
    (
        "dense",
        [(keras.layers.Dense, "z_plus"), ("*", "flat")],
        lambda s: "z_plus",
    ),
    (
        "dense",
        [(2, "epsilon"), ("dense_a*", "z_plus_fast")],
        lambda s: "epsilon" if s["position"] == 2 else "z_plus_fast",
    ),
]


@pytest.mark.parametrize("case", range(len(COMPOSITES)))
def test_composite_rule_selection(case):
    key, rule, choice = COMPOSITES[case]
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule=rule)
    expected = ref.walk(model(key), x, _rule_by(choice))
    assert_close(a.analyze(x), expected)


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("rule", ["z", "epsilon", "alpha_1_beta_0", "w_square", "flat",
                                  "z_plus", "gamma"])
def test_generic_rule_name(rule, key):
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule=rule)
    assert_close(a.analyze(x), ref.walk(model(key), x, _rule_by(lambda s: rule)))


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (-3.0, 0.5)])
def test_input_layer_rule_bounded(bounds, key):
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule="z", input_layer_rule=bounds)
    low, high = bounds

    def rule_for(step):
        if step["is_input"]:
            return ref.P(ref.rule_bounded, low=low, high=high)
        return ref.RULES["z"]

    assert_close(a.analyze(x), ref.walk(model(key), x, rule_for))


def test_input_layer_rule_name():
    key = "conv"
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule="alpha_2_beta_1", input_layer_rule="flat")
    expected = ref.walk(model(key), x, _rule_by(
        lambda s: "flat" if s["is_input"] else "alpha_2_beta_1"))
    assert_close(a.analyze(x), expected)


# -- g. the stabiliser: exact division, zero denominators finite -------------------------------
#
# The rules without an epsilon of their own divide exactly (as iNNvestigate's SafeDivide does);
# only a zero (or subnormal) denominator is replaced, by +-1e-7. Checked on one Dense layer
# against the plain numpy formulas, with data whose float32 sums are exact (x in quarters, W in
# eighths, columns scaled by powers of two), so that the package's z is the numpy z.


class _DenseMap:
    """A dense kernel map for `LayerView`: f(v; K) = v @ K."""

    def __init__(self, kernel, bias):
        self.kernel = tf.constant(kernel, tf.float32)
        self.bias = None if bias is None else tf.constant(bias, tf.float32)

    def apply(self, v, kernel):
        return tf.matmul(v, kernel)

    def broadcast(self, vector, rank):
        return vector


def _rule_on_dense(rule, x, W, b, r):
    kmap = _DenseMap(W, b)
    xt = tf.constant(x, tf.float32)
    z = kmap.apply(xt, kmap.kernel) + (0.0 if b is None else kmap.bias)
    layer = LayerView(kmap, xt, z)
    return rule.relevance(layer, tf.constant(r, tf.float32)).numpy().astype(np.float64)


def _divide_plain(r, z):
    return r / z


def _divide_epsilon(r, z, eps):
    return r / ref.stab(z, eps)


def _divide_zero_as_eps(r, z):
    """iNNvestigate's SafeDivide (z == 0 -> 1e-7), subnormal float32 z counted as zero."""
    return r / np.where(np.abs(z) < np.finfo(np.float32).tiny, 1e-7, z)


def _numpy_rule(name, x, W, b, r, divide):
    """The rules' formulas in float64 with a given division (no stabiliser of their own)."""
    x, W, r = (np.asarray(a, np.float64) for a in (x, W, r))
    b = np.zeros(W.shape[1]) if b is None else np.asarray(b, np.float64)
    xp, xn, Wp, Wn = ref.pos(x), ref.neg(x), ref.pos(W), ref.neg(W)

    def alpha_beta(alpha, beta, bias):
        zp = xp @ Wp + xn @ Wn + (ref.pos(b) if bias else 0.0)
        zn = xp @ Wn + xn @ Wp + (ref.neg(b) if bias else 0.0)
        sp, sn = divide(r, zp), divide(r, zn)
        return (alpha * (xp * (sp @ Wp.T) + xn * (sp @ Wn.T))
                - beta * (xp * (sn @ Wn.T) + xn * (sn @ Wp.T)))

    if name in ("z", "z_ib"):
        return x * (divide(r, x @ W + (b if name == "z" else 0.0)) @ W.T)
    if name == "gamma":
        Wg = W + 0.25 * Wp
        return x * (divide(r, x @ Wg + b + 0.25 * ref.pos(b)) @ Wg.T)
    if name in ("w_square", "flat"):
        K = W * W if name == "w_square" else np.ones_like(W)
        return divide(r, np.ones_like(x) @ K) @ K.T
    if name == "alpha_2_beta_1":
        return alpha_beta(2.0, 1.0, True)
    if name == "alpha_2_beta_1_ib":
        return alpha_beta(2.0, 1.0, False)
    if name == "alpha_1_beta_0":
        return alpha_beta(1.0, 0.0, True)
    if name == "z_plus":
        return alpha_beta(1.0, 0.0, False)
    if name == "z_plus_fast":
        return x * (divide(r, x @ Wp) @ Wp.T)
    if name == "bounded":
        low, high = -2.0, 2.0
        z = x @ W - low * Wp.sum(axis=0) - high * Wn.sum(axis=0)
        s = divide(r, z)
        return x * (s @ W.T) - low * (s @ Wp.T) - high * (s @ Wn.T)
    raise KeyError(name)


STABILISED = {
    "z": lambda: rules_lrp.Z(), "z_ib": lambda: rules_lrp.Z(bias=False),
    "gamma": lambda: rules_lrp.Gamma(), "w_square": rules_lrp.WSquare, "flat": rules_lrp.Flat,
    "alpha_2_beta_1": lambda: rules_lrp.AlphaBeta(2.0, 1.0),
    "alpha_2_beta_1_ib": lambda: rules_lrp.AlphaBeta(2.0, 1.0, bias=False),
    "alpha_1_beta_0": lambda: rules_lrp.AlphaBeta(1.0, 0.0), "z_plus": rules_lrp.ZPlus,
    "z_plus_fast": rules_lrp.ZPlusFast, "bounded": lambda: rules_lrp.Bounded(-2.0, 2.0),
}
# column scales: 1, ~1e-3, ~1e-6 (where +-1e-7 everywhere moved results by ~10%), ~1e-12
_SCALES = 2.0 ** np.array([0, -10, -20, -40])


def _exact_data(seed=0, n=5, d=6):
    rng = np.random.default_rng(seed)

    def nonzero(k, size):  # +-1 ... +-k
        return rng.integers(1, k + 1, size) * rng.choice([-1, 1], size)

    x = nonzero(8, (n, d)) / 4.0                                # quarters in [-2, 2]
    W = nonzero(8, (d, len(_SCALES))) / 8.0 * _SCALES           # eighths, scaled columns
    b = nonzero(4, len(_SCALES)) / 16.0 * _SCALES
    r = rng.normal(size=(n, len(_SCALES)))
    return x, W, b, r


def _denominators(name, x, W, b):
    """Every denominator the rule divides by (for the data's preconditions)."""
    xp, xn, Wp, Wn = ref.pos(x), ref.neg(x), ref.pos(W), ref.neg(W)
    return {
        "z": [x @ W + b], "z_ib": [x @ W], "gamma": [x @ (W + 0.25 * Wp) + b + 0.25 * ref.pos(b)],
        "w_square": [np.ones_like(x) @ (W * W)], "flat": [np.ones_like(x) @ np.ones_like(W)],
        "alpha_2_beta_1": [xp @ Wp + xn @ Wn + ref.pos(b), xp @ Wn + xn @ Wp + ref.neg(b)],
        "alpha_2_beta_1_ib": [xp @ Wp + xn @ Wn, xp @ Wn + xn @ Wp],
        "alpha_1_beta_0": [xp @ Wp + xn @ Wn + ref.pos(b)], "z_plus": [xp @ Wp + xn @ Wn],
        "z_plus_fast": [x @ Wp], "bounded": [x @ W + 2.0 * Wp.sum(0) - 2.0 * Wn.sum(0)],
    }[name]


@pytest.mark.parametrize("name", list(STABILISED))
def test_stabiliser_moves_no_finite_quotient(name):
    """Non-zero denominators, some of them ~1e-6 and ~1e-12: exactly r / z (float32 rounding
    of the division and back-projection only), as with iNNvestigate's SafeDivide."""
    x, W, b, r = _exact_data()
    zs = _denominators(name, x, W, b)
    assert all((z != 0).all() for z in zs)
    if name != "flat":  # flat's denominators are receptive-field sizes
        assert min(np.abs(z[:, 2:]).min() for z in zs if (z[:, 2:] != 0).all()) < 1e-5
    got = _rule_on_dense(STABILISED[name](), x, W, b, r)
    expected = _numpy_rule(name, x, W, b, r, _divide_plain)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def _zero_data():
    """Exact zeros of every kind: a zero input row, a zero kernel column, a cancellation
    (x = (1, 1, ...), w = (1, -1, 0, ...)), and products in the float32 subnormal range."""
    x = np.array([[0.0, 0.0, 0.0, 0.0],
                  [1.0, 1.0, 0.0, 0.0],
                  [1.0, 1.0, 1.0, 1.0],
                  [2.0 ** -70, 2.0 ** -70, 0.0, 0.0]])
    W = np.array([[1.0, 0.0, 2.0 ** -60, 0.5],
                  [-1.0, 0.0, 2.0 ** -60, -0.5],
                  [0.0, 0.0, 0.0, 0.25],
                  [0.0, 0.0, 0.0, 0.0]])
    r = np.array([[1.0, -2.0, 0.5, 3.0]] * 4)
    return x, W, r


@pytest.mark.parametrize("name", list(STABILISED))
def test_zero_denominators_are_finite(name):
    """Zero denominators give finite relevance, iNNvestigate's value r / 1e-7 (a float32
    subnormal counts as zero, where plain division would give inf)."""
    x, W, r = _zero_data()
    zs = _denominators(name, x, W, np.zeros(W.shape[1]))
    if name != "flat":
        assert any((np.abs(z) < np.finfo(np.float32).tiny).any() for z in zs)
    got = _rule_on_dense(STABILISED[name](), x, W, None, r)
    assert np.all(np.isfinite(got))
    expected = _numpy_rule(name, x, W, None, r, _divide_zero_as_eps)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


class _SumNode:
    """A two-input Add node, as the reverse layers see it."""

    name = "add"
    inputs = outputs = ()

    def forward(self, xs):
        return [xs[0] + xs[1]]


def test_sum_relevance_divides_exactly_and_zero_sums_are_finite():
    """Add / average pooling: r_i = x_i * r / (x_1 + x_2), exact for sums ~1e-6 and ~1e-12,
    r / 1e-7 where the sum is exactly zero."""
    a = np.array([[3.0, -1.0, 2.0 ** -20, 2.0 ** -40, 1.0, 0.0]])
    c = np.array([[-1.0, -2.0, 2.0 ** -21, -2.0 ** -42, -1.0, 0.0]])
    r = np.array([[1.0, 2.0, -1.5, 0.5, 2.0, -3.0]])
    layer = SumRelevance(_SumNode())
    got = layer.reverse([tf.constant(a, tf.float32), tf.constant(c, tf.float32)],
                        [tf.constant(a + c, tf.float32)], [tf.constant(r, tf.float32)])
    s = _divide_zero_as_eps(r, a + c)
    for g, part in zip(got, (a, c)):
        g = g.numpy()
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, part * s, rtol=1e-6, atol=0)


def test_epsilon_rule_adds_epsilon_everywhere():
    """lrp.epsilon's epsilon is the rule itself: z + epsilon * sign(z) in every denominator,
    also for the default 1e-7 (unlike the z-rule, which divides exactly)."""
    x, W, b, r = _exact_data()
    for eps in (1e-7, 0.1):
        got = _rule_on_dense(rules_lrp.Epsilon(eps), x, W, b, r)
        expected = _numpy_rule("z", x, W, b, r, functools.partial(_divide_epsilon, eps=eps))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    exact = _numpy_rule("z", x, W, b, r, _divide_plain)
    assert np.abs(_rule_on_dense(rules_lrp.Epsilon(1e-7), x, W, b, r) - exact).max() > (
        1e-3 * np.abs(exact).max())
    got = _rule_on_dense(rules_lrp.Gamma(epsilon=0.1), x, W, b, r)
    Wg = W + 0.25 * ref.pos(W)
    expected = x * ((r / ref.stab(x @ Wg + b + 0.25 * ref.pos(b), 0.1)) @ Wg.T)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
