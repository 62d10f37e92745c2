"""No dead process on real networks: TensorFlow 2.21's CPU (oneDNN) kernel and input
gradients of a 1x1 stride-2 convolution on an even-sized input with few channels corrupt
the heap (SIGSEGV, SIGABRT, `malloc(): corrupted top size`). Measured before the fix: every
shape of the grid below killed `compute_patterns` or the gradient analyzer. Each check runs
in a subprocess, so that a crash fails the test instead of killing the test run; it also
checks the numbers (patterns and the gradient against numpy closed forms)."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


GRID = textwrap.dedent("""
    import itertools
    import numpy as np, keras
    import keras_patterns as kp

    def closed_form(x, w, b, s):
        # 1x1 stride-s map: the observations are x[:, ::s, ::s] pixels; a_plus per neuron
        obs = x[:, ::s, ::s].reshape(-1, x.shape[-1]).astype(np.float64)
        y = obs @ w.astype(np.float64)
        out = np.zeros_like(w, np.float64)
        for j in range(w.shape[1]):
            m = y[:, j] + b[j] > 0
            d = (obs[m] * y[m, j:j + 1]).mean(0) - obs[m].mean(0) * y[m, j].mean()
            out[:, j] = d / (w[:, j] @ d)
        return out

    worst = 0.0
    for size, c, f, padding in itertools.product(SIZES, CHANNELS, FILTERS, PADDINGS):
        keras.utils.set_random_seed(size + c + f)
        conv = keras.layers.Conv2D(f, 1, strides=2, padding=padding, activation="relu")
        model = keras.Sequential([keras.Input((size, size, c)), conv,
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
        x = np.random.default_rng(size).normal(size=(16, size, size, c)).astype("float32")
        p = kp.compute_patterns(model, x, batch_size=8)
        want = closed_form(x, conv.kernel.numpy()[0, 0], conv.bias.numpy(), 2)
        got = p[conv.name]["a_plus"][0, 0]
        worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
        for method in ("gradient", "pattern.attribution", "lrp.epsilon"):
            kwargs = {"patterns": p} if method.startswith("pattern") else {}
            e = kp.create_analyzer(method, model, **kwargs).analyze(x[:4])
            assert e.shape == x[:4].shape and np.isfinite(e).all(), method
        # the gradient in numpy (a tape through the model's own layer would crash)
        w, b = conv.kernel.numpy()[0, 0], conv.bias.numpy()
        dense = model.layers[-1].kernel.numpy()
        pixels = x[:4, ::2, ::2]
        z = pixels @ w + b
        k = np.argmax(np.maximum(z, 0).mean(axis=(1, 2)) @ dense
                      + model.layers[-1].bias.numpy(), axis=1)
        upstream = (z > 0) * dense[:, k].T[:, None, None, :] / (z.shape[1] * z.shape[2])
        want_g = np.zeros_like(x[:4])
        want_g[:, ::2, ::2] = upstream @ w.T
        got = kp.create_analyzer("gradient", model).analyze(x[:4])
        worst_g = float(np.abs(got - want_g).max() / np.abs(want_g).max())
        assert worst_g < 1e-4, (size, c, f, padding, worst_g)
    print("WORST", worst)
""")


@pytest.mark.parametrize("sizes,channels,filters,paddings", [
    ((60,), (1, 3, 8), (8, 16), ("same", "valid")),
    ((56, 64), (8,), (16,), ("valid",)),
], ids=["S60-grid", "S56-64"])
def test_strided_1x1_convolutions_neither_crash_nor_differ(sizes, channels, filters,
                                                           paddings):
    code = (f"SIZES, CHANNELS, FILTERS, PADDINGS = {sizes!r}, {channels!r}, {filters!r}, "
            f"{paddings!r}\n" + GRID)
    result = _run(code)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    worst = float(result.stdout.split("WORST")[1])
    assert worst < 1e-3, worst


def test_a_mini_xception_network_fits_and_explains_in_a_subprocess():
    """The network that died in `fit`: a mini-Xception block (separable convolutions,
    BatchNormalization, a 1x1 stride-2 residual shortcut on 60x60x8)."""
    code = """
        import warnings
        import numpy as np, keras
        from keras import layers
        import keras_patterns as kp
        keras.utils.set_random_seed(0)
        inp = keras.Input((64, 64, 1))
        h = layers.Conv2D(8, 3, use_bias=False)(inp)
        h = layers.Activation("relu")(layers.BatchNormalization()(h))
        h = layers.Conv2D(8, 3, use_bias=False)(h)
        h = layers.Activation("relu")(layers.BatchNormalization()(h))      # 60 x 60 x 8
        shortcut = layers.BatchNormalization()(
            layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False)(h))
        b = layers.SeparableConv2D(16, 3, padding="same", use_bias=False)(h)
        b = layers.Activation("relu")(layers.BatchNormalization()(b))
        b = layers.SeparableConv2D(16, 3, padding="same", use_bias=False)(b)
        b = layers.BatchNormalization()(b)
        b = layers.MaxPooling2D(3, strides=2, padding="same")(b)
        h = layers.Add()([b, shortcut])
        out = layers.Dense(7)(layers.GlobalAveragePooling2D()(h))
        model = keras.Model(inp, out)
        x = np.random.default_rng(0).uniform(0, 1, (32, 64, 64, 1)).astype("float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method in ("pattern.net", "pattern.attribution"):
                a = kp.create_analyzer(method, model).fit(x, batch_size=8)
                e = a.analyze(x[:4])
                assert e.shape == (4, 64, 64, 1) and np.isfinite(e).all(), method
            for method in ("gradient", "lrp.epsilon", "guided_backprop"):
                e = kp.create_analyzer(method, model).analyze(x[:4])
                assert np.isfinite(e).all(), method
        print("OK")
    """
    result = _run(code)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert "OK" in result.stdout
