"""Reverse layers: one Keras layer per forward node, R(x_in..., y_out..., r_out...) -> r_in...

A reverse layer keeps its forward node (and through it the forward layer and its variables:
nothing is copied) and maps the signal arriving at the node's outputs to its inputs. A
subclass implements `reverse(xs, ys, rs)`; `GradientReverse` is the vector-Jacobian product.
"""

import keras
import tensorflow as tf

from .._keras import Untracked
from ..graph import is_floating
from ..vjp import vjp
from .tape import with_reverse


class ReverseLayer(keras.layers.Layer):
    """The reverse of one forward node. Subclasses implement `reverse`.

    Args:
        node: the forward `graph.Node`.
        name: the layer's name (default: `label`, two underscores, the node's name).
        context: graph tensors besides the node's own whose values `reverse_in_context`
            needs; they follow the signals in the layer's inputs.

    Attributes:
        label: what the layer does, in a word ("gradient", "guided", "lrp"): the prefix of
            its name in summaries and errors.
        rescales: whether the layer can change the signal's magnitude a lot (a kernel
            map's back-projection): a scaled signal is renormalised after it (see
            `reverse.model`).
    """

    label = "reverse"
    rescales = False
    # whether the tape form (`reverse.tape`) can carry this layer's map: not where it gives
    # a signal to an integer input (a token's relevance), which a tape cannot hold
    tape_form = True

    def __init__(self, node, name=None, context=(), **kwargs):
        safe = node.name.replace("/", ".")
        super().__init__(
            name=name or f"{self.label}__{safe}", trainable=False, autocast=False, **kwargs
        )
        self._node = Untracked(node)
        self._context = Untracked(list(context))
        self.built = True

    @property
    def node(self):
        return self._node.value

    @property
    def context(self):
        return self._context.value

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
        return [keras.KerasTensor(x.shape, dtype=x.dtype if is_floating(x.dtype) else "float32")
                for x in xs]

    @property
    def silent_inputs(self):
        """The positions of the node's inputs that never receive a signal from this layer
        (held constant): the reverse model does not carry zeros back from them."""
        return ()

    def reverse(self, xs, ys, rs):
        raise NotImplementedError

    def reverse_in_context(self, xs, ys, rs, context):
        """`reverse` with the values of `self.context`."""
        return self.reverse(xs, ys, rs)

    def surrogate(self, xs, context=()):
        """The node's output values as a function of its inputs `xs` whose vector-Jacobian
        product is this layer's map (`reverse.tape`): `gradient_form` where the class that
        defines the map defines one, else the forward values with the map as their custom
        gradient."""
        if _gradient_form_applies(type(self)):
            return self.gradient_form(xs)
        ys = self.node.forward(xs)
        if context:
            return with_reverse(xs, ys, lambda rs: self.reverse_in_context(xs, ys, rs,
                                                                           list(context)))
        return with_reverse(xs, ys, lambda rs: self.reverse(xs, ys, rs))

    def gradient_form(self, xs):
        """A function of the node's inputs, equal in value to the node's outputs, whose
        vector-Jacobian product is `reverse` (a subclass that has one defines it)."""
        raise NotImplementedError


def _defined_in(cls, name):
    return next(c for c in cls.__mro__ if name in vars(c))


def _gradient_form_applies(cls):
    """Whether `cls.gradient_form` belongs to its map: defined by the class that defines
    `reverse` (and `reverse_in_context`) or by a subclass of it."""
    form = _defined_in(cls, "gradient_form")
    return form is not ReverseLayer and all(
        issubclass(form, _defined_in(cls, name)) for name in ("reverse", "reverse_in_context"))


class GradientReverse(ReverseLayer):
    """The gradient: the vector-Jacobian product of the forward node."""

    label = "gradient"

    def reverse(self, xs, ys, rs):
        return vjp(self.node.forward, xs, rs)

    def gradient_form(self, xs):
        return self.node.forward(xs)
