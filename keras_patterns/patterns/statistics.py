"""Sufficient statistics of one kernel map, gathered in one streaming pass.

For an output neuron j of a kernel map, x is its input as the neuron sees it (the whole
input of a Dense layer, the receptive-field patch of a convolution, zeros of the padding
included: every output position is one observation) and y = w_j^T x its output without
bias. A regime mask m selects the observations of one regime: `plus` where the
pre-activation y + b is positive, `minus` elsewhere, `all` everywhere.

Per regime and neuron the pass sums

    n = sum m,        s_y = sum m (y - d),

and, for the regimes whose pattern is estimated, the kernel-shaped

    s_x = sum m (x - c),        s_xy = sum m (x - c)(y - d),

around fixed shifts: c per input channel, the mean over the first few samples of the first
batch (`streaming.CALIBRATION_SAMPLES`), and d per neuron and
regime, the mean of the first batch with observations of the neuron in the regime (d = 0
for a regime whose pattern is not estimated: its s_y is only a plain sum). A covariance does
not depend on the shift, n cov[x, y] = s_xy - s_x s_y / n, and sums around values near the
means hold no large common
part that would cancel; so each batch's sums can be formed in float32, where the kernel
gradients below run on the fast kernels (on CPU about 2.5 times faster than in float64),
and added up in float64 over any number of batches. Their relative accuracy is then float32
round-off times the spread of the terms: about 1e-6 on typical activations, worse where one
neuron's observations differ in scale by orders of magnitude (inputs offset by 1e3 next to
the zeros of padding). `precision="float64"` forms them in float64 instead.

Kernel-shaped sums are kernel gradients: sum_positions patch(x) (x) u = d/dW <u, conv_W(x)>
for the upstream u = m or m (y - d); no patch is ever materialised. To shift every entry of a
patch, zeros of the padding included, the map pads its input explicitly and the shift is
subtracted from the padded input. A map whose patches hold zeros other than padding (the
stride gaps of a transposed convolution) is not shifted; its sums are formed in float64.
The signal quality sums patches instead (`evaluate.patch_sums` says why).
"""

import numpy as np
import tensorflow as tf

from ..kernels import shape_of

# regimes whose counts and output sums are always gathered (metadata, relu.eq8's E[y])
COUNTED = ("plus", "minus")


def _sum(t, axes):
    """Sum over all axes but `axes` (> 0; the kept ones flattened in their order): over each
    sample first (exact counts below 2^24 per sample), then over the batch in float64."""
    inner = [i for i in range(1, len(t.shape)) if i not in axes]
    if inner:
        t = tf.reduce_sum(t, inner)
    if len(axes) > 1:
        t = tf.reshape(t, [tf.shape(t)[0], -1])
    return tf.reduce_sum(tf.cast(t, tf.float64), 0)


