"""Reverse layers: one Keras layer per forward node, R(x_in..., y_out..., r_out...) -> r_in...

A reverse layer keeps its forward node (and through it the forward layer and its variables:
nothing is copied) and maps the signal arriving at the node's outputs to its inputs. A rule is
a subclass that implements `reverse(xs, ys, rs)`.
"""

import keras
import tensorflow as tf


def _floating(x):
    return x.dtype.is_floating


class _Holder:
    """Keeps an object out of Keras attribute tracking."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def vjp(forward, xs, rs, watch=None):
    """Vector-Jacobian product of `forward` at `xs` with cotangents `rs` (tape, no copies).

    Inputs that are not floating point (token ids) get no gradient (None). Forward operations
    whose value the gradient does not need (the convolution in a kernel map) are pruned from
    the compiled graph, so this costs what the backward operation costs.
    """
    watch = [x for x in xs if _floating(x)] if watch is None else watch
    with tf.GradientTape(watch_accessed_variables=False, persistent=False) as tape:
        for x in watch:
            tape.watch(x)
        ys = forward(xs)
    rs = [tf.cast(r, y.dtype) for r, y in zip(rs, ys)]
    grads = tape.gradient(
        ys, watch, output_gradients=rs, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    by_id = {id(x): g for x, g in zip(watch, grads)}
    return [by_id.get(id(x)) for x in xs]


class ReverseLayer(keras.layers.Layer):
    """The reverse of one forward node. Subclasses implement `reverse`."""

    #: Short rule name shown in summaries and errors.
    rule_name = "reverse"
    #: whether the layer can change the signal's magnitude a lot (a kernel map's
    #: back-projection): a scaled signal is renormalised after it (see `reverse`)
    rescales = False

    def __init__(self, node, name=None, context=(), **kwargs):
        safe = node.name.replace("/", ".")
        super().__init__(
            name=name or f"{self.rule_name}__{safe}", trainable=False, autocast=False, **kwargs
        )
        self._node_holder = _Holder(node)
        #: graph tensors besides the node's own whose values the rule needs (they follow
        #: the signals in the layer's inputs)
        self._context_holder = _Holder(list(context))
        self.built = True

    @property
    def context(self):
        return self._context_holder.value

    @property
    def node(self):
        return self._node_holder.value

    def _split(self, tensors):
        n_in, n_out = len(self.node.inputs), len(self.node.outputs)
        return (
            list(tensors[:n_in]),
            list(tensors[n_in : n_in + n_out]),
            list(tensors[n_in + n_out : n_in + 2 * n_out]),
        )

    def call(self, tensors):
        xs, ys, rs = self._split(tensors)
        context = list(tensors[len(xs) + 2 * len(ys):])
        out = self.reverse_in_context(xs, ys, rs, context) if context else self.reverse(
            xs, ys, rs)
        return [
            tf.zeros(tf.shape(x), self.compute_dtype) if r is None else r
            for x, r in zip(xs, out)
        ]

    def compute_output_spec(self, tensors):
        xs, _, _ = self._split(tensors)
        return [
            keras.KerasTensor(x.shape, dtype=x.dtype if _floating_spec(x) else "float32")
            for x in xs
        ]

    def reverse(self, xs, ys, rs):
        raise NotImplementedError

    def reverse_in_context(self, xs, ys, rs, context):
        """`reverse` with the values of `self.context`."""
        return self.reverse(xs, ys, rs)


def _floating_spec(x):
    return "float" in str(x.dtype)


class GradientRule(ReverseLayer):
    """The gradient: the vector-Jacobian product of the forward node."""

    rule_name = "gradient"

    def reverse(self, xs, ys, rs):
        return vjp(self.node.forward, xs, rs)
