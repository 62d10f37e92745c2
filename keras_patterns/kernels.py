"""Kernel maps: the linear part y = W^T x of a kernel layer, with the kernel as a parameter.

Every kernel layer (Dense, Conv, ConvTranspose, DepthwiseConv and the two halves of a
SeparableConv) is split by canonization into a kernel map, a bias and an activation. A kernel
map can be applied with another kernel of the same shape: PatternNet back-propagates with the
pattern A and PatternAttribution with W*A in place of W, and LRP rules with the positive or
negative part of W. Back-propagating through a kernel map is its vector-Jacobian product.
"""

import copy

from keras import layers, ops


class _ChannelsLast:
    """A view of a channels_first layer that reads as channels_last."""

    data_format = "channels_last"

    def __init__(self, layer):
        self._layer = layer

    def __getattr__(self, name):
        return getattr(self._layer, name)


class KernelMap:
    """y = W^T x for one kernel layer; `attr` names the kernel attribute of the layer."""

    attr = "kernel"

    def __init__(self, layer, with_bias=False):
        self.layer = layer
        #: whether the layer's bias is added after this map (the last map of a layer)
        self.with_bias = with_bias

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

    def broadcast(self, vector, rank):
        """Reshape a per-channel vector (a bias; an input shift) to broadcast against an
        output or input of `rank` (both index channels on `channel_axis`)."""
        shape = [1] * rank
        shape[self.channel_axis] = -1
        return ops.reshape(vector, shape)

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


