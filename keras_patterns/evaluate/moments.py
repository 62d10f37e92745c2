"""The moments behind the signal quality rho(S): gathered in the streaming pass
(TensorFlow, float64) and the algebra of Eq. (1) on them (numpy, float64).

`LayerSums` holds one kernel layer's float64 sums, one slot per split, and adds a batch's
observations (`patches`) to them inside the compiled pass. `LayerMoments` turns the sums
of one split into the covariances Eq. (1) needs; `residual_terms` writes the residual
covariance of an estimator as a low-rank update of the input covariance;
`regression_vectors` solves the least-squares regression of y on the residual for all
neurons of a layer with one Cholesky factorization; `correlations` measures the fitted
regression on another split. The derivation is in the docstring of `signal_quality`.

Shapes: D entries of a neuron's input (the patch size), F neurons, one column per neuron.
"""

import math

import numpy as np
import tensorflow as tf

from .._warn import warn
from ..kernels import shape_of

#: ridge added to the input covariance, relative to its mean eigenvalue tr(Sigma_x) / D
RIDGE = 1e-10
#: relative residual |g - (Sigma_dd + eps I) v| / |g| above which a neuron is solved directly
SOLVE_TOLERANCE = 1e-6
#: float64 entries of the per-neuron Woodbury terms held at once (about 128 MiB)
_CHUNK_ENTRIES = 2**24


def _per_column(a, b):
    """a_j^T b_j for every column j."""
    return np.einsum("df,df->f", a, b)


def kernel_dim(kmap):
    """D: the entries of one neuron's input (the kernel entries per neuron)."""
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
    d = math.prod(int(s) for s in shape[:-1])
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


