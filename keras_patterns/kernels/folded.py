"""A kernel map with an inference-mode BatchNormalization folded into it."""

from keras import ops


class FoldedMap:
    """A kernel map followed by an inference-mode BatchNormalization, as one affine map.

    With s = gamma / sqrt(moving_variance + epsilon) per output neuron, the folded kernel is
    W * s and the folded bias (b - moving_mean) * s + beta. Both are computed from the
    layers' variables whenever they are read, so the fold follows later weight updates.
    Everything else (applying the map, its padding, the neuron layout) is the base map's.

    Args:
        base: the kernel map (`KernelMap`).
        batchnorm: the BatchNormalization layer that follows it.
    """

    with_bias = True

    def __init__(self, base, batchnorm):
        self.base = base
        self.batchnorm = batchnorm

    @property
    def unfolded(self):
        """The kernel map without the BatchNormalization."""
        return self.base

    def __getattr__(self, name):
        if name in ("base", "batchnorm"):  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

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

    def __call__(self, x, kernel=None):
        return self.base.apply(x, self.kernel if kernel is None else kernel)

    def channels_last(self):
        """The folded map on channels_last tensors."""
        return FoldedMap(self.base.channels_last(), self.batchnorm)
