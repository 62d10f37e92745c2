"""Signal quality rho(S), Eq. (1) of the paper, against a direct numpy computation.

The oracle builds every observation explicitly (patches in numpy, the residuals
d = x - S(x) as arrays), fits v by least squares on split 2 and measures the correlation on
split 3; `signal_quality` gets the same answer from streamed moments.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_patterns as kp
from keras_patterns.evaluate import moments as mo
from keras_patterns.evaluate.signal_quality import signal_quality
from keras_patterns.evaluate.splits import stream_split

ALL = ("random", "filter", "linear", "relu", "relu.eq8")


# ---------------------------------------------------------------------------------------
# the oracle


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


# ---------------------------------------------------------------------------------------
# Eq. (1) on models


def dense_model():
    model = keras.Sequential([keras.Input((8,)),
                              keras.layers.Dense(6, activation="relu", name="dense"),
                              keras.layers.Dense(3, name="dense_1")])
    rng = np.random.default_rng(1)
    for layer in model.layers:
        layer.bias.assign(rng.normal(scale=0.3, size=layer.bias.shape))
    return model


def test_dense_matches_numpy_eq1():
    model = dense_model()
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(8, 8))
    x = (rng.normal(size=(900, 8)) @ mix + 0.5).astype("float32")
    result = signal_quality(model, x, estimators=ALL, per_neuron=True, batch_size=64)
    assert result.samples == (300, 300, 300)
    assert result.observations == {"dense": (300,) * 3, "dense_1": (300,) * 3}
    assert_matches(result, oracle(model, x))


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


@pytest.mark.filterwarnings("ignore:signal_quality.*zero pattern")
def test_conv2d_matches_numpy_eq1():
    model = conv_model()
    x = np.random.default_rng(2).normal(0.3, 1.0, size=(240, 7, 6, 2)).astype("float32")
    result = signal_quality(model, x, estimators=ALL, per_neuron=True, batch_size=32)
    # 4 x 3 positions in the first layer, 4 x 2 in the second, 3 x 1 in the third
    assert result.observations["conv2d"] == (80 * 12,) * 3
    assert result.observations["conv2d_1"] == (80 * 8,) * 3
    assert_matches(result, oracle(model, x))


def test_conv1d_causal_dilated_matches_numpy_eq1():
    model = keras.Sequential([
        keras.Input((11, 2)),
        keras.layers.Conv1D(3, 3, dilation_rate=2, padding="causal", activation="relu",
                            name="conv1d"),
        keras.layers.Conv1D(2, 2, strides=2, padding="same", name="conv1d_1"),
    ])
    x = np.random.default_rng(3).normal(size=(150, 11, 2)).astype("float32")
    result = signal_quality(model, x, estimators=ALL, per_neuron=True)
    assert_matches(result, oracle(model, x))


def test_channels_first_matches_channels_last_oracle():
    model = keras.Sequential([
        keras.Input((2, 7, 6)),
        keras.layers.Conv2D(3, 3, strides=2, padding="same", data_format="channels_first",
                            activation="relu", name="conv2d"),
        keras.layers.Flatten(), keras.layers.Dense(2, name="dense")])
    twin = keras.Sequential([keras.Input((7, 6, 2)),
                             keras.layers.Conv2D(3, 3, strides=2, padding="same",
                                                 activation="relu", name="conv2d")])
    twin.layers[0].set_weights(model.layers[0].get_weights())
    x = np.random.default_rng(18).normal(size=(240, 2, 7, 6)).astype("float32")
    result = signal_quality(model, x, estimators=ALL, layers=["conv2d"], per_neuron=True)
    assert_matches(result, oracle(twin, np.moveaxis(x, 1, -1)))


def test_shared_layer_pools_the_observations_of_its_calls():
    """A Dense layer called on two inputs: its observations are those of both calls, as
    for the same layer on the two inputs stacked sample by sample within each split."""
    shared = keras.layers.Dense(3, activation="relu", name="dense")
    a, b = keras.Input((5,)), keras.Input((5,))
    model = keras.Model([a, b], keras.layers.Add()([shared(a), shared(b)]))
    single = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="dense")])
    single.layers[0].set_weights(shared.get_weights())
    rng = np.random.default_rng(19)
    x1, x2 = (rng.normal(size=(300, 5)).astype("float32") for _ in range(2))
    stacked = np.concatenate([np.concatenate([x1[i:i + 100], x2[i:i + 100]])
                              for i in (0, 100, 200)])
    names = ("filter", "linear", "relu")
    got = signal_quality(model, [x1, x2], estimators=names, per_neuron=True, batch_size=50)
    assert got.observations["dense"] == (200, 200, 200)
    assert_matches(got, oracle(single, stacked, names), atol=1e-6)


def test_patterns_are_those_of_compute_patterns():
    """Split 1's patterns are the package's: compute_patterns on split 1 (float32 sums)
    fed to the numpy Eq. (1) gives the same rho."""
    model = dense_model()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 8)).astype("float32")
    result = signal_quality(model, x, estimators=("linear", "relu"), per_neuron=True)
    ends = split_ends(len(x))
    layer = model.layers[0]
    xs = [np.asarray(x[lo:hi], np.float64) for lo, hi in zip(ends, ends[1:])]
    w_all, b_all = np.asarray(layer.kernel, np.float64), np.asarray(layer.bias, np.float64)
    for name in ("linear", "relu"):
        fitted = kp.compute_patterns(model, x[: ends[1]], pattern_type=name,
                                     negative_patterns="all")[layer.name]
        rho = []
        for j in range(6):
            a = (fitted["a"][:, j] if name == "linear"
                 else (fitted["a_plus"][:, j], fitted["a_minus"][:, j]))
            rho.append(np_rho(a, xs, w_all[:, j], b_all[j]))
        np.testing.assert_allclose(result.per_neuron[name]["dense"], rho, atol=1e-4)


def test_batchnorm_folded_like_compute_patterns():
    """A Dense + inference BatchNormalization is evaluated as the folded affine map: the
    same rho as a Dense layer holding the folded weights."""
    rng = np.random.default_rng(5)
    bn_model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="dense"),
                                 keras.layers.BatchNormalization(),
                                 keras.layers.Activation("relu"),
                                 keras.layers.Dense(2, name="dense_1")])
    x = rng.normal(size=(600, 5)).astype("float32")
    bn = bn_model.layers[1]
    centre = np.median(x @ bn_model.layers[0].get_weights()[0], axis=0)  # both regimes
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.normal(scale=0.1, size=4), centre,
                    rng.uniform(0.5, 2, 4)])
    gamma, beta, mean, var = bn.get_weights()
    s = gamma / np.sqrt(var + bn.epsilon)
    plain = keras.Sequential([keras.Input((5,)),
                              keras.layers.Dense(4, activation="relu", name="dense"),
                              keras.layers.Dense(2, name="dense_1")])
    k, b = bn_model.layers[0].get_weights()
    plain.layers[0].set_weights([k * s, (b - mean) * s + beta])
    plain.layers[1].set_weights(bn_model.layers[-1].get_weights())
    folded = signal_quality(bn_model, x, estimators=("filter", "linear", "relu"))
    direct = signal_quality(plain, x, estimators=("filter", "linear", "relu"))
    for name in ("filter", "linear", "relu"):
        assert folded[name]["dense"] == pytest.approx(direct[name]["dense"], abs=1e-5)
        assert folded[name]["dense_1"] == pytest.approx(direct[name]["dense_1"], abs=1e-6)


# ---------------------------------------------------------------------------------------
# the moment algebra against explicit residuals


def moments_of(x, w, b, shift):
    """LayerMoments from sums of explicit observations around `shift`."""
    xc = x - shift
    m = (x @ w + b > 0).astype(np.float64)
    yc = xc @ w
    return mo.LayerMoments(len(x), xc.sum(0), xc.T @ xc, shift, w, m.sum(0), xc.T @ m,
                           xc.T @ (m * yc))


@pytest.mark.parametrize("offset", [0.0, 300.0])
def test_two_component_moments_equal_explicit_residuals(offset):
    rng = np.random.default_rng(6)
    n, dim, f = 4000, 7, 5
    x = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + offset
    w, b = rng.normal(size=(dim, f)), rng.normal(size=f) - offset * 0.1
    b -= np.median(x @ w, axis=0)  # both regimes populated
    a_plus, a_minus = rng.normal(size=(dim, f)), rng.normal(size=(dim, f))
    a_plus /= np.sum(w * a_plus, 0)
    a_minus /= np.sum(w * a_minus, 0)
    parts = np.array_split(x, 3)
    shift = parts[0][:50].mean(0) + 0.1  # any shift
    fit, test = (moments_of(p, w, b, shift) for p in parts[1:])
    terms = mo.residual_terms(fit, a_minus, a_plus - a_minus)
    u, c, c_inv, g = terms
    np.testing.assert_allclose(np.einsum("fij,fjk->fik", c, c_inv),
                               np.broadcast_to(np.eye(4), (f, 4, 4)), atol=1e-12)
    v = mo.regression_vectors(fit.sigma, terms)
    corr = mo.correlations(v, test, a_minus, a_plus - a_minus)
    for j in range(f):
        y = parts[1] @ w[:, j]
        m = (y + b[j] > 0)[:, None]
        d = parts[1] - np.where(m, a_plus[:, j], a_minus[:, j]) * y[:, None]
        dc, yc = d - d.mean(0), y - y.mean()
        sigma_dd = dc.T @ dc / len(d)
        scale = np.abs(sigma_dd).max()
        np.testing.assert_allclose(fit.sigma + u[j] @ c[j] @ u[j].T, sigma_dd, rtol=0,
                                   atol=1e-9 * scale)
        np.testing.assert_allclose(g[j], dc.T @ yc / len(d), rtol=0,
                                   atol=1e-9 * np.abs(g[j]).max())
        rho = np_rho((a_plus[:, j], a_minus[:, j]), parts, w[:, j], b[j])
        assert 1 - corr[j] == pytest.approx(rho, abs=1e-8)


def test_linear_type_moments_equal_explicit_residuals():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 6)) * np.arange(1, 7) + 5.0
    w = rng.normal(size=(6, 4))
    a = rng.normal(size=(6, 4))
    a /= np.sum(w * a, 0)
    parts = np.array_split(x, 3)
    fit, test = (moments_of(p, w, np.zeros(4), p[0]) for p in parts[1:])
    terms = mo.residual_terms(fit, a)
    assert terms[0].shape == (4, 6, 2)  # U = [a, c]: a rank-2 update
    v = mo.regression_vectors(fit.sigma, terms)
    corr = mo.correlations(v, test, a)
    for j in range(4):
        assert 1 - corr[j] == pytest.approx(np_rho(a[:, j], parts, w[:, j], 0.0), abs=1e-9)


def test_ridge_does_not_move_well_posed_answers():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 9)) @ rng.normal(size=(9, 9))
    w = rng.normal(size=(9, 3))
    a = rng.normal(size=(9, 3))
    a /= np.sum(w * a, 0)
    parts = np.array_split(x, 3)
    fit, test = (moments_of(p, w, np.zeros(3), np.zeros(9)) for p in parts[1:])
    rho = {}
    for ridge in (1e-6, 1e-10, 1e-14):
        v = mo.regression_vectors(fit.sigma, mo.residual_terms(fit, a), ridge=ridge)
        rho[ridge] = 1 - mo.correlations(v, test, a)
    exact = [np_rho(a[:, j], parts, w[:, j], 0.0) for j in range(3)]
    np.testing.assert_allclose(rho[1e-10], exact, atol=1e-10)
    np.testing.assert_allclose(rho[1e-14], exact, atol=1e-10)
    np.testing.assert_allclose(rho[1e-6], exact, atol=1e-5)


def test_rank_deficient_inputs_match_minimum_norm_least_squares():
    """Inputs that never vary (a dead ReLU channel: always 0; a constant one) make Sigma_x
    singular; the ridge gives the minimum-norm least-squares answer. S_w puts signal on
    the dead input, where the residual is then exactly -a y: rho = 0."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="dense")])
    rng = np.random.default_rng(9)
    x = rng.normal(size=(900, 6))
    x[:, 2] = 0.0
    x[:, 4] = 3.0
    x = x.astype("float32")
    result = signal_quality(model, x, estimators=("random", "filter", "linear", "relu"),
                            per_neuron=True)
    expected = oracle(model, x, ("random", "filter", "linear", "relu"))
    assert_matches(result, expected, atol=1e-6)
    np.testing.assert_allclose(result.per_neuron["filter"]["dense"], 0.0, atol=1e-6)


