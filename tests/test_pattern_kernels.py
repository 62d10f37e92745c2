"""Fitted patterns on every kernel layer kind, against an oracle that needs no patch code:
the observation of output neuron j at one position is the gradient of its output with
respect to its own kernel entries (a linear map's patch, zeros of padding and stride gaps
included), taken by tf.GradientTape; the covariances are then formed in numpy float64."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops
from oracles import assert_close

import keras_patterns as kp


def _last(shape, n):
    """Owner of each kernel entry: the last axis indexes the neuron."""
    return np.broadcast_to(np.arange(n), shape)


def _second_last(shape, n):
    """Transposed convolutions: axis -2 indexes the neuron."""
    return np.broadcast_to(np.arange(n)[:, None], shape)


def _depthwise(shape, n):
    """Depthwise kernels (..., channels, multiplier): neuron c * multiplier + m."""
    c, m = shape[-2:]
    return np.broadcast_to(np.arange(c * m).reshape(c, m), shape)


# (name, layer, input shape, per map: (kernel attribute, owner of the kernel entries))
CASES = [
    ("conv1d_causal_dilated", lambda: layers.Conv1D(3, 3, padding="causal", dilation_rate=2),
     (9, 2), [("kernel", _last)]),
    ("conv1d_same_strided", lambda: layers.Conv1D(3, 3, strides=2, padding="same"),
     (8, 2), [("kernel", _last)]),
    ("conv3d_same", lambda: layers.Conv3D(2, 2, strides=(1, 2, 1), padding="same"),
     (4, 5, 3, 2), [("kernel", _last)]),
    ("conv2d_grouped", lambda: layers.Conv2D(4, 3, groups=2, padding="same"),
     (5, 6, 4), [("kernel", _last)]),
    ("conv2d_channels_first",
     lambda: layers.Conv2D(3, 3, strides=2, padding="same", data_format="channels_first"),
     (2, 6, 5), [("kernel", _last)]),
    ("conv2d_transpose", lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same"),
     (4, 4, 2), [("kernel", _second_last)]),
    ("conv2d_transpose_channels_first",
     lambda: layers.Conv2DTranspose(2, 3, strides=2, padding="same",
                                    data_format="channels_first"),
     (2, 4, 3), [("kernel", _second_last)]),
    ("conv1d_transpose", lambda: layers.Conv1DTranspose(2, 3, strides=2, padding="valid"),
     (5, 2), [("kernel", _second_last)]),
    ("depthwise1d", lambda: layers.DepthwiseConv1D(3, strides=2, depth_multiplier=2,
                                                   padding="same"),
     (8, 2), [("kernel", _depthwise)]),
    ("separable2d", lambda: layers.SeparableConv2D(3, 3, strides=2, depth_multiplier=2,
                                                   padding="same"),
     (6, 5, 2), [("depthwise_kernel", _depthwise), ("pointwise_kernel", _last)]),
    ("separable1d", lambda: layers.SeparableConv1D(2, 3, padding="same"),
     (7, 3), [("depthwise_kernel", _depthwise), ("pointwise_kernel", _last)]),
    ("dense_on_sequences", lambda: layers.Dense(3), (4, 5), [("kernel", _last)]),
    # one input channel per group: applied as a depthwise convolution
    ("conv2d_channel_groups", lambda: layers.Conv2D(6, 3, groups=3, strides=2, padding="same"),
     (6, 5, 3), [("kernel", _last)]),
    # windows that leave input rows unread: cropped (or, 1x1, subsampled) before the map
    ("conv2d_1x1_strided", lambda: layers.Conv2D(3, 1, strides=2), (6, 7, 2),
     [("kernel", _last)]),
    ("conv2d_1x1_strided_same", lambda: layers.Conv2D(3, 1, strides=(3, 2), padding="same"),
     (7, 8, 2), [("kernel", _last)]),
    ("conv2d_unread_rows", lambda: layers.Conv2D(3, 2, strides=2), (7, 6, 2),
     [("kernel", _last)]),
]


def _maps(layer):
    """Per kernel map: (kernel attribute, fn(input, kernel) -> output without bias); the
    first map takes the layer's input, the second (separable) the first one's output. Keras
    computes them: the layer itself (stateless_call with the given kernel and a zero bias),
    or keras.ops for the two halves of a separable convolution."""
    if type(layer).__name__.startswith("Separable"):
        return [
            ("depthwise_kernel", lambda v, k: ops.depthwise_conv(
                v, k, strides=layer.strides, padding=layer.padding,
                dilation_rate=layer.dilation_rate, data_format=layer.data_format)),
            ("pointwise_kernel", lambda v, k: ops.conv(v, k, padding="valid",
                                                       data_format=layer.data_format)),
        ]

    def fn(v, k):
        values = [k if var.path.endswith("/kernel") else
                  ops.zeros_like(var) if var.path.endswith("/bias") else var.value
                  for var in layer.trainable_variables]
        return layer.stateless_call(values, [], v)[0]

    return [("kernel", fn)]


def _oracle(fn, v, kernel, bias, owner, channel_axis, pattern_type, loop=False):
    """Expected patterns of one kernel map from tape observations (numpy float64)."""
    v = tf.constant(v)
    k = tf.constant(kernel)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(k)
        y = fn(v, k)
    # (*y.shape, *kernel.shape); the vectorised jacobian of a grouped convolution is wrong
    # in TensorFlow 2.21 on CPU (it disagrees with the gradient): `loop` takes the slow,
    # right one
    jac = tape.jacobian(y, k, experimental_use_pfor=not loop).numpy()
    rank = len(y.shape)
    axis = channel_axis % rank
    y = np.moveaxis(y.numpy().astype(np.float64), axis, -1)
    jac = np.moveaxis(jac, axis, rank - 1)
    n_neurons = y.shape[-1]
    z = y + (0.0 if bias is None else bias)
    owners = owner(kernel.shape, n_neurons)
    out = {name: np.zeros(kernel.shape) for name in (
        ("a", ) if pattern_type == "linear" else ("a_plus", "a_minus"))}
    for j in range(n_neurons):
        mine = (owners == j).ravel()
        obs = jac.reshape(-1, n_neurons, kernel.size)[:, j, mine].astype(np.float64)
        yj, zj = y[..., j].ravel(), z[..., j].ravel()
        w = kernel.ravel()[mine].astype(np.float64)
        masks = {"a_plus": zj > 0, "a_minus": zj <= 0, "a": np.ones_like(zj, bool)}
        for name in out:
            m = masks[name]
            if m.sum() < (1 if pattern_type == "relu.eq8" else 2):
                continue  # no estimate: the pattern stays zero
            xm, ym = obs[m], yj[m]
            # relu, linear: E_r[x y] - E_r[x] E_r[y]; relu.eq8: E_r[x y] - E_r[x] E[y]
            mean_y = yj.mean() if pattern_type == "relu.eq8" else ym.mean()
            direction = (xm * ym[:, None]).mean(0) - xm.mean(0) * mean_y
            out[name].ravel()[np.flatnonzero(mine)] = direction / (w @ direction)
    return out


@pytest.mark.parametrize("pattern_type,precision", [
    ("relu", "float32"), ("relu.eq8", "float32"), ("linear", "float32"), ("relu", "float64")])
@pytest.mark.parametrize("name,make,shape,maps", CASES, ids=[c[0] for c in CASES])
def test_patterns_of_every_kernel_kind_equal_the_tape_oracle(name, make, shape, maps,
                                                             pattern_type, precision):
    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    x = rng.normal(2.0, 1.0, size=(12,) + shape).astype("float32")  # offset: shifts matter
    layer = make()
    model = keras.Sequential([keras.Input(shape), layer])
    if layer.use_bias:
        layer.bias.assign(rng.normal(0, 0.5, size=layer.bias.shape).astype("float32"))
    p = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=5,
                            negative_patterns="all", precision=precision)
    channel_axis = 1 if getattr(layer, "data_format", None) == "channels_first" else -1
    v = x
    for (attr, owner), (_, fn) in zip(maps, _maps(layer)):
        kernel = getattr(layer, attr).numpy()
        last = attr != "depthwise_kernel" or len(maps) == 1
        bias = None
        if last and layer.use_bias:
            bias = layer.bias.numpy()
        expected = _oracle(fn, v, kernel, bias, owner, channel_axis, pattern_type,
                           loop="group" in name)
        key = layer.name if attr == "kernel" else f"{layer.name}.{attr}"
        assert set(p[key]) == set(expected), key
        for pattern, a in expected.items():
            assert_close(p[key][pattern], a, rtol=2e-4 if precision == "float32" else 1e-5)
        v = fn(tf.constant(v), getattr(layer, attr)).numpy()
