"""Property-based tests over random small architectures (Dense and convolution stacks,
residual adds, concatenations, pooling, BatchNormalization, the supported activations,
random shapes): gradient equals the tape, input x gradient equals x times the tape, lrp.z
conserves relevance on bias-free ReLU nets, PatternNet on a linear net equals its closed
form, explanations are finite. The default run draws a few examples per property; the slow
job draws many more."""

import functools
import warnings

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp

ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "leaky_relu", "linear", "softplus"]
BLOCKS = ["conv", "residual", "concat", "pool", "bn"]


@st.composite
def architectures(draw, activations=ACTIVATIONS, bias=True, bn=True):
    """A spec: input shape, blocks, head; built by `build`."""
    size = draw(st.integers(4, 8))
    channels = draw(st.integers(1, 3))
    allowed = [b for b in BLOCKS if bn or b != "bn"]
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(allowed))
        blocks.append({
            "kind": kind,
            "filters": draw(st.integers(1, 4)),
            "kernel": draw(st.integers(1, 3)),
            "stride": draw(st.integers(1, 2)),
            "padding": draw(st.sampled_from(["same", "valid"])),
            "activation": draw(st.sampled_from(activations)),
            "pool": draw(st.sampled_from(["max", "avg"])),
        })
    head = {"flatten": draw(st.booleans()), "units": draw(st.integers(1, 5)),
            "hidden": draw(st.integers(0, 6)), "activation": draw(st.sampled_from(activations))}
    return {"shape": (size, size, channels), "blocks": blocks, "head": head, "bias": bias,
            "seed": draw(st.integers(0, 2**16))}


def build(spec):
    keras.utils.set_random_seed(spec["seed"])
    bias = spec["bias"]
    inp = keras.Input(spec["shape"])
    h, size = inp, spec["shape"][0]
    for b in spec["blocks"]:
        conv = functools.partial(layers.Conv2D, b["filters"], activation=b["activation"],
                                 use_bias=bias)
        if b["kind"] == "conv":
            padding = b["padding"] if size >= b["kernel"] else "same"
            h = conv(b["kernel"], strides=b["stride"], padding=padding)(h)
            size = -(-size // b["stride"]) if padding == "same" else (
                (size - b["kernel"]) // b["stride"] + 1)
        elif b["kind"] == "residual":
            h = conv(1, padding="same")(h)
            h = layers.Add()([h, conv(b["kernel"], padding="same")(h)])
        elif b["kind"] == "concat":
            h = layers.Concatenate()([conv(1, padding="same")(h),
                                      conv(b["kernel"], padding="same")(h)])
        elif b["kind"] == "pool" and size >= 2:
            pool = layers.MaxPooling2D if b["pool"] == "max" else layers.AveragePooling2D
            h = pool(2)(h)
            size //= 2
        elif b["kind"] == "bn":
            h = layers.Conv2D(b["filters"], b["kernel"], padding="same", use_bias=bias)(h)
            h = layers.BatchNormalization()(h)
            h = layers.Activation(b["activation"])(h)
    head = spec["head"]
    h = layers.Flatten()(h) if head["flatten"] else layers.GlobalAveragePooling2D()(h)
    if head["hidden"]:
        h = layers.Dense(head["hidden"], activation=head["activation"], use_bias=bias)(h)
    model = keras.Model(inp, layers.Dense(head["units"], use_bias=bias)(h))
    for layer in model.layers:  # non-trivial inference statistics
        if isinstance(layer, layers.BatchNormalization):
            rng = np.random.default_rng(spec["seed"])
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.3, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
    return model


def _inputs(spec, n=3):
    return np.random.default_rng(spec["seed"]).normal(size=(n,) + spec["shape"]).astype(
        "float32")


def properties(strategy, check):
    """The property `check` over `strategy`: with a few examples (default run) and with
    many (slow job)."""
    common = dict(deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    quick = settings(max_examples=8, **common)(given(strategy)(check))
    thorough = pytest.mark.slow(settings(max_examples=60, **common)(given(strategy)(check)))
    return quick, thorough


def _gradient_equals_the_tape(spec):
    model, x = build(spec), _inputs(spec)
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))
    got = kp.create_analyzer("input_t_gradient", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=0)
    assert_close(got, x * tape_gradient(model, x, "index", [0] * len(x)))


