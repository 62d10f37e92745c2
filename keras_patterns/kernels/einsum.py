"""The kernel map of `keras.layers.EinsumDense`: y = einsum(equation, x, W).

Each axis of the equation is one of four kinds, by the operands it appears in:

- a token axis (x and y, not W): a position, as pixels are for a convolution; the batch
  axis is one. Every token is one observation of every neuron.
- a neuron axis (W and y): the output neurons are the index tuples over these axes, in the
  order of y's axes (for MultiHeadAttention's projections "abc,cde->abde" a neuron is a
  (head, dim) pair). A neuron axis that x has too ("abc,bcd->abd") gives each index its own
  weights and its own input entries, as a depthwise convolution does.
- a contracted axis (x and W, not y): the input channels a neuron sums over.
- a summed axis (x only): x is summed over it before the weights apply; the sums are then
  formed around no shift (`explicit_padding` is None).

Per-neuron vectors (`output_channels` entries) are flat over the neuron axes in y's order;
per-input-channel vectors (`input_channels`) flat over x's axes that W has, in x's order.
"""

import math
import string

from keras import ops

from ..errors import NotAnalyzableModelError
from .base import KernelMap


class EquationError(NotAnalyzableModelError):
    """An EinsumDense equation that is not a kernel map of the supported form; `why` says
    why, as the end of a sentence."""

    def __init__(self, layer, why):
        super().__init__(f"Layer '{layer.name}' (EinsumDense) cannot be explained as a kernel "
                         f"layer: {why}.")
        self.why = why


def _input_rank(layer):
    spec = getattr(layer, "input_spec", None)
    ndim = getattr(spec, "ndim", None)
    return ndim if ndim is not None else len(layer.input.shape)


def parse(layer):
    """(x, w, y): the equation's axis letters per operand, an ellipsis written out as
    letters the equation does not use, for an input of the layer's rank.

    Raises:
        EquationError: the equation is not a linear map of x this module handles.
    """
    equation = layer.equation.replace(" ", "")
    operands, y = equation.split("->")
    x, w = operands.split(",")
    if "..." in w:
        raise EquationError(layer, f"the kernel of '{layer.equation}' has an ellipsis")
    if "..." in x:
        count = _input_rank(layer) - (len(x) - 3)
        free = "".join(c for c in string.ascii_letters if c not in equation)[:count]
        x, y = x.replace("...", free), y.replace("...", free)
    for name, spec in (("input", x), ("kernel", w), ("output", y)):
        if len(set(spec)) != len(spec):
            raise EquationError(layer, f"the {name} of '{layer.equation}' repeats an axis "
                                       "(a diagonal)")
    if y[:1] != x[:1] or x[:1] in w:
        raise EquationError(layer, f"'{layer.equation}' does not keep the batch axis first")
    if set(w) - set(x) - set(y):
        raise EquationError(layer, f"the kernel of '{layer.equation}' has an axis that "
                                   "neither the input nor the output has")
    return x, w, y


class EinsumMap(KernelMap):
    """y = einsum(equation, x, W) for one EinsumDense layer (see the module's docstring).

    Args:
        layer: the EinsumDense layer (built).
        with_bias: whether the layer's bias is added after this map.

    Raises:
        EquationError: the layer's equation is not of the supported form.
    """

    def __init__(self, layer, with_bias=False):
        super().__init__(layer, with_bias)
        self.x_spec, self.w_spec, self.y_spec = parse(layer)
        sizes = dict(zip(self.w_spec, layer.kernel.shape))
        self._sizes = {c: int(s) for c, s in sizes.items()}
        # neuron letters in y's order; input-channel letters in x's order
        self._neurons = [c for c in self.y_spec if c in self.w_spec]
        self._inputs = [c for c in self.x_spec if c in self.w_spec]
        self._summed = [c for c in self.x_spec if c not in self.w_spec + self.y_spec]

    # -- the map --------------------------------------------------------------------------

    def apply(self, x, kernel):
        return ops.einsum(self.layer.equation, x, kernel)

    def explicit_padding(self, input_shape):
        return None if self._summed else []

    @property
    def bias(self):
        """The bias added after this map, or None: flat per neuron where the layer's bias
        axes are neuron axes, else (a bias that varies over tokens) shaped to broadcast
        against the output, batch axis included."""
        bias = getattr(self.layer, "bias", None)
        if not self.with_bias or bias is None:
            return None
        rank = len(self.y_spec)
        full = ops.reshape(bias, (1,) * (rank - len(bias.shape)) + tuple(bias.shape))
        if not set(self.layer.bias_axes) <= set(self._neurons):
            return full
        return ops.reshape(ops.broadcast_to(full, self._neuron_shape(rank)), (-1,))

    # -- the layout of neurons and input channels ----------------------------------------

    @property
    def channel_axis(self):
        """The output's neuron axis (negative), or None where there are several."""
        if len(self._neurons) != 1:
            return None
        return self.y_spec.index(self._neurons[0]) - len(self.y_spec)

    @property
    def output_channels(self):
        return math.prod(self._sizes[c] for c in self._neurons)

    @property
    def input_channels(self):
        return math.prod(self._sizes[c] for c in self._inputs)

    def neuron_axes(self, rank):
        return tuple(self.y_spec.index(c) for c in self._neurons)

    def input_axes(self, rank):
        return tuple(self.x_spec.index(c) for c in self._inputs)

    def _neuron_shape(self, rank):
        return tuple(self._sizes.get(c, 1) if c in self._neurons else 1 for c in self.y_spec)

    def broadcast(self, vector, rank):
        if len(vector.shape) == rank:
            return vector  # a bias that varies over tokens, already shaped (see `bias`)
        return ops.reshape(vector, self._neuron_shape(rank))

    def broadcast_input(self, vector, rank):
        shape = tuple(self._sizes[c] if c in self._inputs else 1 for c in self.x_spec)
        return ops.reshape(vector, shape)

    def _to_kernel(self, vector, letters):
        """A vector flat over `letters` (in their operand's order), laid out to broadcast
        against the kernel."""
        t = ops.reshape(vector, tuple(self._sizes[c] for c in letters))
        order = sorted(range(len(letters)), key=lambda i: self.w_spec.index(letters[i]))
        if order != list(range(len(letters))):
            t = ops.transpose(t, order)
        return ops.reshape(t, tuple(self._sizes[c] if c in letters else 1
                                    for c in self.w_spec))

    def neuron_to_kernel(self, vector):
        return self._to_kernel(vector, self._neurons)

    def input_to_kernel(self, vector):
        return self._to_kernel(vector, self._inputs)

    def kernel_to_neuron(self, tensor, reduce):
        others = tuple(i for i, c in enumerate(self.w_spec) if c not in self._neurons)
        if others:
            tensor = reduce(tensor, axis=others)
        kept = [c for c in self.w_spec if c in self._neurons]
        order = [kept.index(c) for c in self._neurons]
        if order != list(range(len(order))):
            tensor = ops.transpose(tensor, order)
        return ops.reshape(tensor, (-1,))
