"""Patterns in networks beyond kernel -> ReLU: BatchNormalization folded into the kernel
before it, activations that do not block the negative regime (leaky ReLU, PReLU, ELU), and
the per-layer rescaling of very deep signals. Oracles: numpy closed forms with explicit
patches on the folded kernel, numpy back-projection, tf.GradientTape."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, numpy_patterns, patches

import keras_patterns as kp

# -- BatchNormalization folded into the kernel ----------------------------------------------

def _bn_model():
    """Conv2D(linear) -> BN -> ReLU -> Dense(linear) -> BN -> ReLU -> Dense, with biases and
    BN parameters far from the identity (one negative gamma per BN, a non-default epsilon;
    moving statistics within a factor of two of the data's, so that both regimes occur)."""
    rng = np.random.default_rng(11)
    x = _bn_data()
    model = keras.Sequential([
        keras.Input((6, 5, 2)),
        layers.Conv2D(4, 3, padding="same"),
        layers.BatchNormalization(epsilon=0.05),
        layers.ReLU(),
        layers.Flatten(),
        layers.Dense(6),
        layers.BatchNormalization(epsilon=0.01),
        layers.Activation("relu"),
        layers.Dense(3),
    ])
    for i, layer in enumerate(model.layers):
        if isinstance(layer, layers.BatchNormalization):
            before = _run(model, x, i - 1)
            axes = tuple(range(before.ndim - 1))
            c = layer.gamma.shape[0]
            sign = np.ones(c)
            sign[1] = -1.0
            layer.gamma.assign(sign * rng.uniform(0.5, 2.0, c))
            layer.beta.assign(rng.normal(0.0, 0.3, c))
            layer.moving_mean.assign(before.mean(axis=axes) + rng.normal(0.0, 0.2, c))
            layer.moving_variance.assign(before.var(axis=axes) * rng.uniform(0.5, 2.0, c))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.3, layer.bias.shape))
    return model


def _fold(kernel_layer, bn):
    """Folded kernel W * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps)."""
    s = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    w = kernel_layer.kernel.numpy() * s
    b = (kernel_layer.bias.numpy() - bn.moving_mean.numpy()) * s + bn.beta.numpy()
    return w, b


def _run(model, x, upto):
    """The output of model.layers[upto] (inference mode), layer by layer."""
    h = tf.constant(x)
    for layer in model.layers[: upto + 1]:
        h = layer(h, training=False)
    return h.numpy()


def _bn_data(n=60):
    return np.random.default_rng(12).normal(0.3, 1.0, size=(n, 6, 5, 2)).astype("float32")


@pytest.mark.parametrize("pattern_type", ["relu", "linear"])
def test_batchnorm_fold_patterns_equal_numpy_closed_form(pattern_type):
    model = _bn_model()
    conv, bn1, _, _, dense, bn2, _, last = model.layers
    x = _bn_data()
    p = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=16,
                            negative_patterns="all")

    # Conv2D -> BN: patches of the input, folded kernel, regime = sign of the BN output.
    w1, b1 = _fold(conv, bn1)
    bn_out = _run(model, x, 1)
    P = patches(x, w1.shape[:2], conv.strides, conv.dilation_rate, conv.padding)
    e = numpy_patterns(P, w1.reshape(-1, w1.shape[-1]), b1, pattern_type,
                       plus=bn_out.reshape(-1, w1.shape[-1]) > 0)
    expected = {name: a.reshape(w1.shape) for name, a in e.items()}
    # Dense -> BN: input = flattened ReLU output, regime = sign of the second BN output.
    w2, b2 = _fold(dense, bn2)
    expected_dense = numpy_patterns(_run(model, x, 3), w2, b2, pattern_type,
                                    plus=_run(model, x, 5) > 0)
    # The last Dense has no BN: its own kernel and pre-activation.
    expected_last = numpy_patterns(_run(model, x, 6), last.kernel.numpy(), last.bias.numpy(),
                                   pattern_type)
    for layer, want in ((conv, expected), (dense, expected_dense), (last, expected_last)):
        got = p[layer.name]
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=2e-4,
                                       atol=2e-5 * np.abs(want[name]).max(),
                                       err_msg=f"{layer.name} {name}")
    # The fold matters: the unfolded kernel's patterns are not these (w^T a = 1 fails).
    resp = np.sum(conv.kernel.numpy() * p[conv.name][next(iter(expected))], axis=(0, 1, 2))
    assert not np.allclose(resp, 1.0, rtol=1e-2)


