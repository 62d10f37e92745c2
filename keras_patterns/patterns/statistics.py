"""Sufficient statistics of one kernel map, gathered in one streaming pass.

For an output neuron j of a kernel map, x is its input as the neuron sees it (the whole
input of a Dense layer, the receptive-field patch of a convolution: every output position
is one observation) and y = w_j^T x its output without bias. A regime mask m selects the
observations of one regime (m = [y + b > 0] for the positive regime).

Per regime and neuron the statistics are the count n, the means of x and y, the co-moment
C_xy = sum m (x - mean_x)(y - mean_y) and M2_y = sum m (y - mean_y)^2. Sums over one batch
are formed in float64; for a convolution the patch sums are kernel gradients,
sum_positions patch (x) u = d/dW <u, conv_W(x)>, so no patch is ever materialised. Batches are
merged in float64 with the pairwise update of centred moments (Chan et al.), so the result
does not degrade with the number of samples.
"""

import tensorflow as tf

REGIMES = ("plus", "minus")
FIELDS = ("n", "mean_x", "mean_y", "c_xy", "m2_y")


def batch_sums(kmap, kernel, x, y, masks):
    """Raw sums of one batch for each regime mask: dict regime -> (n, sx, sy, sxy, syy).

    `x` is the map's input, `y` its output without bias (same layout as the layer's
    output), `masks` maps regime -> mask shaped like `y`. Kernel-shaped sums (sx, sxy) are
    kernel gradients; per-neuron sums (n, sy, syy) are reductions over all but the channel
    axis.
    """
    axis = kmap.channel_axis % len(y.shape)
    other = tuple(i for i in range(len(y.shape)) if i != axis)
    # Sums are formed in float64: the result then depends on the batching only through
    # float64 round-off.
    kernel = tf.cast(tf.convert_to_tensor(kernel), tf.float64)
    x = tf.cast(x, tf.float64)
    y = tf.cast(y, tf.float64)
    masks = {regime: tf.cast(m, tf.float64) for regime, m in masks.items()}
    upstreams = []
    for regime, m in masks.items():
        upstreams += [m, m * y]
    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        tape.watch(kernel)
        out = kmap.apply(x, kernel)
    grads = [tape.gradient(out, kernel, output_gradients=u) for u in upstreams]
    del tape
    sums = {}
    for k, (regime, m) in enumerate(masks.items()):
        my = m * y
        sums[regime] = (
            tf.reduce_sum(m, axis=other),
            grads[2 * k],
            tf.reduce_sum(my, axis=other),
            grads[2 * k + 1],
            tf.reduce_sum(my * y, axis=other),
        )
    return sums


def _safe_div(a, b):
    return tf.math.divide_no_nan(a, b)


def batch_moments(kmap, sums):
    """Centred float64 moments of one batch from its raw sums."""
    n, sx, sy, sxy, syy = (tf.cast(s, tf.float64) for s in sums)
    n_k = kmap.neuron_to_kernel(n)
    mean_x = _safe_div(sx, n_k)
    mean_y = _safe_div(sy, n)
    c_xy = sxy - mean_x * kmap.neuron_to_kernel(sy)
    m2_y = syy - mean_y * sy
    return n, mean_x, mean_y, c_xy, m2_y


def merge(kmap, a, b):
    """Pairwise merge of two sets of centred moments (Chan et al.), elementwise per neuron."""
    n_a, mx_a, my_a, c_a, m2_a = a
    n_b, mx_b, my_b, c_b, m2_b = b
    n = n_a + n_b
    f = _safe_div(n_b, n)  # weight of b in the merged mean
    g = n_a * f  # n_a n_b / n
    f_k, g_k = kmap.neuron_to_kernel(f), kmap.neuron_to_kernel(g)
    d_x = mx_b - mx_a
    d_y = my_b - my_a
    return (
        n,
        mx_a + d_x * f_k,
        my_a + d_y * f,
        c_a + c_b + d_x * kmap.neuron_to_kernel(d_y) * g_k,
        m2_a + m2_b + d_y * d_y * g,
    )


class KernelStatistics:
    """float64 accumulators of one kernel map (one set per regime), as tf.Variables."""

    def __init__(self, kmap, regimes=REGIMES):
        self.kmap = kmap
        self.regimes = tuple(regimes)
        shape = tuple(kmap.kernel.shape)
        c = kmap.output_channels
        self.variables = {}
        for regime in self.regimes:
            self.variables[regime] = tuple(
                tf.Variable(tf.zeros(s, tf.float64), trainable=False, name=f"{regime}_{f}")
                for f, s in zip(FIELDS, ((c,), shape, (c,), shape, (c,)))
            )

    def update(self, sums_by_regime):
        """Merge one batch's raw sums (runs inside a compiled function)."""
        for regime, sums in sums_by_regime.items():
            current = tuple(v.read_value() for v in self.variables[regime])
            merged = merge(self.kmap, current, batch_moments(self.kmap, sums))
            for v, value in zip(self.variables[regime], merged):
                v.assign(value)

    def numpy(self):
        """dict regime -> dict field -> float64 array."""
        return {
            regime: {f: v.numpy() for f, v in zip(FIELDS, variables)}
            for regime, variables in self.variables.items()
        }
