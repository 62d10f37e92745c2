"""Patterns against numpy closed forms with explicit patches: every estimator, padded
borders, large offsets, several image sizes, negative patterns, w^T a = 1, dead neurons (the
toy data: tests/test_patterns_toy.py; data sources and the methods: tests/test_patterns_cnn.py)."""

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close, numpy_patterns, patches

import keras_patterns as kp

# -- closed form with explicit patches ------------------------------------------------------

CONV_CASES = [
    ("dense", {}),
    ("conv1d", dict(kernel_size=3, strides=2, padding="same")),
    ("conv1d", dict(kernel_size=3, dilation_rate=2, padding="valid")),
    ("conv2d", dict(kernel_size=3, strides=1, padding="same")),
    ("conv2d", dict(kernel_size=(3, 2), strides=2, padding="valid")),
    ("conv2d", dict(kernel_size=2, dilation_rate=2, padding="same")),
    ("conv2d", dict(kernel_size=3, strides=2, padding="same")),  # uneven padding on 6
    ("depthwise", dict(kernel_size=3, depth_multiplier=2, padding="valid")),
    ("depthwise", dict(kernel_size=3, strides=2, padding="same")),
]


@pytest.mark.parametrize("kind,config", CONV_CASES)
@pytest.mark.parametrize("pattern_type", ["relu", "relu.eq8", "linear", "filter"])
def test_estimators_equal_numpy_closed_form(kind, config, pattern_type):
    rng = np.random.default_rng(3)
    if kind == "dense":
        x = rng.normal(0.5, 1.0, size=(300, 6)).astype("float32")
        layer = layers.Dense(4, activation="relu")
    elif kind == "conv1d":
        x = rng.normal(0.5, 1.0, size=(40, 9, 3)).astype("float32")
        layer = layers.Conv1D(4, activation="relu", **config)
    elif kind == "conv2d":
        x = rng.normal(0.5, 1.0, size=(30, 7, 6, 2)).astype("float32")
        layer = layers.Conv2D(3, activation="relu", **config)
    else:
        x = rng.normal(0.5, 1.0, size=(30, 7, 7, 2)).astype("float32")
        layer = layers.DepthwiseConv2D(activation="relu", **config)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    layer.bias.assign(rng.normal(0, 0.3, size=layer.bias.shape).astype("float32"))
    p = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=7,
                            negative_patterns="all")[layer.name]
    kernel = layer.kernel.numpy()
    b = layer.bias.numpy()
    if kind == "dense":
        expected = numpy_patterns(x, kernel, b, pattern_type)
    elif kind == "depthwise":
        ks = kernel.shape[:-2]
        expected = {}
        cin, mult = kernel.shape[-2:]
        for c in range(cin):
            P = patches(x[..., c:c + 1], ks, layer.strides, layer.dilation_rate, layer.padding)
            Wc = kernel[..., c, :].reshape(-1, mult)
            e = numpy_patterns(P, Wc, b[c * mult:(c + 1) * mult], pattern_type)
            for name, a in e.items():
                expected.setdefault(name, np.zeros(kernel.shape))[..., c, :] = a.reshape(
                    ks + (mult,))
    else:
        ks = kernel.shape[:-2]
        P = patches(x, ks, layer.strides, layer.dilation_rate, layer.padding)
        e = numpy_patterns(P, kernel.reshape(-1, kernel.shape[-1]), b, pattern_type)
        expected = {name: a.reshape(kernel.shape) for name, a in e.items()}
    assert set(p) == set(expected)
    for name in expected:
        np.testing.assert_allclose(p[name], expected[name], rtol=2e-4, atol=2e-5 * np.abs(
            expected[name]).max())


@pytest.mark.parametrize("pattern_type", ["relu", "relu.eq8", "linear"])
def test_statistics_stay_exact_with_large_offsets_at_padded_borders(pattern_type):
    """Inputs 1000 +- 0.03 in a zero-padded convolution: border patches mix the padding's
    zeros with values near 1000. Inputs and weights are chosen so that the float32 forward
    pass is exact (multiples of 1/256, small integers), so any difference to the float64
    closed form comes from the statistics. In float64 they are exact; in float32 (around
    the data's means) the 1e4 spread of scale between border and inner observations costs
    about 1e-4."""
    rng = np.random.default_rng(11)
    x = (1000.0 + np.round(rng.normal(0, 0.03, size=(30, 7, 6, 2)) * 256) / 256)
    x = x.astype("float32")
    w = rng.integers(-2, 3, size=(3, 3, 2, 4)).astype("float32")
    w[2, 2, 1] -= w.sum(axis=(0, 1, 2))  # each filter sums to 0: y is not ~1000 * sum(w)
    layer = layers.Conv2D(4, 3, padding="same", activation="relu")
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    layer.kernel.assign(w)
    layer.bias.assign(np.array([0.5, -0.25, 0.0, 1.0], "float32"))
    P = patches(x.astype(np.float64), (3, 3), (1, 1), (1, 1), "same")
    expected = numpy_patterns(P, w.reshape(-1, 4), layer.bias.numpy(), pattern_type)
    exact = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=7,
                                negative_patterns="all", precision="float64")[layer.name]
    for name, a in expected.items():
        assert_close(exact[name], a.reshape(w.shape), rtol=1e-9)
    if pattern_type == "relu.eq8":
        return  # E_r[x] (E_r[y] - E[y]) ~ 1e3 x 1e3 dwarfs the covariance: float64 only
    fast = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=7,
                               negative_patterns="all")[layer.name]
    for name, a in expected.items():
        assert_close(fast[name], a.reshape(w.shape), rtol=1e-3)


