"""Kernel maps that slide a kernel over spatial axes: convolutions, their transposes,
depthwise convolutions and the two halves of a separable convolution."""

from keras import ops

from .base import KernelMap, shape_of


def _same_padding(size, kernel_size, stride, dilation):
    """TensorFlow's "same" padding of one spatial axis (the odd pixel goes after); `size` is
    an int, or a scalar tensor where the size is known only at run time."""
    span = (kernel_size - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = (out - 1) * stride + span - size
    total = max(total, 0) if isinstance(total, int) else ops.maximum(total, 0)
    return (total // 2, total - total // 2)


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
