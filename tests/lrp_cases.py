"""The models, inputs and analyzers of the LRP and Deep Taylor tests (tests/test_lrp_*.py),
built once and shared, with the helpers the tests compare with."""

import warnings

import keras
import lrp_reference as ref
import numpy as np
import tensorflow as tf
from keras import layers

import keras_patterns as kp

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


def draw_biases(model, rng, scale=0.3):
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
    draw_biases(m, np.random.default_rng(seed))
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
    draw_biases(m, np.random.default_rng(seed))
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
    draw_biases(m, np.random.default_rng(seed), scale=0.1)
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
    draw_biases(m, np.random.default_rng(seed), scale=0.1)
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
    draw_biases(m, rng)
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


def selected_y(m, x, mode, index=None):
    y = ref.predict(m, x)
    return ref.start_relevance(y, mode, index).reshape(len(x), -1).sum(axis=1)


def assert_conserves(R, y_sel):
    sums = R.reshape(len(R), -1).sum(axis=1)
    np.testing.assert_allclose(sums, y_sel, rtol=RTOL, atol=RTOL * np.abs(y_sel).max())


def logits_tape_gradient(m, x, index=None):
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