def test_a_random_pattern_nearly_orthogonal_to_w_matches_least_squares():
    """A random direction u nearly orthogonal to w gives a = u / (w^T u) a huge norm; with
    inputs that never vary (dead ReLUs upstream) Sigma_dd is then singular far beyond the
    ridge, and the Woodbury solve alone returned a v that anti-correlated with y (rho = 2
    for one neuron, where least squares gives rho = 0)."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(1800, 8))
    x = np.maximum(z @ rng.normal(size=(8, 64)) + rng.normal(size=64), 0)
    x = x * rng.uniform(0.01, 3, 64)
    x[:, :21] = 0.0
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, name="out")])
    model.get_layer("out").set_weights([(0.1 * rng.normal(size=(64, 10))).astype("float32"),
                                        np.zeros(10, "float32")])
    x = x.astype("float32")
    result = signal_quality(model, x, ("random",), seed=7, per_neuron=True)
    expected = oracle(model, x, ("random",), seed=7)
    assert_matches(result, expected, atol=1e-6)
    assert np.all(result.per_neuron["random"]["out"] <= 1.0)


# ---------------------------------------------------------------------------------------
# the paper's linear toy (section 2, Fig. 2)


def toy_model(w):
    model = keras.Sequential([keras.Input((w.shape[0],)),
                              keras.layers.Dense(w.shape[1], name="dense")])
    model.layers[0].set_weights([w.astype("float32"), np.zeros(w.shape[1], "float32")])
    return model


def test_paper_toy_two_dimensions():
    """x = a_s y + a_d eps, a_s = (1, 0), a_d = (1, 1), y ~ U(-1, 1), eps ~ N(0, 1), w = (1,
    -1). For a pattern a, w^T (a_s - a) = 0, so a_s - a = beta (1, 1) with beta = 1 - a_1
    and d = (beta y + eps)(1, 1): rho = 1 - |beta| sd(y) / sqrt(beta^2 var(y) + 1). The
    linear and two-component patterns recover a_s (beta = 0, rho = 1); S_w has beta = 1/2:
    rho = 1 - 0.5 / sqrt(3) / sqrt(1 / 12 + 1) = 0.7226.

    Measured (n = 30000): random 0.7097 (its beta is 0.512 for seed 0), filter 0.7159,
    linear 0.981, relu 1.013 (above 1: the v fitted on split 2, where the residual holds
    no signal, anti-correlates on split 3 by chance; nothing is clipped); population values
    0.7163, 0.7226, 1, 1. Asserted: within 0.03 of the population values."""
    rng = np.random.default_rng(10)
    n = 30000
    y = rng.uniform(-1, 1, n)
    x = np.outer(y, [1.0, 0.0]) + np.outer(rng.normal(size=n), [1.0, 1.0])
    model = toy_model(np.array([[1.0], [-1.0]]))
    names = ("random", "filter", "linear", "relu")
    result = signal_quality(model, x.astype("float32"), estimators=names, batch_size=1000,
                            per_neuron=True)
    assert_matches(result, oracle(model, x.astype("float32"), names))
    a = kp.compute_patterns(model, pattern_type="random", seed=0)["dense"]["a"][:, 0]
    sd = np.sqrt(1 / 3)

    def population(beta):
        return 1 - abs(beta) * sd / np.sqrt(beta**2 * sd**2 + 1)

    rho = {k: result[k]["dense"] for k in names}
    assert rho["filter"] == pytest.approx(population(0.5), abs=0.03)
    assert rho["random"] == pytest.approx(population(1 - a[0]), abs=0.03)
    assert rho["linear"] == pytest.approx(1.0, abs=0.03)
    assert rho["relu"] == pytest.approx(1.0, abs=0.03)


def toy_high_dim(n, rng):
    """Two signals in 12 dimensions, four structured distractors of different scales and
    a little isotropic noise; w filters out the distractors and the other signal, and has a
    part orthogonal to all of them (where only the noise varies)."""
    dim = 12
    signal = rng.normal(size=(2, dim))
    distract = rng.normal(size=(4, dim))
    basis = np.concatenate([signal, distract]).T  # (dim, 6)
    w = np.linalg.pinv(basis.T)[:, :2]  # w_j^T signal_k = delta_jk, w^T distract = 0
    # plus a part where the data hardly vary (a trained w is not the minimum-norm one)
    free = np.linalg.svd(basis.T)[2][6:].T  # (dim, 6): orthogonal to signals, distractors
    w = w + free @ rng.normal(size=(6, 2)) * np.linalg.norm(w, axis=0) / np.sqrt(6)
    ys = rng.uniform(-1, 1, size=(n, 2))
    eps = rng.normal(size=(n, 4)) * [3.0, 1.0, 0.5, 2.0]
    eps[:, 1] += 0.8 * eps[:, 0]
    x = ys @ signal + eps @ distract + 0.1 * rng.normal(size=(n, dim))
    return x.astype("float32"), w


def test_paper_toy_high_dimensional_ordering():
    """The residual of S_w and of a random direction keeps the signal where only the noise
    varies, so v recovers y from it: rho near 0. S_a removes it: rho near 1 (below 1 by the
    estimation error of split 1). S_a+- fits a line per regime to a relation that is not
    linear within a regime (y = y_s + noise with y_s uniform): a little is left.

    Measured (n = 30000, two neurons, mean): random 0.0027, filter 0.0132, linear 0.980,
    relu 0.906. Margins asserted: linear > 0.95, relu > 0.85, random and filter < 0.05."""
    rng = np.random.default_rng(11)
    x, w = toy_high_dim(30000, rng)
    model = toy_model(w)
    names = ("random", "filter", "linear", "relu")
    result = signal_quality(model, x, estimators=names, batch_size=1000, per_neuron=True)
    assert_matches(result, oracle(model, x, names))
    rho = {k: result[k]["dense"] for k in names}
    assert rho["linear"] > 0.95 and rho["relu"] > 0.85
    assert rho["filter"] < 0.05 and rho["random"] < 0.05


# ---------------------------------------------------------------------------------------
# data sources and the split protocol


def test_stream_split_rule():
    order = []
    given = [0, 0, 0]
    for i in range(9):
        order.append(stream_split(given, np.full(3, 1 / 3), i))
        given[order[-1]] += 1
    assert order == [0, 1, 2] * 3
    order, given = [], [0, 0, 0]
    for i in range(8):
        order.append(stream_split(given, np.array([0.5, 0.25, 0.25]), i))
        given[order[-1]] += 1
    assert order == [0, 1, 2, 0, 0, 1, 2, 0]


class ArrayBatches(keras.utils.PyDataset):
    def __init__(self, x, batch):
        super().__init__()
        self.x, self.batch = x, batch

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        return self.x[i * self.batch:(i + 1) * self.batch], np.zeros(self.batch)


def test_streams_split_by_batch_index():
    """Streams send batch i to split i mod 3: the same rho as arrays holding batches
    0, 3, 6, ... first, then 1, 4, 7, ..., then 2, 5, 8, ..."""
    model = dense_model()
    x = np.random.default_rng(12).normal(size=(270, 8)).astype("float32")
    batches = np.split(x, 9)
    reordered = np.concatenate([batches[i] for k in range(3) for i in range(k, 9, 3)])
    names = ("filter", "relu")
    expected = signal_quality(model, reordered, estimators=names, batch_size=30,
                              per_neuron=True)
    sources = {
        "dataset": tf.data.Dataset.from_tensor_slices((x, np.zeros(270))).batch(30),
        "unbatched dataset": tf.data.Dataset.from_tensor_slices(x),
        "generator": (b for b in batches),
        "pydataset": ArrayBatches(x, 30),
        "endless dataset with steps": tf.data.Dataset.from_tensor_slices(x).batch(30).repeat(),
    }
    for what, data in sources.items():
        got = signal_quality(model, data, estimators=names, batch_size=30, per_neuron=True,
                             steps=9 if "steps" in what else None, verbose=what == "generator")
        assert got.samples == (90, 90, 90), what
        for name in names:
            for layer in ("dense", "dense_1"):
                np.testing.assert_allclose(got.per_neuron[name][layer],
                                           expected.per_neuron[name][layer], atol=1e-9,
                                           err_msg=what)


def test_unequal_splits_and_tuples():
    model = dense_model()
    x = np.random.default_rng(13).normal(size=(400, 8)).astype("float32")
    shares = (0.5, 0.25, 0.25)
    result = signal_quality(model, (x, np.zeros(400)), estimators=("linear",), splits=shares,
                            per_neuron=True)
    assert result.samples == (200, 100, 100)
    assert_matches(result, oracle(model, x, ("linear",), shares=shares))


def test_layer_selection_and_result_shape():
    model = conv_model()
    x = np.random.default_rng(14).normal(size=(90, 7, 6, 2)).astype("float32")
    full = signal_quality(model, x, estimators=("filter", "linear"))
    assert full.per_neuron is None
    assert list(full) == ["filter", "linear"]
    assert full.layers == ("conv2d", "conv2d_1", "conv2d_2", "dense")
    one = signal_quality(model, x, estimators="linear", layers=["conv2d_1"], per_neuron=True)
    assert list(one["linear"]) == ["conv2d_1"]
    assert one["linear"]["conv2d_1"] == pytest.approx(full["linear"]["conv2d_1"], abs=1e-12)
    assert one.per_neuron["linear"]["conv2d_1"].shape == (3,)
    assert "conv2d_1" in one.table()


def test_large_layers_are_skipped_with_a_warning():
    model = keras.Sequential([keras.Input((20,)),
                              keras.layers.Dense(3, activation="relu", name="dense"),
                              keras.layers.Dense(2, name="dense_1")])
    x = np.random.default_rng(15).normal(size=(300, 20)).astype("float32")
    with pytest.warns(UserWarning, match="'dense'.*D = 20 > max_dim = 10"):
        small = signal_quality(model, x, estimators=("filter", "relu"), max_dim=10)
    assert "dense" in small.skipped and small.layers == ("dense_1",)
    assert "dense" not in small["relu"]
    full = signal_quality(model, x, estimators=("filter", "relu"))
    assert small["relu"]["dense_1"] == pytest.approx(full["relu"]["dense_1"], abs=1e-12)


# ---------------------------------------------------------------------------------------
# bad input


def test_bad_input_is_refused_clearly():
    model = dense_model()
    x = np.random.default_rng(16).normal(size=(60, 8)).astype("float32")
    with pytest.raises(ValueError, match="unknown estimator 'gradient'"):
        signal_quality(model, x, estimators=("relu", "gradient"))
    with pytest.raises(ValueError, match="no kernel layer named 'conv'.*dense, dense_1"):
        signal_quality(model, x, layers=["conv"])
    with pytest.raises(kp.InvalidInputError, match="splits of \\[2, 1, 2\\] samples"):
        signal_quality(model, x[:5])
    with pytest.raises(kp.InvalidInputError, match="2 batch\\(es\\), split \\[1, 1, 0\\]"):
        signal_quality(model, tf.data.Dataset.from_tensor_slices(x).batch(30))
    with pytest.raises(ValueError, match="splits must be three positive"):
        signal_quality(model, x, splits=(0.5, 0.5))
    with pytest.raises(ValueError, match="splits must be three positive"):
        signal_quality(model, x, splits=(0.5, 0.5, 0.0))


@pytest.mark.parametrize("layer", [keras.layers.DepthwiseConv2D(3),
                                   keras.layers.Conv2DTranspose(2, 3),
                                   keras.layers.SeparableConv2D(2, 3)])
def test_unsupported_kernel_kinds_are_refused(layer):
    model = keras.Sequential([keras.Input((6, 6, 2)), layer, keras.layers.Flatten(),
                              keras.layers.Dense(2, name="dense")])
    x = np.random.default_rng(17).normal(size=(30, 6, 6, 2)).astype("float32")
    with pytest.raises(kp.NotAnalyzableModelError, match=f"'{layer.name}.*"
                       f"{type(layer).__name__}.*pass layers="):
        signal_quality(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few observations for D
        result = signal_quality(model, x, estimators=("filter",), layers=["dense"])
    assert list(result["filter"]) == ["dense"]


@pytest.mark.slow
def test_trained_digits_cnn_matches_numpy_and_orders_the_estimators():
    """A CNN trained on the digits: every layer against the numpy Eq. (1), and random <
    filter < linear in every layer.

    Measured once (3 epochs, 599 images per split): rho random 0.000-0.043, filter
    0.000-0.304, linear 0.561-0.969, relu 0.518-0.762 over the four layers; agreement with
    the oracle 1e-9 except relu in the dense layers, 6e-5: a neuron whose negative regime
    holds one observation of split 2 gives the residual a direction of tiny variance that
    the ridge regularises (the difference is proportional to the ridge: 6e-8 at 1e-13).
    Asserted: filter - random > -0.01, linear - filter > 0.3; agreement 1e-8 (1e-3 for
    relu)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu", name="dense1"),
        keras.layers.Dense(10, name="dense2"),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, digits.target, epochs=3, batch_size=32, verbose=0)
    names = ("random", "filter", "linear", "relu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurons never active on split 1
        result = signal_quality(model, x, estimators=names, per_neuron=True)
        expected = oracle(model, x, names)
    assert_matches(result, {k: v for k, v in expected.items() if k != "relu"}, atol=1e-8)
    assert_matches(result, {"relu": expected["relu"]}, atol=1e-3)
    for layer in result.layers:
        rho = {k: result[k][layer] for k in names}
        assert rho["filter"] - rho["random"] > -0.01, layer
        assert rho["linear"] - rho["filter"] > 0.3, layer
