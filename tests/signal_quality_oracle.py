"""The numpy oracle of the signal quality rho(S), Eq. (1) of the paper, and the small
models its tests share.

The oracle builds every observation explicitly (patches in numpy, the residuals
d = x - S(x) as arrays), fits v by least squares on split 2 and measures the correlation on
split 3; `signal_quality` gets the same answer from streamed moments.
"""

import keras
import numpy as np
import pytest

import keras_patterns as kp

ALL = ("random", "filter", "linear", "relu", "relu.eq8")


def np_patches(x, layer):
    """(N * positions, D) observations of a Dense or Conv1D/2D layer input, built by
    slicing a zero-padded copy (TensorFlow's padding rule: the odd pixel after)."""
    x = np.asarray(x, np.float64)
    if isinstance(layer, keras.layers.Dense):
        return x.reshape(-1, x.shape[-1])
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    pads = []
    for n, kk, ss, dd in zip(x.shape[1:-1], k, s, d):
        span = (kk - 1) * dd + 1
        if layer.padding == "valid":
            pads.append((0, 0))
        elif layer.padding == "causal":
            pads.append((span - 1, 0))
        else:
            total = max((-(-n // ss) - 1) * ss + span - n, 0)
            pads.append((total // 2, total - total // 2))
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    outs = [(xp.shape[1 + i] - (k[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(len(k))]
    rows = []
    for pos in np.ndindex(*outs):
        index = tuple(slice(p * ss, p * ss + (kk - 1) * dd + 1, dd)
                      for p, kk, ss, dd in zip(pos, k, s, d))
        rows.append(xp[(slice(None),) + index + (slice(None),)].reshape(len(x), -1))
    return np.stack(rows, 1).reshape(len(x) * len(rows), -1)


def np_pattern(name, x, y, m, w):
    """The estimators' closed forms on explicit observations (split 1): a or (a_+, a_-)."""
    def cov(xs, ys):
        return ((xs - xs.mean(0)) * (ys - ys.mean())[:, None]).mean(0)

    if name == "filter":
        return w / (w @ w)
    if name == "linear":
        c = cov(x, y)
        return c / (w @ c)
    out = []
    for r in (m, ~m):
        if r.sum() < 2:  # a regime without observations: a zero pattern
            out.append(np.zeros_like(w))
            continue
        c = cov(x[r], y[r])
        if name == "relu.eq8":
            c = (x[r] * y[r][:, None]).mean(0) - x[r].mean(0) * y.mean()
        out.append(c / (w @ c))
    return tuple(out)


def np_rho(a, xs, w, b):
    """1 - corr_3(y, v^T d), v the least-squares regression of y on d over split 2; `a` a
    pattern (linear-type) or (a_+, a_-); xs the three splits' observations."""
    ds, ys = [], []
    for x in xs:
        y = x @ w
        if isinstance(a, tuple):
            m = (y + b > 0)[:, None]
            s = np.where(m, a[0], a[1]) * y[:, None]
        else:
            s = np.outer(y, a)
        ds.append(x - s)
        ys.append(y)
    d2, y2 = ds[1] - ds[1].mean(0), ys[1] - ys[1].mean()
    v = np.linalg.lstsq(d2, y2, rcond=None)[0]
    return 1 - np.corrcoef(ys[2], ds[2] @ v)[0, 1]


def split_ends(n, shares=(1 / 3, 1 / 3, 1 / 3)):
    return [0, round(n * shares[0]), round(n * (shares[0] + shares[1])), n]


def oracle(model, x, names=ALL, seed=0, shares=(1 / 3, 1 / 3, 1 / 3)):
    """{estimator: {layer: (F,) rho}} by the direct computation of Eq. (1)."""
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel")]
    inputs = keras.Model(model.inputs, [layer.input for layer in kernels]).predict(
        x, verbose=0)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    ends = split_ends(len(x), shares)
    random = kp.compute_patterns(model, pattern_type="random", seed=seed)
    out = {name: {} for name in names}
    for layer, inp in zip(kernels, inputs):
        kernel = np.asarray(layer.kernel, np.float64)
        w_all = kernel.reshape(-1, kernel.shape[-1])
        b_all = (np.asarray(layer.bias, np.float64) if layer.use_bias
                 else np.zeros(kernel.shape[-1]))
        xs = [np_patches(inp[lo:hi], layer) for lo, hi in zip(ends, ends[1:])]
        for name in names:
            rho = []
            for j in range(w_all.shape[1]):
                w, b = w_all[:, j], b_all[j]
                if name == "random":
                    a = random[layer.name]["a"].reshape(w_all.shape)[:, j]
                else:
                    y1 = xs[0] @ w
                    a = np_pattern(name, xs[0], y1, y1 + b > 0, w)
                rho.append(np_rho(a, xs, w, b))
            out[name][layer.name] = np.array(rho)
    return out


def assert_matches(result, expected, atol=1e-6):
    for name, layers in expected.items():
        for layer, rho in layers.items():
            np.testing.assert_allclose(result.per_neuron[name][layer], rho, rtol=0, atol=atol,
                                       err_msg=f"{name} {layer}")
            assert result[name][layer] == pytest.approx(rho.mean(), abs=atol)


def dense_model():
    model = keras.Sequential([keras.Input((8,)),
                              keras.layers.Dense(6, activation="relu", name="dense"),
                              keras.layers.Dense(3, name="dense_1")])
    rng = np.random.default_rng(1)
    for layer in model.layers:
        layer.bias.assign(rng.normal(scale=0.3, size=layer.bias.shape))
    return model



def conv_model():
    return keras.Sequential([
        keras.Input((7, 6, 2)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv2d"),
        keras.layers.Conv2D(3, (2, 3), strides=(1, 2), padding="same", activation="relu",
                            name="conv2d_1"),
        keras.layers.Conv2D(3, 2, padding="valid", name="conv2d_2"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="dense"),
    ])

