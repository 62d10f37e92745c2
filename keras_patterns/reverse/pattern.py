"""PatternNet and PatternAttribution through a kernel map (paper appendix A.2.3, A.3.3).

The signal at a neuron is projected back along its pattern instead of its weights:
PatternNet uses A, PatternAttribution W * A (the analyzer forms the kernel once per pattern
set). With a two-component estimator, a neuron in the positive regime (pre-activation > 0)
uses a_+ and one in the negative regime a_-; where only rectifiers follow, the negative
regime carries no signal and only a_+ is used. After a non-blocking activation (leaky ReLU,
PReLU, ELU, ...) the negative regime passes a signal, scaled by the activation's
derivative, and it is projected back along a_-.

Optionally (`rescale`) the back-projected signal is divided by its largest magnitude per
sample (the default instead carries the signal's scale apart: `reverse.scaled`).
"""

import tensorflow as tf

from ..vjp import vjp
from .layers import ReverseLayer


def rescaled(signal):
    """signal / max |signal| per sample (a sample whose signal is all zero stays zero)."""
    axes = list(range(1, len(signal.shape)))
    peak = tf.reduce_max(tf.abs(signal), axis=axes, keepdims=True) if axes else tf.abs(signal)
    return tf.math.divide_no_nan(signal, peak)


class PatternReverse(ReverseLayer):
    """r_in = K+^T (r m) + K-^T (r (1 - m)), the kernels K (A or W * A) per regime.

    kernels: name ("a", or "a_plus" / "a_minus") -> tf.Variable holding the kernel to
        back-project with (shared by all calls of the layer).
    gated: only rectifiers consume the node's output (the negative regime is blocked).
    """

    label = "pattern"
    rescales = True

    def __init__(self, node, kernels, gated, rescale=False, **kwargs):
        super().__init__(node, **kwargs)
        self.gated = gated
        self.rescale = rescale
        self._kernels = kernels

    def reverse(self, xs, ys, rs):
        kmap = self.node.kernel_map
        r = rs[0]

        def through(name, signal):
            kernel = self._kernels[name]
            return vjp(lambda v: [kmap.apply(v[0], kernel)], xs, [signal])[0]

        if "a" in self._kernels:
            out = through("a", r)
        else:
            # the regime of each neuron (pre-activation incl. bias > 0), as a boolean: the
            # graph may form it from the forward values long before the signal arrives,
            # and a boolean per layer holds a quarter of what a float mask would
            r_plus = tf.where(ys[0] > 0, r, tf.zeros((), r.dtype))
            out = through("a_plus", r_plus)
            if not self.gated:
                out = out + through("a_minus", r - r_plus)
        return [rescaled(out) if self.rescale else out]
