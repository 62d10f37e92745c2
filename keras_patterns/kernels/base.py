"""The kernel map: y = W^T x for one kernel layer, with the kernel as a parameter, and its
simplest one, the dense map."""

import copy

from keras import ops


def shape_of(x):
    """The shape of `x`: ints, scalar tensors where a size is known only at run time, None
    for unknown sizes of a symbolic tensor."""
    return tuple(ops.shape(x))


class _ChannelsLast:
    """A view of a channels_first layer that reads as channels_last."""

    data_format = "channels_last"

    def __init__(self, layer):
        self._layer = layer

    def __getattr__(self, name):
        return getattr(self._layer, name)


class KernelMap:
    """y = W^T x for one kernel layer.

    Attributes:
        attr: the name of the layer's kernel attribute ("kernel", "depthwise_kernel", ...).
        layer: the Keras layer.
        with_bias: whether the layer's bias is added after this map (the last map of a
            layer).
        batchnorm: the BatchNormalization folded into the map (`FoldedMap`), else None.
    """

    attr = "kernel"
    batchnorm = None

    def __init__(self, layer, with_bias=False):
        self.layer = layer
        self.with_bias = with_bias

    @property
    def unfolded(self):
        """The map without a folded BatchNormalization: the map itself."""
        return self

    @property
    def kernel(self):
        return getattr(self.layer, self.attr)

    @property
    def bias(self):
        """The bias added after this map, or None."""
        if self.with_bias and getattr(self.layer, "use_bias", False):
            return self.layer.bias
        return None

    def __call__(self, x, kernel=None):
        return self.apply(x, self.kernel if kernel is None else kernel)

    def apply(self, x, kernel):
        raise NotImplementedError

    @property
    def channel_axis(self):
        """Axis of the output that indexes the map's output neurons."""
        return 1 if getattr(self.layer, "data_format", None) == "channels_first" else -1

    @property
    def output_channels(self):
        return int(self.kernel.shape[-1])

    @property
    def input_channels(self):
        return int(self.kernel.shape[-2]) * getattr(self.layer, "groups", 1)

    # Per-neuron quantities against the kernel layout. An output neuron of the map owns the
    # kernel entries that share its index on the neuron axes (the last axis for Dense and
    # Conv, axis -2 for ConvTranspose, the last two for depthwise kernels).

    def neuron_to_kernel(self, vector):
        """Reshape a per-output-neuron vector to broadcast against the kernel."""
        return vector

    def kernel_to_neuron(self, tensor, reduce):
        """Reduce a kernel-shaped tensor over each neuron's own entries: one value per neuron."""
        return reduce(tensor, axis=tuple(range(len(tensor.shape) - 1)))

    def neuron_axes(self, rank):
        """The axes of an output of `rank` that index the neurons (flattened in this order
        in per-neuron vectors); every other axis is a position."""
        return (self.channel_axis % rank,)

    def input_axes(self, rank):
        """The axes of an input of `rank` that index the input channels."""
        return (self.channel_axis % rank,)

    def broadcast(self, vector, rank):
        """Reshape a per-channel vector (a bias; an input shift) to broadcast against an
        output or input of `rank` (both index channels on `channel_axis`)."""
        shape = [1] * rank
        shape[self.channel_axis] = -1
        return ops.reshape(vector, shape)

    def broadcast_input(self, vector, rank):
        """Reshape a per-input-channel vector (an input shift) to broadcast against an
        input of `rank`."""
        return self.broadcast(vector, rank)

    # Patches with their zero padding made explicit. A neuron's observation is its whole
    # receptive-field patch, zeros of the padding included; fitting shifts every entry of it,
    # so it pads the input itself and applies the map without implicit padding.

    def explicit_padding(self, input_shape):
        """[(before, after)] per spatial axis of the zeros the map pads an input of this shape
        with ([] when it pads nothing), or None if its patches hold zeros other than padding
        (a transposed convolution's stride gaps). Sizes are ints, or scalar tensors where
        `input_shape` holds them (sizes known only at run time)."""
        return []

    def apply_valid(self, x, kernel):
        """The map on an input that `explicit_padding` has already padded."""
        return self.apply(x, kernel)

    def pad(self, x, pads):
        """x padded with the zeros of `explicit_padding`."""
        return x

    def input_to_kernel(self, vector):
        """Reshape a per-input-channel vector to broadcast against the kernel (whose axis -2
        indexes the input channels of every map but the transposed convolution)."""
        return ops.reshape(vector, (1,) * (len(self.kernel.shape) - 2) + (-1, 1))

    def channels_last(self):
        """The same map on channels_last tensors (the kernel layout is the same)."""
        if self.channel_axis != 1:
            return self
        twin = copy.copy(self)
        twin.layer = _ChannelsLast(self.layer)
        return twin


class DenseMap(KernelMap):
    def apply(self, x, kernel):
        return ops.matmul(x, kernel)