class LayerSums:
    """float64 accumulators (tf.Variables) of one kernel map, one slot per split: N,
    sum x', sum x' x'^T and, with `regimes`, per neuron n_+, sum m x', sum m x' y' (see
    `LayerMoments`). Memory: 3 (D^2 + 2 D F) float64, whatever the amount of data.

    Args:
        kmap: a Dense or Conv1D/Conv2D kernel map.
        regimes: whether to gather the per-neuron regime sums (two-component estimators).
    """

    def __init__(self, kmap, regimes):
        self.kmap = kmap
        self.kernel_shape = tuple(int(s) for s in kmap.kernel.shape)
        self.dim, self.neurons = d, f = kernel_dim(kmap), self.kernel_shape[-1]
        self.regimes = regimes

        def zeros(shape):
            return tf.Variable(tf.zeros(shape, tf.float64), trainable=False)

        self.count, self.sum_x, self.sum_xx = zeros((3,)), zeros((3, d)), zeros((3, d, d))
        self.shift = zeros((d,))
        if regimes:
            self.n_plus, self.sum_mx, self.sum_mxy = zeros((3, f)), zeros((3, d, f)), zeros(
                (3, d, f))

    def add(self, split, x, z, shift=None):
        """Add the sums of one call of the map to slot `split` (inside the compiled pass).

        Args:
            split: int32 scalar tensor, 0, 1 or 2.
            x: the map's input; z: its output with bias (the regime m = [z > 0]).
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

        def add(var, value):
            var.scatter_add(tf.IndexedSlices(value[None], index))

        add(self.count, n)
        add(self.sum_x, tf.reduce_sum(xs, 0))
        add(self.sum_xx, tf.matmul(xs, xs, transpose_a=True))
        if self.regimes:
            w = tf.reshape(tf.cast(tf.convert_to_tensor(kmap.kernel), tf.float64),
                           (self.dim, self.neurons))
            m = tf.cast(z > 0, tf.float64)
            both = tf.matmul(xs, tf.concat([m, m * tf.matmul(xs, w)], 1), transpose_a=True)
            add(self.n_plus, tf.reduce_sum(m, 0))
            add(self.sum_mx, both[:, : self.neurons])
            add(self.sum_mxy, both[:, self.neurons :])
        return shift

    def moments(self, split):
        """The `LayerMoments` of split 0, 1 or 2 (numpy, after the pass)."""
        w = np.asarray(self.kmap.kernel, np.float64).reshape(self.dim, self.neurons)
        extra = ()
        if self.regimes:
            extra = tuple(v.numpy()[split] for v in (self.n_plus, self.sum_mx, self.sum_mxy))
        return LayerMoments(self.count.numpy()[split], self.sum_x.numpy()[split],
                            self.sum_xx.numpy()[split], self.shift.numpy(), w, *extra)


class LayerMoments:
    """The moments of one kernel layer's observations on one split.

    Built from sums around a fixed shift c (per patch entry): x' = x - c, y' = w^T x' =
    y - k with k = w^T c. The covariances below do not depend on c; the shift only keeps
    the sums free of a large common part.

    Args:
        count: N, the number of observations (samples times output positions).
        sum_x: (D,) sum of x'.
        sum_xx: (D, D) sum of x' x'^T.
        shift: (D,) the shift c.
        w: (D, F) the kernel, one column per neuron.
        n_plus: (F,) observations in the positive regime m = [y + b > 0], or None when the
            regime sums were not gathered.
        sum_mx: (D, F) sum of m x' per neuron.
        sum_mxy: (D, F) sum of m x' y' per neuron.

    Attributes:
        sigma: (D, D) cov[x]; cov_xy: (D, F) cov[x, y] = sigma w; var_y: (F,).
        cov_x_my: (D, F) cov[x, m y]; cov_y_my: (F,) cov[y, m y]; var_my: (F,) var[m y]
            (with the regime sums only).
    """

    def __init__(self, count, sum_x, sum_xx, shift, w, n_plus=None, sum_mx=None,
                 sum_mxy=None):
        self.count = n = float(count)
        self.w = w = np.asarray(w, np.float64)
        self.shift = np.asarray(shift, np.float64)
        self.k = self.shift @ w
        self.sum_x, self.sum_xx = sum_x, sum_xx
        self.mean_c = mean = sum_x / n
        sigma = sum_xx / n - np.outer(mean, mean)
        self.sigma = (sigma + sigma.T) / 2
        self.cov_xy = self.sigma @ w
        self.var_y = _per_column(w, self.cov_xy)
        self.n_plus, self.sum_mx, self.sum_mxy = n_plus, sum_mx, sum_mxy
        if n_plus is None:
            return
        pi = n_plus / n
        e_mx, e_mxy = sum_mx / n, sum_mxy / n
        e_my, e_my2 = _per_column(w, e_mx), _per_column(w, e_mxy)  # E[m y'], E[m y'^2]
        k = self.k
        # m y = m y' + k m
        self.cov_x_my = (e_mxy - np.outer(mean, e_my)) + k * (e_mx - np.outer(mean, pi))
        self.cov_y_my = _per_column(w, self.cov_x_my)
        self.var_my = (e_my2 - e_my**2) + 2 * k * e_my * (1 - pi) + k**2 * pi * (1 - pi)

    @property
    def dim(self):
        return self.w.shape[0]

    def estimator_statistics(self, kernel_shape):
        """The statistics `keras_patterns.patterns.estimators` estimate patterns from:
        regime ("all", and "plus"/"minus" with the regime sums) -> {"n", "mean_y", "c_xy"
        (n cov_r[x, y], kernel-shaped), "mean_x" (kernel-shaped)}."""
        w, n = self.w, self.count
        f = w.shape[1]

        def regime(count, sx, sxy):
            sy = _per_column(w, sx)
            seen = count > 0
            inv = np.where(seen, 1.0 / np.maximum(count, 1), 0.0)
            return {"n": np.asarray(count, np.float64),
                    "mean_y": np.where(seen, sy * inv + self.k, 0.0),
                    "c_xy": (sxy - sx * (sy * inv)).reshape(kernel_shape),
                    "mean_x": ((self.shift[:, None] + sx * inv) * seen).reshape(kernel_shape)}

        sum_x = np.repeat(self.sum_x[:, None], f, axis=1)
        sum_xy = self.sum_xx @ w
        out = {"all": regime(np.full(f, n), sum_x, sum_xy)}
        if self.n_plus is not None:
            out["plus"] = regime(self.n_plus, self.sum_mx, self.sum_mxy)
            out["minus"] = regime(n - self.n_plus, sum_x - self.sum_mx, sum_xy - self.sum_mxy)
        return out


def residual_terms(moments, a, delta=None):
    """The residual d = x - A u of an estimator as a low-rank update of cov[x].

    Linear-type estimators (S(x) = a y): u = y, A = [a]. Two-component: u = (y, m y),
    A = [a_-, delta] with delta = a_+ - a_-. With K = cov[x, u] and S_uu = cov[u]:

        Sigma_dd = Sigma_x + U C U^T,  U = [A, K],  C = [[S_uu, -I], [-I, 0]],
        g = cov[d, y] = cov[x, y] - A cov[u, y]   (cov[u, y] is the first column of S_uu).

    Args:
        moments: `LayerMoments` of one split.
        a: (D, F) the pattern of linear-type estimators, a_- for two-component ones.
        delta: (D, F) a_+ - a_-, or None for a linear-type estimator.

    Returns:
        (U (F, D, 2r), C (F, 2r, 2r), C^-1 (F, 2r, 2r), g (F, D)), r = 1 or 2.
    """
    m = moments
    if delta is None:
        cols_a, cols_k = [a], [m.cov_xy]
        s = m.var_y[:, None, None]
    else:
        cols_a, cols_k = [a, delta], [m.cov_xy, m.cov_x_my]
        s = np.stack([np.stack([m.var_y, m.cov_y_my], -1),
                      np.stack([m.cov_y_my, m.var_my], -1)], -2)
    amat = np.stack([c.T for c in cols_a], -1)  # (F, D, r)
    kmat = np.stack([c.T for c in cols_k], -1)
    f, r = s.shape[0], s.shape[-1]
    eye, zero = np.broadcast_to(np.eye(r), (f, r, r)), np.zeros((f, r, r))
    c = np.block([[s, -eye], [-eye, zero]])
    c_inv = np.block([[zero, -eye], [-eye, -s]])
    g = kmat[..., 0] - np.einsum("fdr,fr->fd", amat, s[..., 0])
    return np.concatenate([amat, kmat], -1), c, c_inv, g


def _cholesky(sigma, ridge):
    """(L, eps): the Cholesky factor of sigma + eps I, eps = ridge tr(sigma) / D. If
    round-off leaves sigma + eps I indefinite, eps grows tenfold (with a warning)."""
    d = sigma.shape[0]
    scale = np.trace(sigma) / d
    scale = scale if scale > 0 else 1.0
    eps = ridge * scale
    for _ in range(8):
        chol = tf.linalg.cholesky(tf.constant(sigma + eps * np.eye(d)))
        if bool(tf.reduce_all(tf.math.is_finite(chol))):
            return chol, eps
        eps *= 10
        warn(f"signal_quality: the input covariance (D = {d}) is indefinite at round-off "
             f"level; the ridge grows to {eps / scale:.0e} of its mean eigenvalue.")
    raise np.linalg.LinAlgError("signal_quality: could not factorize the input covariance.")


def regression_vectors(sigma, terms, ridge=RIDGE, refinements=4):
    """v = (Sigma_dd + eps I)^-1 g for every neuron: the least-squares regression of y on
    the residual d, with Sigma_dd = sigma + U C U^T (`residual_terms`).

    One Cholesky factorization of sigma + eps I serves all neurons; each neuron's rank-2r
    update is solved with the Woodbury identity

        (S + U C U^T)^-1 = S^-1 - S^-1 U (C^-1 + U^T S^-1 U)^-1 U^T S^-1,

    followed by a few steps of iterative refinement on the exact product (Sigma_dd +
    eps I) v, which remove the round-off of the Woodbury formula where Sigma_dd is
    (nearly) singular: always along w (w^T d = 0), and along inputs that never vary.

    Args:
        sigma: (D, D) cov[x] of the split v is fitted on.
        terms: `residual_terms` on the same split.
        ridge: eps relative to the mean eigenvalue tr(sigma) / D.
        refinements: at most this many refinement steps.

    Returns:
        (F, D) the regression vectors.
    """
    u, c, c_inv, g = terms
    f, d, q = u.shape
    chol, eps = _cholesky(sigma, ridge)

    def solve(b):  # (sigma + eps I)^-1 b for b (D, m)
        return tf.linalg.cholesky_solve(chol, tf.constant(b)).numpy()

    out = np.empty((f, d))
    step = max(1, _CHUNK_ENTRIES // (d * q))
    for lo in range(0, f, step):
        hi = min(f, lo + step)
        uc, cc, gc = u[lo:hi], c[lo:hi], g[lo:hi]
        n = hi - lo
        z = solve(uc.transpose(1, 0, 2).reshape(d, n * q)).reshape(d, n, q).transpose(1, 0, 2)
        cap = c_inv[lo:hi] + np.einsum("fdq,fdp->fqp", uc, z)

        def apply(res, uc=uc, z=z, cap=cap):
            y = solve(res.T).T
            t = np.linalg.solve(cap, np.einsum("fdq,fd->fq", uc, y)[..., None])[..., 0]
            return y - np.einsum("fdq,fq->fd", z, t)

        def product(v, uc=uc, cc=cc):
            low = np.einsum("fqp,fp->fq", cc, np.einsum("fdq,fd->fq", uc, v))
            return (sigma @ v.T).T + eps * v + np.einsum("fdq,fq->fd", uc, low)

        v = apply(gc)
        res = gc - product(v)
        size = np.linalg.norm(res, axis=1)
        for _ in range(refinements):
            if not np.any(size > 1e-14 * np.linalg.norm(gc, axis=1)):
                break
            trial = v + apply(res)
            trial_res = gc - product(trial)
            trial_size = np.linalg.norm(trial_res, axis=1)
            better = trial_size < size
            if not np.any(better):
                break
            v = np.where(better[:, None], trial, v)
            res = np.where(better[:, None], trial_res, res)
            size = np.minimum(size, trial_size)
        # where the Woodbury round-off survived the refinement (Sigma_dd far more singular
        # than sigma + eps I, e.g. a random pattern nearly orthogonal to w, so that |a| is
        # huge), solve that neuron's system directly; a least-squares v always has
        # v^T g > 0, so a v that anti-correlates on its own split is wrong too
        failed = (size > SOLVE_TOLERANCE * np.linalg.norm(gc, axis=1)) | (
            np.einsum("fd,fd->f", v, gc) <= 0)
        for i in np.flatnonzero(failed & (np.linalg.norm(gc, axis=1) > 0)):
            v[i] = direct_solve(sigma, uc[i], cc[i], gc[i], eps)
        out[lo:hi] = v
    return out


def direct_solve(sigma, u, c, g, eps):
    """(Sigma_dd + eps I)^-1 g for one neuron from the explicit Sigma_dd = sigma + u c u^T
    (D x D, O(D^3)): its eigen-decomposition, with eigenvalues below zero by round-off
    counted as zero, so that the matrix solved is positive definite."""
    sigma_dd = sigma + u @ c @ u.T
    values, vectors = np.linalg.eigh(0.5 * (sigma_dd + sigma_dd.T))
    return vectors @ ((vectors.T @ g) / (np.maximum(values, 0.0) + eps))


def correlations(v, moments, a, delta=None):
    """corr(y, v^T d) on the split of `moments`, per neuron.

    With alpha = a^T v (a_-^T v) and beta = delta^T v (0 for a linear-type estimator),
    v^T d = v^T x - alpha y - beta m y = r^T x - beta m y with r = v - alpha w, so

        cov[v^T d, y] = r^T cov[x, y] - beta cov(y, m y),
        var[v^T d]    = r^T Sigma_x r - 2 beta r^T cov[x, m y] + beta^2 var(m y).

    This is v^T cov[d, y] and v^T Sigma_dd v (`residual_terms`) written without the large
    terms that cancel when v has a part along a direction where d does not vary (along
    w, say: w^T d = 0).

    Signed (a negative value means the fitted v anti-correlates on this split). NaN where
    var[y] or the variance of v^T d is not positive.

    Args:
        v: (F, D) regression vectors.
        moments: `LayerMoments` of the split measured on.
        a: (D, F) the pattern (a_- of a two-component estimator).
        delta: (D, F) a_+ - a_-, or None.

    Returns:
        (F,) the correlations.
    """
    m = moments
    r = v - m.w.T * np.einsum("df,fd->f", a, v)[:, None]
    cov = np.einsum("fd,df->f", r, m.cov_xy)
    var = np.einsum("fd,fd->f", r, (m.sigma @ r.T).T)
    if delta is not None:
        beta = np.einsum("df,fd->f", delta, v)
        cross = np.einsum("fd,df->f", r, m.cov_x_my)
        cov = cov - beta * m.cov_y_my
        var = var - 2 * beta * cross + beta**2 * m.var_my
    ok = (var > 0) & (m.var_y > 0)
    denom = np.sqrt(np.where(ok, var * m.var_y, 1.0))
    return np.where(ok, cov / denom, np.nan)
