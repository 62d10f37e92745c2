"""Neuron selection: which output the explanation starts from, and with what value.

Modes (as in iNNvestigate): ``max_activation`` (per sample, the largest output),
``index`` (`analyze(x, neuron_selection=i)` with one int or one int per sample) and ``all``.
The output is flattened per sample, so an index counts over all output units. The start
signal is zero except at the selected output, where it is 1 (gradient family), the output
value y (signal and attribution methods, LRP; paper appendix A) or max(y, 0) (Deep Taylor).
"""

import keras
import numpy as np
import tensorflow as tf

from .errors import InvalidInputError

MODES = ("max_activation", "index", "all")
STARTS = ("one", "value", "positive_value")


def check_mode(mode):
    """`mode` if it is one of `MODES`; otherwise a ValueError naming them."""
    if mode not in MODES:
        raise ValueError(
            f"neuron_selection_mode={mode!r} is not one of {', '.join(map(repr, MODES))}."
        )
    return mode


class NeuronSelection(keras.layers.Layer):
    """Start signal of the reverse pass: inputs `[y]` or `[y, index]` -> signal shaped like y."""

    def __init__(self, mode, start, **kwargs):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.mode = check_mode(mode)
        if start not in STARTS:
            raise ValueError(f"start={start!r} is not one of {STARTS}.")
        self.start = start
        self.built = True

    @staticmethod
    def signal_dtype(dtype):
        """float64 outputs start a float64 signal; every other float32 (half precisions
        widened)."""
        return "float64" if "float64" in str(getattr(dtype, "name", dtype)) else "float32"

    def call(self, inputs):
        y = tf.cast(inputs[0], self.signal_dtype(inputs[0].dtype))
        flat = tf.reshape(y, (tf.shape(y)[0], -1))
        if self.mode == "all":
            mask = tf.ones_like(flat)
        else:
            if self.mode == "max_activation":
                index = tf.argmax(flat, axis=1, output_type=tf.int32)
            else:
                index = tf.cast(inputs[1], tf.int32)
            mask = tf.one_hot(index, tf.shape(flat)[1], dtype=flat.dtype)
        if self.start == "one":
            start = mask
        elif self.start == "value":
            start = mask * flat
        else:  # Deep Taylor explains a rectified output: max(y, 0)
            start = mask * tf.maximum(flat, 0.0)
        return tf.reshape(start, tf.shape(y))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=self.signal_dtype(inputs[0].dtype))


def normalize_index(neuron_selection, n_samples, n_outputs):
    """Check a user's `neuron_selection` and return one int32 index per sample."""
    if neuron_selection is None:
        raise InvalidInputError(
            "neuron_selection_mode='index' needs analyze(x, neuron_selection=...): one int "
            "or one int per sample."
        )
    sel = np.asarray(neuron_selection)
    if sel.dtype.kind not in "iu":
        raise InvalidInputError(
            f"neuron_selection must be an int or a sequence of ints, got {neuron_selection!r}."
        )
    if sel.ndim == 0:
        sel = np.full((n_samples,), int(sel))
    elif sel.ndim == 1:
        if len(sel) != n_samples:
            raise InvalidInputError(
                f"neuron_selection has {len(sel)} indices for a batch of {n_samples} samples; "
                "give one int, or one int per sample."
            )
    else:
        raise InvalidInputError(
            f"neuron_selection must be an int or a 1-D sequence, got shape {sel.shape}."
        )
    bad = (sel < 0) | (sel >= n_outputs)
    if bad.any():
        raise InvalidInputError(
            f"neuron_selection {sel[bad][0]} is out of range: the explained output has "
            f"{n_outputs} units (indices 0..{n_outputs - 1})."
        )
    return sel.astype("int32")
