"""PatternNet is finite by construction and exact: the signal travels with a per-sample scale
(`keras_patterns.scaled`), so the result equals the float64 signal wherever float32 holds it,
and is a positive multiple of it per sample where it does not (over- or underflow)."""

import warnings

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close

import keras_patterns as kp


def _chain(depth, width, draw, seed=3):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((width,))] + [
        layers.Dense(width, activation="relu", use_bias=False) for _ in range(depth)])
    for layer in model.layers:
        layer.kernel.assign(draw(rng, (width, width)).astype("float32"))
    x = rng.uniform(0.5, 1.5, size=(4, width)).astype("float32")
    return model, x


def _filter_patternnet_float64(model, x):
    """PatternNet with filter patterns a = w / w^T w on a ReLU Dense chain, in float64: the
    start is y at the largest output; each layer gates by its ReLU and projects along A."""
    hs, h = [], x.astype(np.float64)
    kernels = [layer.kernel.numpy().astype(np.float64) for layer in model.layers]
    for w in kernels:
        hs.append(h)
        h = np.maximum(h @ w, 0.0)
    top = np.argmax(h, axis=1)
    r = np.zeros_like(h)
    r[np.arange(len(h)), top] = h[np.arange(len(h)), top]
    for w, h_in in zip(kernels[::-1], hs[::-1]):
        z = h_in @ w
        a = w / (w * w).sum(axis=0, keepdims=True)
        r = (r * (z > 0)) @ a.T
    return r


def _positive_multiple(got, want):
    """got[i] = c_i want[i] with c_i > 0, per sample."""
    for g, w in zip(got, want):
        c = np.dot(g, w) / np.dot(w, w)
        assert c > 0
        np.testing.assert_allclose(g, c * w, rtol=1e-4, atol=1e-6 * np.abs(g).max())


def _positive(rng, shape):
    return rng.uniform(0.0, 2.0 / shape[0], shape)


def _he_normal(rng, shape):
    return rng.normal(0.0, np.sqrt(2.0 / shape[0]), shape)


@pytest.mark.parametrize("depth,draw,beyond", [
    # positive kernels: each back-projection superposes ~24 copies of the signal
    (30, _positive, "overflow"),
    # mixed signs: the rectifier gates cancel part of the signal at every layer (1e-10 after
    # 30 layers), while the forward pass stays of order 1
    (160, _he_normal, "underflow"),
], ids=["overflow", "underflow"])
def test_a_deep_signal_beyond_float32_is_finite_and_exact_up_to_a_factor(depth, draw, beyond):
    model, x = _chain(depth, 32, draw)
    want = _filter_patternnet_float64(model, x)
    peak = np.abs(want).max()
    assert (peak > 3.4e38) if beyond == "overflow" else (peak < 1e-45), peak
    got = kp.create_analyzer("pattern.net", model, pattern_type="filter").analyze(x)
    assert np.isfinite(got).all() and np.abs(got).max() > 0
    _positive_multiple(got, want)


def test_where_float32_holds_it_the_result_is_the_signal_itself():
    model, x = _chain(6, 16, _positive)
    want = _filter_patternnet_float64(model, x)
    assert 1e-3 < np.abs(want).max() < 1e6
    got = kp.create_analyzer("pattern.net", model, pattern_type="filter").analyze(x)
    assert_close(got, want, rtol=1e-5)


def test_branches_of_very_different_scales_are_added_at_a_common_scale():
    """A residual block whose branch grows the signal by about 1e30 more than the shortcut:
    added at a common scale, the result is the float64 signal (the shortcut is lost only
    where float32 could not hold it next to the branch anyway)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,))
    branch = inp
    for _ in range(10):
        branch = layers.Dense(8, activation="relu", use_bias=False)(branch)
    out = layers.Dense(2, use_bias=False)(layers.Add()([inp, branch]))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            layer.kernel.assign(rng.uniform(0.0, 1e-3, layer.kernel.shape).astype("float32"))
    x = rng.uniform(0.5, 1.5, size=(3, 8)).astype("float32")
    got = kp.create_analyzer("pattern.net", model, pattern_type="filter").analyze(x)
    # float64 oracle: the same walk with the Add distributing the signal to both inputs
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    ws = [layer.kernel.numpy().astype(np.float64) for layer in dense]
    hs, h = [], x.astype(np.float64)
    for w in ws[:-1]:
        hs.append(h)
        h = np.maximum(h @ w, 0.0)
    merged = x + h
    y = merged @ ws[-1]
    r = np.zeros_like(y)
    top = np.argmax(y, axis=1)
    r[np.arange(3), top] = y[np.arange(3), top]

    def project(w, r):
        return r @ (w / (w * w).sum(axis=0, keepdims=True)).T

    r = project(ws[-1], r)
    shortcut, rb = r, r
    for w, h_in in zip(ws[-2::-1], hs[::-1]):
        rb = project(w, rb * (h_in @ w > 0))
    want = shortcut + rb
    assert np.abs(rb).max() / np.abs(shortcut).max() > 1e20
    assert np.isfinite(got).all()
    _positive_multiple(got, want)


# the architectures where PatternNet was NaN (RegNetX002 is not in Keras 3's applications;
# EfficientNetV2B0 stands in as another deep residual network with BatchNormalization)
APPLICATIONS = ["ResNet50", "ResNet50V2", "DenseNet121", "InceptionV3", "Xception",
                "NASNetMobile", "EfficientNetV2B0", "MobileNetV2"]


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_patternnet_is_finite_on_deep_keras_applications(name):
    """The architectures whose PatternNet signal was NaN: random weights, patterns fitted on
    16 images with the models' own input range."""
    size = {"InceptionV3": 75, "Xception": 71}.get(name, 32)
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                              classes=10)
    x = np.random.default_rng(0).uniform(0, 255, size=(16, size, size, 3)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patterns = kp.compute_patterns(model, x, batch_size=8)
    for method in ("pattern.net", "pattern.attribution"):
        e = kp.create_analyzer(method, model, patterns=patterns).analyze(x[:4])
        assert e.shape == x[:4].shape and np.isfinite(e).all(), method
        assert (np.abs(e).reshape(4, -1).max(axis=1) > 0).all(), method


def test_a_non_finite_explanation_is_an_error_not_a_result():
    """Relevance that overflows float32 (huge weights) raises, naming method and sample."""
    model = keras.Sequential([keras.Input((3,)), layers.Dense(3, activation="relu"),
                              layers.Dense(2)])
    model.layers[0].kernel.assign(np.full((3, 3), 3e37, "float32"))
    model.layers[1].kernel.assign(np.full((3, 2), 3e37, "float32"))
    x = np.ones((2, 3), "float32")
    with pytest.raises(kp.NumericalError, match="'gradient' explanation of sample 0"):
        kp.create_analyzer("gradient", model).analyze(x)