def _bn_oracle(model, patterns, x, attribution):
    """PatternNet / PatternAttribution by tape: the gradient of a linear network whose
    kernels are the patterns A (or folded W * A), gated by the ReLU decisions of the original
    forward pass (the BN outputs), started with the selected output value y."""
    conv, bn1, relu1, flat, dense, bn2, relu2, last = model.layers
    w1, _ = _fold(conv, bn1)
    w2, _ = _fold(dense, bn2)

    def kernel(layer, w, name):
        a = patterns[layer.name][name]
        return tf.constant((w * a if attribution else a).astype("float32"))

    on1 = (_run(model, x, 1) > 0).astype("float32")  # ReLU decisions: the BN outputs' signs
    on2 = (_run(model, x, 5) > 0).astype("float32")
    z3 = _run(model, x, 7)
    k = np.argmax(z3, axis=1)
    start = np.zeros_like(z3)
    start[np.arange(len(x)), k] = z3[np.arange(len(x)), k]
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        u1 = conv.convolution_op(xt, kernel(conv, w1, "a_plus")) * on1
        u2 = tf.matmul(flat(u1), kernel(dense, w2, "a_plus")) * on2
        w3 = last.kernel.numpy()
        out = tf.where(z3 > 0, tf.matmul(u2, kernel(last, w3, "a_plus")),
                       tf.matmul(u2, kernel(last, w3, "a_minus")))
        objective = tf.reduce_sum(out * start)
    return tape.gradient(objective, xt).numpy()


def test_batchnorm_fold_pattern_methods_equal_tape_oracle():
    model = _bn_model()
    x = _bn_data()
    patterns = kp.compute_patterns(model, x)
    sample = x[:7]
    for method in ("pattern.net", "pattern.attribution"):
        got = kp.create_analyzer(method, model, patterns=patterns).analyze(sample)
        expected = _bn_oracle(model, patterns, sample, method == "pattern.attribution")
        assert_close(got, expected, rtol=1e-5)


# -- activations that pass the negative regime ----------------------------------------------

def _leaky(kind):
    if kind == "LeakyReLU":
        return [layers.Dense(5), layers.LeakyReLU(negative_slope=0.3)], \
            lambda z: np.where(z > 0, 1.0, 0.3)
    if kind == "PReLU":
        alpha = np.array([0.1, 0.5, -0.2, 0.8, 0.25], "float32")
        return [layers.Dense(5), layers.PReLU(alpha_initializer=keras.initializers.Constant(
            alpha))], lambda z: np.where(z > 0, 1.0, alpha)
    if kind == "ELU":
        return [layers.Dense(5), layers.ELU(alpha=0.7)], \
            lambda z: np.where(z > 0, 1.0, 0.7 * np.exp(z))
    # the activation inside the kernel layer (keras' leaky_relu: negative slope 0.2)
    return [layers.Dense(5, activation="leaky_relu")], lambda z: np.where(z > 0, 1.0, 0.2)


@pytest.mark.parametrize("kind", ["LeakyReLU", "PReLU", "ELU", "Dense(leaky_relu)"])
def test_negative_regime_uses_a_minus_after_non_blocking_activations(kind):
    """Numpy oracle: back-project with a_+ where the pre-activation > 0 and a_- elsewhere,
    times the activation's derivative."""
    hidden, derivative = _leaky(kind)
    model = keras.Sequential([keras.Input((6,))] + hidden + [layers.Dense(3)])
    first, last = model.layers[0], model.layers[-1]
    rng = np.random.default_rng(21)
    first.bias.assign(rng.normal(0.0, 0.5, 5).astype("float32"))
    x = rng.normal(0.5, 1.0, size=(400, 6)).astype("float32")
    patterns = kp.compute_patterns(model, x, batch_size=64)

    w1, b1 = first.kernel.numpy(), first.bias.numpy()
    z1 = x.astype(np.float64) @ w1 + b1
    h = _run(model, x, len(model.layers) - 2).astype(np.float64)
    w2, b2 = last.kernel.numpy(), last.bias.numpy()
    z2 = h @ w2 + b2
    for layer, inputs, w, b in ((first, x, w1, b1), (last, h, w2, b2)):
        want = numpy_patterns(inputs, w, b, "relu")  # regime: pre-activation > 0
        for name in want:
            np.testing.assert_allclose(patterns[layer.name][name], want[name], rtol=2e-4,
                                       atol=2e-5 * np.abs(want[name]).max())

    sample = slice(0, 12)
    k = np.argmax(z2[sample], axis=1)
    r2 = np.zeros_like(z2[sample])
    r2[np.arange(len(k)), k] = z2[sample][np.arange(len(k)), k]

    def back(r, z, w, key, attribution, negative=True):
        a_plus, a_minus = patterns[key]["a_plus"], patterns[key]["a_minus"]
        if attribution:
            a_plus, a_minus = w * a_plus, w * a_minus
        out = (r * (z > 0)) @ a_plus.T
        return out + (r * (z <= 0)) @ a_minus.T if negative else out

    for method in ("pattern.net", "pattern.attribution"):
        attribution = method == "pattern.attribution"
        r_h = back(r2, z2[sample], w2, last.name, attribution)
        r_z1 = r_h * derivative(z1[sample])
        expected = back(r_z1, z1[sample], w1, first.name, attribution)
        got = kp.create_analyzer(method, model, patterns=patterns).analyze(x[sample])
        assert_close(got, expected, rtol=2e-5)
        # The negative regime carries signal here: blocking it would be wrong.
        blocked = back(r_z1, z1[sample], w1, first.name, attribution, negative=False)
        assert np.abs(blocked - expected).max() > 0.05 * np.abs(expected).max()