@pytest.mark.parametrize("pattern_type", ["relu", "relu.eq8", "linear"])
def test_float32_sums_around_the_means_keep_a_large_offset_exact(pattern_type):
    """Dense inputs 1000 +- 0.03 (exact float32 forward pass, as above): shifted by the
    first batch's means, the float32 sums match the float64 closed form to float32
    round-off; unshifted, the float32 products x y lose up to 1e-3 of it."""
    rng = np.random.default_rng(12)
    x = (1000.0 + np.round(rng.normal(0, 0.03, size=(600, 6)) * 256) / 256).astype("float32")
    w = rng.integers(-2, 3, size=(6, 3)).astype("float32")
    w[-1] -= w.sum(axis=0)
    layer = layers.Dense(3, activation="relu")
    model = keras.Sequential([keras.Input((6,)), layer])
    layer.kernel.assign(w)
    layer.bias.assign(np.array([0.0, 0.01, -0.01], "float32"))
    expected = numpy_patterns(x.astype(np.float64), w, layer.bias.numpy(), pattern_type)
    p = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=50,
                            negative_patterns="all")[layer.name]
    for name, a in expected.items():
        assert_close(p[name], a, rtol=1e-5)


def test_images_of_several_sizes_equal_numpy_closed_form():
    """A fully convolutional model fitted on batches of different image sizes (the padding
    is known only at run time): the observations of all batches, with their own padding."""
    rng = np.random.default_rng(14)
    layer = layers.Conv2D(3, 3, strides=2, padding="same", activation="relu")
    model = keras.Sequential([keras.Input((None, None, 2)), layer])
    layer.bias.assign(np.array([0.3, -0.2, 0.1], "float32"))
    batches = [rng.normal(1.5, 1.0, size=(6, s, s + 1, 2)).astype("float32")
               for s in (5, 8, 6, 7)]
    p = kp.compute_patterns(model, iter(batches), negative_patterns="all")[layer.name]
    w = layer.kernel.numpy()
    P = np.concatenate([patches(b, (3, 3), (2, 2), (1, 1), "same") for b in batches])
    expected = numpy_patterns(P, w.reshape(-1, 3), layer.bias.numpy(), "relu")
    for name, a in expected.items():
        assert_close(p[name], a.reshape(w.shape), rtol=2e-4)


def test_negative_patterns_are_estimated_where_the_negative_regime_is_used():
    """Default: a_minus only for kernel layers that no rectifier follows; where estimated it
    equals the all-layers fit, and the explanations do not change."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    h = layers.Conv2D(4, 3, activation="relu", name="relu_conv")(inp)
    h = layers.Conv2D(3, 3, name="linear_conv")(h)
    h = layers.LeakyReLU(0.2)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(5, name="dense_relu")(h)
    h = layers.ReLU()(h)
    out = layers.Dense(3, name="logits")(h)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(40, 6, 6, 2)).astype("float32")
    used = kp.compute_patterns(model, x, batch_size=16)
    every = kp.compute_patterns(model, x, batch_size=16, negative_patterns="all")
    assert {k: sorted(v) for k, v in used.items()} == {
        "relu_conv": ["a_plus"], "linear_conv": ["a_minus", "a_plus"],
        "dense_relu": ["a_plus"], "logits": ["a_minus", "a_plus"]}
    assert all(sorted(v) == ["a_minus", "a_plus"] for v in every.values())
    for key in used:
        for name in used[key]:
            np.testing.assert_allclose(used[key][name], every[key][name], rtol=1e-6,
                                       atol=1e-9 * np.abs(every[key][name]).max())
        for regime in ("plus", "minus"):
            np.testing.assert_array_equal(used.counts[key][regime], every.counts[key][regime])
    for method in ("pattern.net", "pattern.attribution"):
        a = kp.create_analyzer(method, model, patterns=used).analyze(x[:4])
        b = kp.create_analyzer(method, model, patterns=every).analyze(x[:4])
        assert_close(a, b, rtol=1e-6)
    with pytest.raises(ValueError, match="negative_patterns"):
        kp.compute_patterns(model, x, negative_patterns="some")
    with pytest.raises(ValueError, match="precision"):
        kp.compute_patterns(model, x, precision="float16")
    lacking = kp.compute_patterns(model, x, batch_size=16)
    del lacking._arrays["logits"]["a_minus"]
    with pytest.raises(kp.PatternFileError, match="a_minus.*logits"):
        kp.create_analyzer("pattern.net", model, patterns=lacking)


def test_every_active_neuron_has_unit_response():
    """w_j^T a_j = 1 for every neuron with observations (the estimate reproduces y)."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(6, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(5, activation="relu"),
                              layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
    p = kp.compute_patterns(model, x, negative_patterns="all")
    for layer in (model.layers[0], model.layers[2], model.layers[3]):
        w = layer.kernel.numpy()
        for name, a in p[layer.name].items():
            resp = np.sum(w * a, axis=tuple(range(w.ndim - 1)))
            counts = p.counts[layer.name]["plus" if name == "a_plus" else "minus"]
            live = counts > 1
            np.testing.assert_allclose(resp[live], 1.0, rtol=1e-6)
            assert np.all(a[..., ~live] == 0)


def test_dead_neurons_get_zero_patterns_and_one_warning():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu")])
    model.layers[0].bias.assign(np.array([0.0, 0.0, -100.0, -100.0], "float32"))
    x = np.random.default_rng(0).normal(size=(100, 3)).astype("float32")
    with pytest.warns(UserWarning, match="2 neuron"):
        p = kp.compute_patterns(model, x)
    assert np.all(p[model.layers[0].name]["a_plus"][:, 2:] == 0)
    assert p.dead[model.layers[0].name] == 2
