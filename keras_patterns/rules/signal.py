"""DeConvNet and Guided Backprop rules for the ReLU family (paper appendix A.2).

Both project the signal through linear layers like the gradient; they differ at the
rectifiers: DeConvNet passes the signal where it is positive, ignoring the forward pass;
Guided Backprop passes it where it is positive and the forward unit was active.
"""

import tensorflow as tf

from .base import ReverseLayer, vjp


class DeconvnetReLURule(ReverseLayer):
    rule_name = "deconvnet"

    def reverse(self, xs, ys, rs):
        return [tf.nn.relu(rs[0])]


class GuidedReLURule(ReverseLayer):
    """relu(r) times the forward derivative (1 where the unit was active)."""

    rule_name = "guided"

    def reverse(self, xs, ys, rs):
        return vjp(self.node.forward, xs, [tf.nn.relu(rs[0])])