def _same_padding(size, kernel_size, stride, dilation):
    """TensorFlow's "same" padding of one spatial axis (the odd pixel goes after); `size` is
    an int, or a scalar tensor where the size is known only at run time."""
    span = (kernel_size - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = (out - 1) * stride + span - size
    total = max(total, 0) if isinstance(total, int) else ops.maximum(total, 0)
    return (total // 2, total - total // 2)


def shape_of(x):
    """The shape of `x`: ints, scalar tensors where a size is known only at run time, None
    for unknown sizes of a symbolic tensor."""
    return tuple(ops.shape(x))


class _SpatialMap(KernelMap):
    """Shared by the maps that slide a kernel over spatial axes with implicit zero padding.

    Every entry of the input these maps convolve is read by some window. A strided window
    that leaves the last rows unread (a 1x1 stride-2 kernel on an even-sized input) makes
    TensorFlow 2.21's CPU (oneDNN) kernel and input gradients corrupt the heap and kill the
    process; so the unread rows are cropped first, and a 1x1 kernel with stride s is applied
    with stride 1 to every s-th entry. The result is the same map.
    """

    def _spatial_axes(self, rank):
        first = 2 if self.channel_axis == 1 else 1
        return range(first, first + rank - 2)

    def _windows(self):
        layer = self.layer
        return zip(layer.kernel_size, layer.strides, layer.dilation_rate)

    def explicit_padding(self, input_shape):
        layer = self.layer
        axes = self._spatial_axes(len(input_shape))
        sizes = layer.kernel_size
        if layer.padding == "valid":
            return [(0, 0)] * len(axes)
        if layer.padding == "causal":
            return [((sizes[0] - 1) * layer.dilation_rate[0], 0)]
        return [
            _same_padding(input_shape[a], k, s, d)
            for a, (k, s, d) in zip(axes, self._windows())
        ]

    def _implicit_padding_reads_all(self):
        """Whether every input entry is read when the map pads implicitly ("same" padding
        then reads every entry unless a window is narrower than its stride)."""
        return self.layer.padding == "same" and all(
            (k - 1) * d + 1 >= s for k, s, d in self._windows())

    def _read_entries(self, x):
        """x reduced to the entries the map reads without padding, with the strides and
        dilations to apply to it."""
        shape = shape_of(x)
        index = [slice(None)] * len(shape)
        strides, dilations = [], []
        for axis, (k, s, d) in zip(self._spatial_axes(len(shape)), self._windows()):
            if k == 1:
                if s > 1:
                    index[axis] = slice(None, None, s)
                strides.append(1)
                dilations.append(1)
                continue
            strides.append(s)
            dilations.append(d)
            size = shape[axis]
            if size is None:
                continue  # symbolic: the output shape is the same
            span = (k - 1) * d + 1
            used = (size - span) // s * s + span
            if not (isinstance(used, int) and used == size):
                index[axis] = slice(0, used)
        if any(i != slice(None) for i in index):
            x = x[tuple(index)]
        return x, strides, dilations

    def convolve(self, x, kernel, strides, dilations):
        """The map's convolution of an unpadded input with these strides and dilations."""
        raise NotImplementedError

    def apply_valid(self, x, kernel):
        x, strides, dilations = self._read_entries(x)
        return self.convolve(x, kernel, strides, dilations)

    def apply(self, x, kernel):
        shape = shape_of(x)
        if self.layer.padding == "same" and (self._implicit_padding_reads_all() or any(
                shape[a] is None for a in self._spatial_axes(len(shape)))):
            return self.convolve_same(x, kernel)  # (a symbolic input: the same shape)
        return self.apply_valid(self.pad(x, self.explicit_padding(shape)), kernel)

    def pad(self, x, pads):
        if all(isinstance(p, int) and p == 0 for pair in pads for p in pair):
            return x
        full = [[0, 0]] * len(x.shape)
        for axis, pair in zip(self._spatial_axes(len(x.shape)), pads):
            full[axis] = list(pair)
        return ops.pad(x, full)

    def convolve_same(self, x, kernel):
        """The map with the layer's own implicit "same" padding."""
        raise NotImplementedError


class ConvMap(_SpatialMap):
    def input_to_kernel(self, vector):
        groups = getattr(self.layer, "groups", 1)
        if groups == 1:
            return super().input_to_kernel(vector)
        # Grouped: output channel j sees input channels group(j) * (C / groups) + i.
        per_group = ops.transpose(ops.reshape(vector, (groups, -1)))
        table = ops.repeat(per_group, self.output_channels // groups, axis=1)
        return ops.reshape(table, (1,) * (len(self.kernel.shape) - 2) + tuple(table.shape))

    def _as_depthwise(self, kernel):
        """A grouped convolution with one input channel per group (ConvNeXt's) is a
        depthwise convolution: its kernel (..., 1, C * m) read as (..., C, m). TensorFlow's
        CPU kernels have no grouped convolution (Keras compiles one with XLA per shape)."""
        groups = getattr(self.layer, "groups", 1)
        if groups == 1 or int(kernel.shape[-2]) != 1 or len(kernel.shape) > 4:
            return None
        return ops.reshape(kernel, tuple(kernel.shape[:-2]) + (groups, -1))

    def convolve(self, x, kernel, strides, dilations):
        depthwise = self._as_depthwise(kernel)
        if depthwise is not None:
            return ops.depthwise_conv(x, depthwise, strides=tuple(strides), padding="valid",
                                      dilation_rate=tuple(dilations),
                                      data_format=self.layer.data_format)
        return ops.conv(x, kernel, strides=tuple(strides), padding="valid",
                        dilation_rate=tuple(dilations), data_format=self.layer.data_format)

    def convolve_same(self, x, kernel):
        layer = self.layer
        depthwise = self._as_depthwise(kernel)
        if depthwise is not None:
            return ops.depthwise_conv(x, depthwise, strides=tuple(layer.strides), padding="same",
                                      dilation_rate=tuple(layer.dilation_rate),
                                      data_format=layer.data_format)
        return ops.conv(x, kernel, strides=list(layer.strides), padding="same",
                        dilation_rate=layer.dilation_rate, data_format=layer.data_format)


class ConvTransposeMap(KernelMap):
    @property
    def output_channels(self):
        return int(self.kernel.shape[-2])

    @property
    def input_channels(self):
        return int(self.kernel.shape[-1])

    def neuron_to_kernel(self, vector):
        return ops.reshape(vector, (-1, 1))

    def kernel_to_neuron(self, tensor, reduce):
        rank = len(tensor.shape)
        return reduce(tensor, axis=tuple(i for i in range(rank) if i != rank - 2))

    def explicit_padding(self, input_shape):
        return None

    def input_to_kernel(self, vector):
        return ops.reshape(vector, (1,) * (len(self.kernel.shape) - 1) + (-1,))

    def apply(self, x, kernel):
        layer = self.layer
        return ops.conv_transpose(
            x,
            kernel,
            strides=list(layer.strides),
            padding=layer.padding,
            output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )


class DepthwiseMap(_SpatialMap):
    """Depthwise convolution; `attr` is `kernel` (DepthwiseConv) or `depthwise_kernel`."""

    @property
    def output_channels(self):
        return int(self.kernel.shape[-2] * self.kernel.shape[-1])

    def neuron_to_kernel(self, vector):
        # Output channel c * depth_multiplier + m belongs to kernel[..., c, m].
        return ops.reshape(vector, tuple(self.kernel.shape[-2:]))

    def kernel_to_neuron(self, tensor, reduce):
        per = reduce(tensor, axis=tuple(range(len(tensor.shape) - 2)))
        return ops.reshape(per, (-1,))

    def convolve(self, x, kernel, strides, dilations):
        return ops.depthwise_conv(x, kernel, strides=tuple(strides), padding="valid",
                                  dilation_rate=tuple(dilations),
                                  data_format=self.layer.data_format)

    def convolve_same(self, x, kernel):
        layer = self.layer
        return ops.depthwise_conv(x, kernel, strides=layer.strides, padding="same",
                                  dilation_rate=layer.dilation_rate,
                                  data_format=layer.data_format)


class SeparableDepthwiseMap(DepthwiseMap):
    attr = "depthwise_kernel"


class PointwiseMap(KernelMap):
    """The 1x1 convolution that follows the depthwise step of a separable convolution."""

    attr = "pointwise_kernel"

    def apply(self, x, kernel):
        if self.channel_axis == 1:
            # TensorFlow's CPU kernels refuse channels_first convolutions (Keras transposes
            # inside its separable conv); a 1x1 convolution is a matmul over the channels.
            w = ops.reshape(kernel, tuple(kernel.shape[-2:]))
            return ops.moveaxis(ops.matmul(ops.moveaxis(x, 1, -1), w), -1, 1)
        return ops.conv(
            x, kernel, strides=1, padding="valid", dilation_rate=1,
            data_format=self.layer.data_format,
        )


class FoldedMap(KernelMap):
    """A kernel map followed by an inference-mode BatchNormalization, as one affine map.

    With s = gamma / sqrt(moving_variance + epsilon) per output neuron, the folded kernel is
    W * s and the folded bias (b - moving_mean) * s + beta. Both are computed from the
    layers' variables whenever they are read, so the fold follows later weight updates.
    """

    def __init__(self, base, batchnorm):
        super().__init__(base.layer, with_bias=True)
        self.base = base
        self.batchnorm = batchnorm
        self.attr = base.attr

    def _scale(self):
        bn = self.batchnorm
        s = ops.rsqrt(ops.convert_to_tensor(bn.moving_variance) + bn.epsilon)
        return s * bn.gamma if bn.scale else s

    @property
    def kernel(self):
        return self.base.kernel * self.base.neuron_to_kernel(self._scale())

    @property
    def bias(self):
        bn = self.batchnorm
        b = -ops.convert_to_tensor(bn.moving_mean)
        if self.base.bias is not None:
            b = b + self.base.bias
        b = b * self._scale()
        return b + bn.beta if bn.center else b

    def apply(self, x, kernel):
        return self.base.apply(x, kernel)

    @property
    def channel_axis(self):
        return self.base.channel_axis

    @property
    def output_channels(self):
        return self.base.output_channels

    @property
    def input_channels(self):
        return self.base.input_channels

    def neuron_to_kernel(self, vector):
        return self.base.neuron_to_kernel(vector)

    def kernel_to_neuron(self, tensor, reduce):
        return self.base.kernel_to_neuron(tensor, reduce)

    def explicit_padding(self, input_shape):
        return self.base.explicit_padding(input_shape)

    def apply_valid(self, x, kernel):
        return self.base.apply_valid(x, kernel)

    def pad(self, x, pads):
        return self.base.pad(x, pads)

    def input_to_kernel(self, vector):
        return self.base.input_to_kernel(vector)

    def channels_last(self):
        return self.base.channels_last()


# Kernel layer class -> the kernel maps it is split into, in forward order.
KERNEL_LAYERS = {
    layers.Dense: (DenseMap,),
    layers.Conv1D: (ConvMap,),
    layers.Conv2D: (ConvMap,),
    layers.Conv3D: (ConvMap,),
    layers.Conv1DTranspose: (ConvTransposeMap,),
    layers.Conv2DTranspose: (ConvTransposeMap,),
    layers.Conv3DTranspose: (ConvTransposeMap,),
    layers.DepthwiseConv1D: (DepthwiseMap,),
    layers.DepthwiseConv2D: (DepthwiseMap,),
    layers.SeparableConv1D: (SeparableDepthwiseMap, PointwiseMap),
    layers.SeparableConv2D: (SeparableDepthwiseMap, PointwiseMap),
}


def kernel_maps(layer):
    """The kernel maps of `layer`, or None if it is not a kernel layer.

    A subclass counts only if it keeps the base class's `call`: one that overrides it may
    compute something else, and is refused rather than explained wrongly.
    """
    for cls in type(layer).__mro__:
        if cls in KERNEL_LAYERS:
            if type(layer).call is not cls.call:
                return None
            maps = KERNEL_LAYERS[cls]
            return [m(layer, with_bias=k == len(maps) - 1) for k, m in enumerate(maps)]
    return None
