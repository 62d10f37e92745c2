"""Signals carried with a per-sample scale, so that a linear reverse pass never over- or
underflows.

A back-projected signal can grow or shrink geometrically with depth (every layer superposes
its neurons' signals) until float32 overflows or underflows: PatternNet on a deep residual
network returns NaN. Here a signal travels as a pair (s, log c): the signal itself is
s * exp(log c) per sample, with max |s| = 1. After every layer that can change the
magnitude the pair is renormalised; where branches meet, they are brought to the larger
scale before they are added. The result is exact, not re-weighted: at the end the pair is
turned back into s * exp(log c) wherever that is a finite float32, and into s alone (the
signal up to one positive factor per sample, which the display x / (2 max |x|) + 1/2
removes anyway) for the samples where it is not.

This is valid for reverse passes that are linear in the signal (PatternNet: patterns,
rectifier gates, max-pooling routes and the gradient elsewhere are all linear in it).
"""

import keras
import tensorflow as tf

# The log scale of an all-zero signal: below every real scale, and exp of it minus any real
# scale is exactly 0 (-inf would give NaN where two zero signals meet).
ZERO = -1e30
# |log c| up to which the result is returned in its own units.
LIMIT = 60.0


def _peak(s):
    """max |s| per sample, from two reductions (no |s| array is written)."""
    axes = list(range(1, len(s.shape)))
    if not axes:
        return tf.abs(s)
    return tf.maximum(tf.reduce_max(s, axis=axes), -tf.reduce_min(s, axis=axes))


def _per_sample(v, like):
    return tf.reshape(v, tf.concat([tf.shape(v), tf.ones([len(like.shape) - 1], tf.int32)], 0))


def normalize(s, log_c):
    """(s / max|s|, log c + log max|s|) per sample; an all-zero sample gets log c = ZERO."""
    peak = _peak(s)
    live = peak > 0
    safe = tf.where(live, peak, tf.ones_like(peak))
    # one multiplication per entry (an all-zero sample is divided by 1 and stays zero)
    s = s * _per_sample(1.0 / safe, s)
    return s, tf.where(live, log_c + tf.math.log(safe), tf.fill(tf.shape(peak), ZERO))


def common(signals, logs):
    """The signals brought to their largest scale, and that scale."""
    top = logs[0]
    for log_c in logs[1:]:
        top = tf.maximum(top, log_c)
    return [s * _per_sample(tf.exp(log_c - top), s) for s, log_c in zip(signals, logs)], top


class _ScaleLayer(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.built = True


class StartScale(_ScaleLayer):
    """The start signal as a pair (s, log c)."""

    def call(self, s):
        return list(normalize(s, tf.zeros(tf.shape(s)[:1], s.dtype)))

    def compute_output_spec(self, s):
        return [keras.KerasTensor(s.shape, s.dtype), keras.KerasTensor(s.shape[:1], s.dtype)]


class Renormalize(_ScaleLayer):
    """[s, log c] -> the same signal with max |s| = 1 again."""

    def call(self, inputs):
        return list(normalize(*inputs))

    def compute_output_spec(self, inputs):
        return [keras.KerasTensor(t.shape, t.dtype) for t in inputs]


class Common(_ScaleLayer):
    """[s_1..s_k, log c_1..log c_k] -> [s'_1..s'_k, L]: the signals at the common scale L."""

    def call(self, inputs):
        k = len(inputs) // 2
        signals, top = common(inputs[:k], inputs[k:])
        return signals + [top]

    def compute_output_spec(self, inputs):
        k = len(inputs) // 2
        return [keras.KerasTensor(t.shape, t.dtype) for t in inputs[: k + 1]]


class ScaledSum(_ScaleLayer):
    """[s_1..s_k, log c_1..log c_k] -> [s, log c] of the sum of the signals."""

    def call(self, inputs):
        k = len(inputs) // 2
        signals, top = common(inputs[:k], inputs[k:])
        total = signals[0]
        for s in signals[1:]:
            total = total + s
        return list(normalize(total, top))

    def compute_output_spec(self, inputs):
        return [keras.KerasTensor(inputs[0].shape, inputs[0].dtype),
                keras.KerasTensor(inputs[-1].shape, inputs[-1].dtype)]


class Unscale(_ScaleLayer):
    """[s, log c] -> s * exp(log c) where float32 holds it (neither overflow nor loss to
    underflow: |log c| < 60, max |s| = 1), else s (per sample)."""

    def call(self, inputs):
        s, log_c = inputs
        fits = tf.abs(log_c) < LIMIT
        factor = tf.exp(tf.where(fits, log_c, tf.zeros_like(log_c)))
        return s * _per_sample(factor, s)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, inputs[0].dtype)
