"""Transformer models and the tape oracles of their relevance rules.

`encoder` builds a one-block encoder (Keras MultiHeadAttention, LayerNormalization, an MLP,
a pooled Dense head) with every weight random, biases and β included. `relevance_copy`
computes the same model by hand from its sublayers, with the gradient modified as a
treatment's rules say, so that input × (its tape gradient) is the treatment's relevance:

- the norm's scale 1/σ through `tf.stop_gradient` (both treatments);
- CP: the attention probabilities through `tf.stop_gradient`;
- AttnLRP: each factor of a product of activations (QKᵀ, attention·V) passes half of the
  gradient; the softmax passes its plain gradient;
- activations by the identity rule: the gradient of f at z replaced by f(z) / z.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def randomize(model, seed, scale=0.4):
    """Every weight of `model` drawn N(0, scale²) (biases and β too; γ around 1)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0.0, scale, size=w.shape)
        if "gamma" in w.path:
            value = 1.0 + value
        w.assign(value.astype(w.dtype))
    return model


def encoder(seed=0, tokens=5, width=8, heads=2, key_dim=4, dropout=0.0, activation="gelu",
            rms=False):
    """A one-block encoder on float inputs (tokens, width) with a pooled 3-class head."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((tokens, width))
    a = layers.MultiHeadAttention(heads, key_dim, dropout=dropout, name="mha")(x, x)
    h = layers.LayerNormalization(name="ln", rms_scaling=rms)(layers.Add()([x, a]))
    f = layers.Dense(2 * width, activation=activation, name="ff1")(h)
    h = layers.Add()([h, layers.Dense(width, name="ff2")(f)])
    out = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(h))
    return randomize(keras.Model(x, out), seed)


def _half(t):
    """t, with half of the gradient passing back through it."""
    return 0.5 * t + tf.stop_gradient(0.5 * t)


def _identity_rule(f, z):
    """f(z), with the gradient f(z) / z (the identity rule in gradient form)."""
    y = f(z)
    return z * tf.stop_gradient(tf.math.divide_no_nan(y, z))


def _layer_norm(layer, x):
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    scale = tf.stop_gradient(tf.math.rsqrt(variance + layer.epsilon))
    y = (x if layer.rms_scaling else x - mean) * scale * layer.gamma
    return y if getattr(layer, "beta", None) is None else y + layer.beta


def relevance_copy(model, treatment):
    """The encoder of `encoder` by hand, its gradient modified as `treatment` ("cp" or
    "attnlrp") says (see the module doc)."""
    mha, ln = model.get_layer("mha"), model.get_layer("ln")
    ff1, ff2, head = (model.get_layer(n) for n in ("ff1", "ff2", "head"))

    def forward(x):
        q = mha._query_dense(x)
        k = mha._key_dense(x)
        v = mha._value_dense(x)
        if treatment == "attnlrp":
            q, k = _half(q), _half(k)
        scores = tf.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
        probabilities = tf.nn.softmax(scores, axis=-1)
        if treatment == "cp":
            probabilities = tf.stop_gradient(probabilities)
        else:
            probabilities, v = _half(probabilities), _half(v)
        attended = tf.einsum("bnts,bsnh->btnh", probabilities, v)
        h = _layer_norm(ln, x + mha._output_dense(attended))
        z = tf.matmul(h, ff1.kernel) + ff1.bias
        f = _identity_rule(ff1.activation, z)
        h = h + tf.matmul(f, ff2.kernel) + ff2.bias
        return tf.matmul(tf.reduce_mean(h, axis=1), head.kernel) + head.bias

    return forward


def tape_relevance(forward, x, index):
    """x ⊙ d y_index / dx, y_index the selected output (its value is the start)."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = forward(x)[:, index]
    return (x * tape.gradient(y, x)).numpy()


def kept_by_copy(model, x, index):
    """What AttnLRP's books say the head's bias, the MLP's biases and the attention keep,
    computed on the gradient-form copy: a bias keeps b ⊙ g summed (g the modified gradient
    at the layer's output), fused attention keeps Σ O ⊙ g_O minus what its inputs get
    (¼ q ⊙ ... is already in the copy's halved gradients: Σ q ⊙ g_q + k ⊙ g_k + v ⊙ g_v)."""
    mha, ln = model.get_layer("mha"), model.get_layer("ln")
    ff1, ff2, head = (model.get_layer(n) for n in ("ff1", "ff2", "head"))
    x = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        q, k, v = mha._query_dense(x), mha._key_dense(x), mha._value_dense(x)
        tape.watch([q, k, v])
        scores = tf.einsum("btnh,bsnh->bnts", _half(q), _half(k)) / np.sqrt(q.shape[-1])
        attended = tf.einsum("bnts,bsnh->btnh", _half(tf.nn.softmax(scores, axis=-1)),
                             _half(v))
        tape.watch(attended)
        h = _layer_norm(ln, x + mha._output_dense(attended))
        z1 = tf.matmul(h, ff1.kernel) + ff1.bias
        tape.watch(z1)
        z2 = tf.matmul(_identity_rule(ff1.activation, z1), ff2.kernel) + ff2.bias
        tape.watch(z2)
        y = tf.matmul(tf.reduce_mean(h + z2, axis=1), head.kernel) + head.bias
        out = y[:, index]
    g = dict(zip(("q", "k", "v", "o", "z1", "z2"),
                 tape.gradient(out, [q, k, v, attended, z1, z2])))

    def total(t):
        return tf.reduce_sum(tf.reshape(t, (t.shape[0], -1)), axis=1).numpy()

    return {
        "head": head.bias.numpy()[index] * np.ones(len(x)),
        "ff1": total(ff1.bias * g["z1"]),
        "ff2": total(ff2.bias * g["z2"]),
        "attention": total(attended * g["o"]) - total(q * g["q"] + k * g["k"] + v * g["v"]),
    }