test_gradient_equals_the_tape, test_gradient_equals_the_tape_many = properties(
    architectures(), _gradient_equals_the_tape)


def _lrp_z_conserves(spec):
    """Bias-free ReLU nets: every unit's relevance is passed on in full, so the input
    relevance sums to the explained output (to float32 round-off on the largest term)."""
    model, x = build(spec), _inputs(spec)
    relevance = kp.create_analyzer("lrp.z", model).analyze(x)
    y = model(x).numpy().max(axis=1)
    total = relevance.reshape(len(x), -1).sum(axis=1)
    scale = np.abs(relevance).reshape(len(x), -1).sum(axis=1) + np.abs(y)
    np.testing.assert_allclose(total, y, atol=1e-4 * scale.max())


test_lrp_z_conserves, test_lrp_z_conserves_many = properties(
    architectures(activations=["relu"], bias=False, bn=False), _lrp_z_conserves)


@st.composite
def linear_chains(draw):
    widths = [draw(st.integers(2, 6)) for _ in range(draw(st.integers(2, 5)))]
    return {"widths": widths, "seed": draw(st.integers(0, 2**16))}


def _patternnet_on_a_linear_net(spec):
    """A linear Dense chain: each layer's pattern is a = cov[x, y] / var[y] (the linear
    estimator, numpy float64 on the same data) and PatternNet back-projects y along them."""
    widths = spec["widths"]
    keras.utils.set_random_seed(spec["seed"])
    model = keras.Sequential([keras.Input((widths[0],))] + [
        layers.Dense(w) for w in widths[1:]])
    rng = np.random.default_rng(spec["seed"])
    data = rng.normal(size=(200, widths[0])).astype("float32") @ rng.normal(
        size=(widths[0], widths[0])).astype("float32")
    analyzer = kp.create_analyzer("pattern.net", model, pattern_type="linear").fit(data)
    x = data[:3]
    got = analyzer.analyze(x)
    h, hs, patterns = data.astype(np.float64), [], []
    for layer in model.layers:
        w = layer.kernel.numpy().astype(np.float64)
        y = h @ w
        cov = ((h - h.mean(0)).T @ (y - y.mean(0))) / len(h)
        patterns.append(cov / (w * cov).sum(axis=0, keepdims=True))
        hs.append(h)
        h = y + layer.bias.numpy()
    out = model(x).numpy().astype(np.float64)
    r = np.zeros_like(out)
    top = np.argmax(out, axis=1)
    r[np.arange(3), top] = out[np.arange(3), top]
    for a in patterns[::-1]:
        r = r @ a.T
    assert_close(got, r, rtol=1e-3)


test_patternnet_on_a_linear_net, test_patternnet_on_a_linear_net_many = properties(
    linear_chains(), _patternnet_on_a_linear_net)


FINITE_METHODS = ["gradient", "lrp.epsilon", "lrp.alpha_2_beta_1", "pattern.net",
                  "pattern.attribution", "integrated_gradients"]


def _explanations_are_finite(spec):
    model, x = build(spec), _inputs(spec, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random nets leave units dead
        patterns = kp.compute_patterns(model, _inputs(spec, 32), batch_size=16)
    for method in FINITE_METHODS:
        kwargs = {"patterns": patterns} if method.startswith("pattern") else {}
        if method == "integrated_gradients":
            kwargs = {"steps": 3}
        e = kp.create_analyzer(method, model, **kwargs).analyze(x)
        assert e.shape == x.shape and np.isfinite(e).all(), method


test_explanations_are_finite, test_explanations_are_finite_many = properties(
    architectures(), _explanations_are_finite)
