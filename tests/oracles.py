"""Independent computations that the analyzers are checked against.

- `tape_gradient`: tf.GradientTape over the user's model (the softmax replaced by its input).
- `rectifier_model`: a copy of a model whose rectifiers carry DeConvNet or Guided Backprop
  gradients via `tf.custom_gradient`; a tape over it gives the reference signal.
- `patches`, `numpy_patterns`: explicit receptive-field patches and the pattern estimators
  in closed form (numpy, float64).
"""

import keras
import numpy as np
import tensorflow as tf


def logits_model(model):
    """`model` with a final softmax removed, sharing the weights (the model is not changed)."""
    last = model.layers[-1]
    out = model.outputs[0]
    if isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation)
        and getattr(last.activation, "__name__", "") == "softmax"
    ):
        return keras.Model(model.inputs, last.input)
    if getattr(last, "activation", None) is not None and last.activation.__name__ == "softmax":
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        clone.layers[-1].activation = keras.activations.linear
        return clone
    del out
    return model


def select(y, mode, index=None):
    """The start mask of the reverse pass on a (batch, ...) output, as in the package docs."""
    flat = np.reshape(y, (len(y), -1))
    if mode == "all":
        mask = np.ones_like(flat)
    else:
        if mode == "max_activation":
            index = np.argmax(flat, axis=1)
        index = np.broadcast_to(np.asarray(index), (len(y),))
        mask = np.zeros_like(flat)
        mask[np.arange(len(y)), index] = 1.0
    return mask.reshape(np.shape(y))


def tape_gradient(fn, xs, mode="max_activation", index=None, start="one"):
    """d(selected output)/d(inputs) by tf.GradientTape; `fn` maps inputs to the output."""
    single = not isinstance(xs, (list, tuple))
    xs = [tf.constant(x) for x in ([xs] if single else xs)]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        y = fn(xs[0] if single else xs)
        if isinstance(y, (list, tuple)):
            raise ValueError("fn must return one output")
    mask = select(y.numpy(), mode, index)
    if start == "value":
        mask = mask * y.numpy()
    grads = tape.gradient(y, xs, output_gradients=tf.constant(mask, y.dtype))
    grads = [g.numpy() for g in grads]
    return grads[0] if single else grads


def _rectifier(kind):
    @tf.custom_gradient
    def relu(x):
        y = tf.nn.relu(x)

        def grad(dy):
            positive = tf.cast(dy > 0, dy.dtype)
            if kind == "deconvnet":
                return dy * positive
            return dy * positive * tf.cast(x > 0, dy.dtype)

        return y, grad

    relu.__name__ = f"{kind}_relu"
    return relu


def rectifier_model(model, kind):
    """A copy of `model` (same weights) whose relus back-propagate per `kind`.

    kind: "deconvnet" or "guided_backprop". Only plain relu activations are replaced.
    """
    act = _rectifier(kind)

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.ReLU):
            return keras.layers.Activation(act, name=layer.name)
        if getattr(layer, "activation", None) is not None and (
            getattr(layer.activation, "__name__", "") == "relu"
        ):
            new.activation = act
        return new

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def assert_close(actual, expected, rtol=1e-5):
    """Equal to `rtol` relative to the largest magnitude of `expected`."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    err = float(np.max(np.abs(actual - expected)))
    assert err <= rtol * scale, f"max abs error {err:.3g} > {rtol:g} x {scale:.3g}"
    assert np.isfinite(actual).all()


def _same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def patches(x, ks, strides, dilation, padding):
    """(batch * positions, kh * kw * C) patches of a channels_last 1-D or 2-D input."""
    spatial = x.shape[1:-1]
    pads = [(0, 0)] + [(_same_pads(n, k, s, d) if padding == "same" else (0, 0))
                       for n, k, s, d in zip(spatial, ks, strides, dilation)] + [(0, 0)]
    xp = np.pad(x, pads)
    outs = [(xp.shape[1 + i] - (ks[i] - 1) * dilation[i] - 1) // strides[i] + 1
            for i in range(len(ks))]
    rows = []
    for pos in np.ndindex(*outs):  # positions in row-major order, as the layer's output
        idx = [[p * strides[i] + j * dilation[i] for j in range(ks[i])]
               for i, p in enumerate(pos)]
        if len(ks) == 1:
            patch = xp[:, idx[0], :]
        else:
            patch = xp[:, idx[0]][:, :, idx[1]]
        rows.append(patch.reshape(len(x), -1))
    return np.stack(rows, axis=1).reshape(-1, rows[0].shape[1])


def numpy_patterns(X, W, b, pattern_type, plus=None):
    """Patterns of a matrix W (features x neurons) from observations X (obs x features).

    y = X W (no bias); the positive regime is `plus` (obs x neurons) when given, else
    X W + b > 0. A neuron with fewer than two observations in a regime gets a zero pattern
    there."""
    X = X.astype(np.float64)
    W = W.astype(np.float64)
    Y = X @ W
    Z = Y + b
    out = {}

    def normed(direction):
        return direction / np.sum(W * direction, axis=0)

    def cov(mask):
        res = np.zeros_like(W)
        for j in range(W.shape[1]):
            m = mask[:, j]
            if m.sum() < 2:
                continue  # the column stays zero (the 0/0 of `normed` is zeroed below)
            xm, ym = X[m], Y[m, j]
            res[:, j] = ((xm - xm.mean(0)) * (ym - ym.mean())[:, None]).mean(0)
        return res

    plus = Z > 0 if plus is None else np.asarray(plus, bool)
    if pattern_type == "relu":
        out["a_plus"] = normed(cov(plus))
        out["a_minus"] = normed(cov(~plus))
    elif pattern_type == "linear":
        out["a"] = normed(cov(np.ones_like(plus)))
    elif pattern_type == "relu.eq8":
        for name, mask in (("a_plus", plus), ("a_minus", ~plus)):
            d = np.zeros_like(W)
            for j in range(W.shape[1]):
                m = mask[:, j]
                d[:, j] = (X[m] * Y[m, j][:, None]).mean(0) - X[m].mean(0) * Y[:, j].mean()
            out[name] = normed(d)
    elif pattern_type == "filter":
        out["a"] = normed(W)
    return {name: np.nan_to_num(a) for name, a in out.items()}


def bilinear_matrix(n_in, n_out):
    """(n_out, n_in): linear interpolation along one axis with half-pixel centres, the
    source position (i + 1/2) n_in / n_out − 1/2 clamped to [0, n_in − 1] (as
    tf.image.resize's "bilinear" reads a grid)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        low = int(np.floor(src))
        high = min(low + 1, n_in - 1)
        m[i, low] += 1.0 - (src - low)
        m[i, high] += src - low
    return m


def resize_bilinear(maps, size):
    """maps (n, *spatial) with one or two spatial axes resized to (n, *size), separably."""
    out = np.einsum("oi,ni...->no...", bilinear_matrix(maps.shape[1], size[0]), maps)
    if len(size) == 2:
        out = np.einsum("oi,nhi->nho", bilinear_matrix(maps.shape[2], size[1]), out)
    return out
