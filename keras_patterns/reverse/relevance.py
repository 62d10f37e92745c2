"""Reverse layers that carry relevance (LRP, Deep Taylor) through one forward node.

- `KernelRelevance`: a kernel map (BatchNorm folded in) or an element-wise affine node
  (BatchNormalization without a kernel before it, Rescaling, Normalization), with an LRP rule.
- `SumRelevance`: parameter-free sums (Add, Subtract, Average, average pooling): relevance
  in proportion to each input's contribution, r_i = x_i * d(sum)/dx_i * r / stab(sum).
- `PassRelevance`: element-wise activations pass the relevance unchanged.
Routing nodes (reshapes, concatenation, max-pooling's winner) use the gradient.
"""

import tensorflow as tf

from ..graph import KERNEL
from ..rules.lrp import LayerView, stabilize
from ..vjp import vjp
from .layers import ReverseLayer


class DiagonalMap:
    """An element-wise affine node y = s * x + t as a kernel map: kernel s, bias t.

    s and t are read off the node's own forward function (t = f(0), s = f(1) - f(0)), so
    every element-wise affine layer is handled alike, its variables shared.
    """

    def __init__(self, node, like):
        ones = tf.ones(tf.concat([[1], tf.shape(like)[1:]], 0), like.dtype)
        self.bias = node.forward([tf.zeros_like(ones)])[0]
        self.kernel = node.forward([ones])[0] - self.bias

    def apply(self, v, kernel):
        return v * kernel

    def broadcast(self, vector, rank):
        return vector


class KernelRelevance(ReverseLayer):
    """An LRP rule at one kernel or element-wise affine node.

    Args:
        node: the forward node.
        rule: the LRP rule (`rules.lrp.Rule`).
        nonnegative: whether the node's input is >= 0 by construction.
        preprocessing: the element-wise affine and routing nodes between the model input
            and this node (an input layer), whose map the rule may need (input bounds given
            in the model's units).
    """

    label = "lrp"

    def __init__(self, node, rule, nonnegative=False, preprocessing=(), **kwargs):
        self._preprocessing = list(preprocessing)
        context = [self._preprocessing[0].inputs[0]] if self._preprocessing else []
        super().__init__(node, context=context, **kwargs)
        self.rule = rule
        self.nonnegative = nonnegative

    def reverse(self, xs, ys, rs):
        return self.reverse_in_context(xs, ys, rs, [None])

    def reverse_in_context(self, xs, ys, rs, context):
        x, z = xs[0], ys[0]
        if self.node.role == KERNEL:
            kmap = self.node.kernel_map
        else:
            kmap = DiagonalMap(self.node, x)
        preprocess = None
        if self._preprocessing:
            def preprocess(v):
                for node in self._preprocessing:
                    v = node.forward([v])[0]
                return v
        layer = LayerView(kmap, x, z, self.nonnegative, preprocess, context[0])
        return [self.rule.relevance(layer, tf.cast(rs[0], z.dtype))]


class SumRelevance(ReverseLayer):
    label = "lrp_sum"

    def reverse(self, xs, ys, rs):
        s = rs[0] / stabilize(ys[0])
        grads = vjp(self.node.forward, xs, [s])
        return [None if g is None else x * g for x, g in zip(xs, grads)]


class PassRelevance(ReverseLayer):
    label = "pass"

    def reverse(self, xs, ys, rs):
        return [rs[0]]
