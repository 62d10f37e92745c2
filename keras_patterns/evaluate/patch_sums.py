"""The sums behind the signal quality, gathered in its streaming pass (TensorFlow, float64):
`LayerSums` adds each batch's observations of one kernel layer, cut into patches
(`patches`), to one of three slots, one per split; `LayerSums.moments` hands a split's sums
to `layer_moments.LayerMoments`.

Why these sums are not those of `patterns.statistics`. Both passes sum, per neuron and
regime, the count, m x and m x y over every observation (sample and output position); the
statistics pass of `compute_patterns` forms them as kernel gradients and never
materialises a patch, this pass multiplies the patches. The signal quality keeps its own
sums for three reasons:

- It needs the input covariance Sigma_x = cov[x] (D x D, every entry of a neuron's patch
  against every other), the matrix the regression of y on the residual solves with
  (`regression`). A kernel gradient sums a patch times one number per output position
  and neuron: a D x F array, never D x D. Sigma_x needs the patches themselves
  (`tf.image.extract_patches`, N_obs x D per batch), and once they exist the regime sums
  are one product X^T [m, m y] on them; kernel gradients would add a forward convolution
  and two filter gradients for the same numbers (float64, the patches formed either way:
  1.1 to 1.4 times the CPU time of the product per batch of 64, measured on the digits
  CNN's layers and on 16 x 16 x 32 -> 64 channels).
- `compute_patterns` must not form patches: they hold the layer's input once per kernel
  position (9 times for a 3 x 3 kernel at stride 1) and their products cost D^2 per
  observation (D up to 4608 in VGG16), which the signal quality accepts only up to
  `max_dim`; and it needs no Sigma_x.
- The frames differ. The statistics pass takes y from the model's forward pass (float32
  for a float32 model) and forms each batch's sums in float32 around a shift per input
  channel and one per neuron and regime for y, into one slot. This pass forms y' = w^T x'
  from the patches and every sum in float64, around one shift per patch entry, into three
  slots: the residual algebra rests on y' = w^T x' holding to float64 round-off
  (`LayerMoments` writes cov[x, m y] and var(m y) around the shift with it, and
  w^T d = 0 is what makes Sigma_dd singular along w, `regression`). So the two agree to
  float32 round-off in y (1e-7 relative, measured), not bit for bit.

The one bridge between the two is `LayerMoments.estimator_statistics`, which writes split
1's sums in the form the estimators read, so that both fit their patterns with the same
estimator classes; tests/test_signal_quality_algebra.py checks that the two passes give
the estimators the same statistics.
"""

import math

import numpy as np
import tensorflow as tf

from ..kernels import shape_of
from .layer_moments import LayerMoments

# the three splits of the protocol: patterns, regression, measurement
SPLITS = 3


def kernel_dim(kmap):
    """D, the entries of one neuron's input (the kernel entries per neuron).

    Args:
        kmap: a kernel map.

    Returns:
        int.
    """
    return math.prod(int(s) for s in kmap.kernel.shape[:-1])


def patches(kmap, x):
    """The observations of a kernel map's input: what each neuron sees, one row per sample
    and output position.

    A convolution's input is padded with the layer's own zeros (`explicit_padding`), then
    `tf.image.extract_patches` copies every window (a Conv1D input is one image row), so the
    values are exact. Entries are ordered like `kernel.reshape(D, F)`: (kernel position,
    input channel) in row-major order.

    Args:
        kmap: a Dense or Conv1D/Conv2D kernel map (a folded one included).
        x: its input, a batch.

    Returns:
        (N_obs, D) float64 tensor.
    """
    shape = tuple(kmap.kernel.shape)
    d = kernel_dim(kmap)
    x = tf.cast(x, tf.float64)
    if len(shape) == 2:
        return tf.reshape(x, (-1, d))
    layer = kmap.layer
    x = kmap.pad(x, kmap.explicit_padding(shape_of(x)))
    if kmap.channel_axis == 1:
        x = tf.experimental.numpy.moveaxis(x, 1, -1)
    sizes, strides, rates = (list(layer.kernel_size), list(layer.strides),
                             list(layer.dilation_rate))
    if len(shape) == 3:  # Conv1D: one row of a 2-D image
        x = x[:, None]
        sizes, strides, rates = [1] + sizes, [1] + strides, [1] + rates
    windows = tf.image.extract_patches(x, [1, *sizes, 1], [1, *strides, 1], [1, *rates, 1],
                                       "VALID")
    return tf.reshape(windows, (-1, d))


