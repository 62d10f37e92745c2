"""DeConvNet and Guided Backprop at the rectifiers (paper appendix A.2).

Both project the signal through linear layers like the gradient; they differ at the
rectifiers: DeConvNet passes the signal where it is positive, ignoring the forward pass;
Guided Backprop passes it where it is positive and the forward unit was active.
"""

import tensorflow as tf

from ..vjp import vjp
from .layers import ReverseLayer


class DeconvnetReverse(ReverseLayer):
    label = "deconvnet"

    def reverse(self, xs, ys, rs):
        return [tf.nn.relu(rs[0])]


class GuidedReverse(ReverseLayer):
    """relu(r) times the forward derivative (1 where the unit was active)."""

    label = "guided"

    def reverse(self, xs, ys, rs):
        return vjp(self.node.forward, xs, [tf.nn.relu(rs[0])])