# -- rescaling very deep signals --------------------------------------------------------------

def _positive_multiple(rescaled, plain):
    """The per-sample factors c > 0 with rescaled = c * plain (asserted)."""
    r = rescaled.reshape(len(rescaled), -1).astype(np.float64)
    p = plain.reshape(len(plain), -1).astype(np.float64)
    c = np.sum(r * p, axis=1) / np.sum(p * p, axis=1)
    assert np.all(c > 0)
    assert_close(r, c[:, None] * p, rtol=1e-5)
    return c


@pytest.mark.filterwarnings("ignore:.*zero pattern:UserWarning")
@pytest.mark.parametrize("method", ["pattern.net", "pattern.attribution"])
def test_rescaled_signal_is_a_positive_multiple_on_a_chain(method):
    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Flatten(),
                              layers.Dense(6, activation="relu"), layers.Dense(3)])
    x = np.random.default_rng(6).normal(size=(60, 6, 6, 2)).astype("float32")
    patterns = kp.compute_patterns(model, x)
    sample = x[:8]
    plain = kp.create_analyzer(method, model, patterns=patterns).analyze(sample)
    rescaled = kp.create_analyzer(method, model, patterns=patterns, rescale=True).analyze(sample)
    _positive_multiple(rescaled, plain)
    # the first layer of the network is a kernel layer: its back-projection is the result
    np.testing.assert_allclose(np.abs(rescaled).reshape(8, -1).max(axis=1), 1.0, rtol=1e-6)


def test_rescale_keeps_a_30_layer_signal_in_range():
    """Positive kernels make every neuron of a layer see the same signal direction, so each
    back-projection superposes about `width` copies of it (with filter patterns a = w / w^T w
    and w ~ U(0, 2 / width), about 3 width / 4 times the signal): the PatternNet signal
    grows geometrically with depth beyond float32 (the default carries its scale apart, see
    test_scaled_signal.py); the rescaled one stays at max |e| = 1."""
    depth, width = 30, 32
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input((width,))] + [
        layers.Dense(width, activation="relu", use_bias=False) for _ in range(depth)])
    for layer in model.layers:
        layer.kernel.assign(rng.uniform(0.0, 2.0 / width, (width, width)).astype("float32"))
    x = rng.uniform(0.5, 1.5, size=(4, width)).astype("float32")
    rescaled = kp.create_analyzer("pattern.net", model, pattern_type="filter",
                                  rescale=True).analyze(x)
    assert np.all(np.isfinite(rescaled))
    np.testing.assert_allclose(np.abs(rescaled).max(axis=1), 1.0, rtol=1e-6)
    # Where float32 still holds it (the first 8 layers), the rescaled signal is the plain
    # one up to a positive factor per sample.
    shallow = keras.Sequential([keras.Input((width,))] + model.layers[:8])
    plain8 = kp.create_analyzer("pattern.net", shallow, pattern_type="filter").analyze(x)
    rescaled8 = kp.create_analyzer("pattern.net", shallow, pattern_type="filter",
                                   rescale=True).analyze(x)
    assert np.all(np.isfinite(plain8))
    _positive_multiple(rescaled8, plain8)


def test_rescale_must_be_a_bool():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, activation="relu")])
    with pytest.raises(ValueError, match="rescale"):
        kp.create_analyzer("pattern.net", model, pattern_type="filter", rescale="yes")