def _positions(t, axes):
    """The number of entries of `t` per entry of `axes` (float64)."""
    return tf.cast(tf.size(t) // tf.reduce_prod(tf.gather(tf.shape(t), axes)), tf.float64)


class KernelStatistics:
    """float64 accumulators of one kernel map, as tf.Variables.

    kernel_regimes: the regimes whose kernel-shaped sums (s_x, s_xy) are gathered; counts and
    output sums are gathered for those and for `COUNTED`.
    precision: "float32" or "float64", the type each batch's sums are formed in.
    """

    def __init__(self, kmap, kernel_regimes, precision="float32"):
        self.kmap = kmap
        self.precision = precision
        self.kernel_regimes = tuple(kernel_regimes)
        self.regimes = tuple(dict.fromkeys(COUNTED + self.kernel_regimes))
        shape = tuple(kmap.kernel.shape)
        neurons = (kmap.output_channels,)

        def zeros(shape, name):
            return tf.Variable(tf.zeros(shape, tf.float64), trainable=False, name=name)

        self.shift_x = zeros((kmap.input_channels,), "shift_x")
        self.shift_y = {r: zeros(neurons, f"{r}_shift_y") for r in self.regimes}
        self.n = {r: zeros(neurons, f"{r}_n") for r in self.regimes}
        self.s_y = {r: zeros(neurons, f"{r}_s_y") for r in self.regimes}
        self.s_x = {r: zeros(shape, f"{r}_s_x") for r in self.kernel_regimes}
        self.s_xy = {r: zeros(shape, f"{r}_s_xy") for r in self.kernel_regimes}

    def variables(self):
        """Every accumulator by name (checkpoints)."""
        out = {"shift_x": self.shift_x}
        for field in ("shift_y", "n", "s_y", "s_x", "s_xy"):
            for r, v in getattr(self, field).items():
                out[f"{r}_{field}"] = v
        return out

    def _dtype(self, x, pads):
        exact = pads is None or self.precision == "float64" or x.dtype == tf.float64
        return tf.float64 if exact else tf.float32

    def calibrate(self, x):
        """Fix the input shift c, the mean of each input channel of `x` (a few samples,
        before the pass), as a value of the sums' type kept in float64."""
        kmap = self.kmap
        pads = kmap.explicit_padding(shape_of(x))
        if pads is None:
            return  # summed unshifted
        dtype = self._dtype(x, pads)
        axes = kmap.input_axes(len(x.shape))
        mean = tf.math.divide_no_nan(_sum(tf.cast(x, dtype), axes), _positions(x, axes))
        self.shift_x.assign(tf.cast(tf.cast(mean, dtype), tf.float64))

    def batch_sums(self, x, y, z, shifts=None):
        """Sums of one batch (or one replica's share of it): regime -> field -> tensor, and
        the output shifts they are taken around (compiled function, replica context).

        x: the map's input; y: its output without bias; z: with bias (the regimes' sign).
        A neuron without observations in a regime so far takes this batch's mean there as
        its shift (all replicas agree: the means are all-reduced); `shifts` passes the
        shifts of an earlier call of the same (shared) layer in this batch.
        """
        kmap = self.kmap
        pads = kmap.explicit_padding(shape_of(x))
        dtype = self._dtype(x, pads)
        y = tf.cast(y, dtype)
        rank = len(y.shape)
        axes = kmap.neuron_axes(rank)
        total = _positions(y, axes)
        plus = tf.cast(z > 0, dtype)
        fresh = shifts is None
        shifts = dict(shifts or {})
        sums, upstreams = {}, {}
        for r in self.kernel_regimes:
            m = {"plus": plus, "minus": 1 - plus, "all": None}[r]
            my = y if m is None else m * y
            n = tf.fill(tf.shape(self.n[r]), total) if m is None else _sum(m, axes)
            if fresh:
                sum_y, seen = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, [_sum(my, axes), n])
                keep = (self.n[r] > 0) | (seen == 0)
                mean = tf.math.divide_no_nan(sum_y, seen)
                shifts[r] = tf.cast(tf.where(keep, self.shift_y[r], mean), dtype)
            d = kmap.broadcast(shifts[r], rank)
            u = my - d if m is None else my - m * d
            upstreams[r] = (tf.ones_like(y) if m is None else m, u)
            sums[r] = {"n": n, "s_y": _sum(u, axes)}
        others = [r for r in self.regimes if r not in sums]
        if others:
            # counted only (unshifted, d = 0): n and s_y = sum_r y, from the plus regime
            # and the totals
            n_plus = sums["plus"]["n"] if "plus" in sums else _sum(plus, axes)
            y_plus = (sums["plus"]["s_y"] + n_plus * tf.cast(shifts["plus"], tf.float64)
                      if "plus" in sums else _sum(plus * y, axes))
            for r in others:
                if r == "plus":
                    n, sum_y = n_plus, y_plus
                else:
                    n, sum_y = total - n_plus, _sum(y, axes) - y_plus
                sums[r] = {"n": n, "s_y": sum_y}
        if self.kernel_regimes:
            apply = kmap.apply
            x = tf.cast(x, dtype)
            if pads is not None:
                x = kmap.pad(x, pads) - kmap.broadcast_input(
                    tf.cast(self.shift_x, dtype), len(x.shape))
                apply = kmap.apply_valid
            if kmap.channel_axis == 1 and rank > 2:
                # TensorFlow's CPU kernel gradients in float64 take channels_last only
                x = tf.experimental.numpy.moveaxis(x, 1, -1)
                upstreams = {r: tuple(tf.experimental.numpy.moveaxis(t, 1, -1) for t in pair)
                             for r, pair in upstreams.items()}
                twin = kmap.channels_last()
                apply = twin.apply_valid if pads is not None else twin.apply
            kernel = tf.cast(tf.convert_to_tensor(kmap.kernel), dtype)
            with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
                tape.watch(kernel)
                out = apply(x, kernel)
            for r, (m, u) in upstreams.items():
                sums[r]["s_x"] = tape.gradient(out, kernel, output_gradients=m)
                sums[r]["s_xy"] = tape.gradient(out, kernel, output_gradients=u)
            del tape
        return sums, shifts

    def update(self, sums_per_call, shifts):
        """Add the sums of every call of the map in one batch (compiled function)."""
        for r in self.kernel_regimes:
            self.shift_y[r].assign(tf.cast(shifts[r], tf.float64))
        for sums in sums_per_call:
            for r, fields in sums.items():
                self.n[r].assign_add(fields["n"])
                self.s_y[r].assign_add(fields["s_y"])
                if r in self.kernel_regimes:
                    self.s_x[r].assign_add(tf.cast(fields["s_x"], tf.float64))
                    self.s_xy[r].assign_add(tf.cast(fields["s_xy"], tf.float64))

    def moments(self, mean_x=False):
        """dict regime -> {"n", "mean_y"} plus, for the kernel regimes, the co-moment
        "c_xy" = n cov[x, y] (kernel-shaped) and, if asked, "mean_x"; float64 numpy arrays,
        read-only views of the computed tensors (no copy of kernel-sized arrays)."""
        kmap = self.kmap
        out = {}
        for r in self.regimes:
            n = tf.convert_to_tensor(self.n[r])
            inv = tf.math.divide_no_nan(tf.ones_like(n), n)
            mean_y = tf.where(n > 0, self.shift_y[r] + self.s_y[r] * inv, 0.0)
            out[r] = {"n": np.asarray(n), "mean_y": np.asarray(mean_y)}
            if r in self.kernel_regimes:
                s_x = tf.convert_to_tensor(self.s_x[r])
                c_xy = self.s_xy[r] - s_x * kmap.neuron_to_kernel(self.s_y[r] * inv)
                out[r]["c_xy"] = np.asarray(c_xy)
                if mean_x:
                    shift = tf.cast(kmap.input_to_kernel(self.shift_x), tf.float64)
                    seen = kmap.neuron_to_kernel(tf.cast(n > 0, tf.float64))
                    out[r]["mean_x"] = np.asarray(
                        (shift + s_x * kmap.neuron_to_kernel(inv)) * seen)
        return out
