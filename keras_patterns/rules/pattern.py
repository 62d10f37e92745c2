"""PatternNet and PatternAttribution through a kernel map (paper appendix A.2.3, A.3.3).

The signal at a neuron is projected back along its pattern instead of its weights:
PatternNet uses A, PatternAttribution W * A. With the two-component estimator, a neuron in
the positive regime (pre-activation > 0) uses a_+ and one in the negative regime a_-; where
a rectifier follows, the negative regime carries no signal and only a_+ is used. After a
non-blocking activation (leaky ReLU, PReLU, ELU, ...) the negative regime passes a signal,
scaled by the activation's derivative, and it is projected back along a_-.

Optionally (`rescale`) the back-projected signal is divided by its largest magnitude per
sample, so that the signal of a very deep network neither vanishes nor overflows.
"""

import tensorflow as tf

from .base import ReverseLayer, vjp


def rescaled(signal):
    """signal / max |signal| per sample (a sample whose signal is all zero stays zero)."""
    axes = list(range(1, len(signal.shape)))
    peak = tf.reduce_max(tf.abs(signal), axis=axes, keepdims=True) if axes else tf.abs(signal)
    return tf.math.divide_no_nan(signal, peak)


class PatternRule(ReverseLayer):
    """r_in = A+^T (r m) + A-^T (r (1 - m)) (A replaced by W * A for attribution)."""

    rule_name = "pattern"
    rescales = True

    def __init__(self, node, pattern_variables, attribution, gated, rescale=False, **kwargs):
        super().__init__(node, **kwargs)
        self.attribution = attribution
        self.gated = gated
        self.rescale = rescale
        self._patterns = pattern_variables  # name -> tf.Variable (shared across calls)

    def _kernel(self, name):
        kmap = self.node.info["kernel_map"]
        a = self._patterns[name]
        return kmap.kernel * a if self.attribution else a

    def reverse(self, xs, ys, rs):
        kmap = self.node.info["kernel_map"]
        r = rs[0]

        def through(name, signal):
            kernel = self._kernel(name)
            return vjp(lambda v: [kmap.apply(v[0], kernel)], xs, [signal])[0]

        if "a" in self._patterns:
            out = through("a", r)
        else:
            positive = tf.cast(ys[0] > 0, r.dtype)  # regime of each neuron (incl. bias)
            out = through("a_plus", r * positive)
            if not self.gated:
                out = out + through("a_minus", r * (1.0 - positive))
        return [rescaled(out) if self.rescale else out]
