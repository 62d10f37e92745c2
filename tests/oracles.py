"""Independent computations that the analyzers are checked against.

- `tape_gradient`: tf.GradientTape over the user's model (the softmax replaced by its input).
- `rectifier_model`: a copy of a model whose rectifiers carry DeConvNet or Guided Backprop
  gradients via `tf.custom_gradient`; a tape over it gives the reference signal.
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