def _zeros(shape):
    return tf.Variable(tf.zeros(shape, tf.float64), trainable=False)


def _add_to_slot(var, value, index):
    """var[index] += value, `index` a (1,) int32 tensor (inside the compiled pass)."""
    var.scatter_add(tf.IndexedSlices(value[None], index))


class LayerSums:
    """float64 accumulators (tf.Variables) of one kernel map, one slot per split.

    Gathers N, sum x' and sum x' x'^T and, with `regimes`, per neuron n_+, sum m x' and
    sum m x' y' (see `layer_moments`). Memory: 3 (D^2 + 2 D F) float64, whatever the amount
    of data.

    Args:
        kmap: a Dense or Conv1D/Conv2D kernel map.
        regimes: whether to gather the per-neuron regime sums (two-component estimators).
    """

    def __init__(self, kmap, regimes):
        self.kmap = kmap
        self.kernel_shape = tuple(int(s) for s in kmap.kernel.shape)
        self.dim, self.neurons = d, f = kernel_dim(kmap), self.kernel_shape[-1]
        self.regimes = regimes
        self.count = _zeros((SPLITS,))
        self.sum_x, self.sum_xx = _zeros((SPLITS, d)), _zeros((SPLITS, d, d))
        self.shift = _zeros((d,))
        if regimes:
            self.n_plus = _zeros((SPLITS, f))
            self.sum_mx, self.sum_mxy = _zeros((SPLITS, d, f)), _zeros((SPLITS, d, f))

    def add(self, split, x, z, shift=None):
        """Add the sums of one call of the map to slot `split` (inside the compiled pass).

        Args:
            split: int32 scalar tensor, 0, 1 or 2.
            x: the map's input.
            z: its output with bias (the regime m = [z > 0]).
            shift: the shift of an earlier call of the same (shared) layer in this batch;
                None fixes it from the first batch seen (the mean of its observations).

        Returns:
            The shift, (D,) float64.
        """
        kmap = self.kmap
        xs = patches(kmap, x)
        if len(self.kernel_shape) > 2 and kmap.channel_axis == 1:
            z = tf.experimental.numpy.moveaxis(z, 1, -1)
        z = tf.reshape(z, (-1, self.neurons))
        tf.debugging.assert_equal(tf.shape(xs)[0], tf.shape(z)[0],
                                  message="signal_quality: patches and outputs disagree")
        n = tf.cast(tf.shape(xs)[0], tf.float64)
        if shift is None:
            mean = tf.math.divide_no_nan(tf.reduce_sum(xs, 0), n)
            shift = tf.where(tf.reduce_sum(self.count) > 0, self.shift, mean)
            self.shift.assign(shift)
        xs = xs - shift
        index = tf.reshape(split, [1])
        _add_to_slot(self.count, n, index)
        _add_to_slot(self.sum_x, tf.reduce_sum(xs, 0), index)
        _add_to_slot(self.sum_xx, tf.matmul(xs, xs, transpose_a=True), index)
        if self.regimes:
            w = tf.reshape(tf.cast(tf.convert_to_tensor(kmap.kernel), tf.float64),
                           (self.dim, self.neurons))
            m = tf.cast(z > 0, tf.float64)
            both = tf.matmul(xs, tf.concat([m, m * tf.matmul(xs, w)], 1), transpose_a=True)
            _add_to_slot(self.n_plus, tf.reduce_sum(m, 0), index)
            _add_to_slot(self.sum_mx, both[:, : self.neurons], index)
            _add_to_slot(self.sum_mxy, both[:, self.neurons :], index)
        return shift

    def moments(self, split):
        """The moments of one split (numpy, after the pass).

        Args:
            split: 0, 1 or 2.

        Returns:
            `LayerMoments`.
        """
        w = np.asarray(self.kmap.kernel, np.float64).reshape(self.dim, self.neurons)
        extra = ()
        if self.regimes:
            extra = tuple(v.numpy()[split] for v in (self.n_plus, self.sum_mx, self.sum_mxy))
        return LayerMoments(self.count.numpy()[split], self.sum_x.numpy()[split],
                            self.sum_xx.numpy()[split], self.shift.numpy(), w, *extra)
