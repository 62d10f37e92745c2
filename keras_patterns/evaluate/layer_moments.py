"""The moments of one kernel layer's observations on one split of the signal quality's
data (numpy, float64), from the sums of `patch_sums.LayerSums`.

The sums (per split and layer, around a shift c fixed from the first batch's mean patch):
N, sum x' and sum x' x'^T with x' = x - c (so Sigma_x, D x D, shared by all neurons of the
layer); with a two-component estimator also, per neuron, n_+ = sum m, sum m x' and
sum m x' y' (D-vectors), m = [y + b > 0] the neuron's regime. The sums of y, m y, y^2 and
m y^2 follow from y = w^T x.

The moments the residual algebra needs (`residuals`):

    cov[x, m y] = E[m x y] - E[x] E[m y],    cov(y, m y) = w^T cov[x, m y],
    var(m y) = E[m y^2] - E[m y]^2,    E[m y] = w^T E[m x],    E[m y^2] = w^T E[m x y],

written around the shift (y = y' + k with k = w^T c, m y = m y' + k m, pi = E[m]):
cov[x, m y] = cov[x', m y'] + k cov[x', m] and
var(m y) = var(m y') + 2 k E[m y'] (1 - pi) + k^2 pi (1 - pi).

Shapes: D entries of a neuron's input (the patch size), F neurons, one column per neuron.
"""

import numpy as np


def per_column(a, b):
    """a_j^T b_j for every column j.

    Args:
        a: a (D, F) array.
        b: a (D, F) array.

    Returns:
        (F,) array.
    """
    return np.einsum("df,df->f", a, b)


def _regime_statistics(w, k, shift, count, sx, sxy, kernel_shape):
    """One regime's entry of `LayerMoments.estimator_statistics`, from its count (F,) and
    its sums sx = sum m x', sxy = sum m x' y' (D, F) around the shift."""
    sy = per_column(w, sx)
    seen = count > 0
    inv = np.where(seen, 1.0 / np.maximum(count, 1), 0.0)
    return {"n": np.asarray(count, np.float64),
            "mean_y": np.where(seen, sy * inv + k, 0.0),
            "c_xy": (sxy - sx * (sy * inv)).reshape(kernel_shape),
            "mean_x": ((shift[:, None] + sx * inv) * seen).reshape(kernel_shape)}


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
        self.var_y = per_column(w, self.cov_xy)
        self.n_plus, self.sum_mx, self.sum_mxy = n_plus, sum_mx, sum_mxy
        if n_plus is None:
            return
        pi = n_plus / n
        e_mx, e_mxy = sum_mx / n, sum_mxy / n
        e_my, e_my2 = per_column(w, e_mx), per_column(w, e_mxy)  # E[m y'], E[m y'^2]
        k = self.k
        # m y = m y' + k m
        self.cov_x_my = (e_mxy - np.outer(mean, e_my)) + k * (e_mx - np.outer(mean, pi))
        self.cov_y_my = per_column(w, self.cov_x_my)
        self.var_my = (e_my2 - e_my**2) + 2 * k * e_my * (1 - pi) + k**2 * pi * (1 - pi)

    @property
    def dim(self):
        """D, the entries of one neuron's input."""
        return self.w.shape[0]

    def estimator_statistics(self, kernel_shape):
        """These sums in the form the estimators read (`patterns.estimators`).

        The statistics pass of `compute_patterns` gives the estimators the same quantities
        from its own sums (`patterns.statistics.KernelStatistics.moments`); this is the one
        place where the signal quality's sums are written in that form, so that split 1's
        patterns come from the package's estimator classes (`patch_sums` says why the two
        passes keep their own sums).

        Args:
            kernel_shape: the shape of the layer's kernel, (..., D_channels, F).

        Returns:
            {regime: {"n": (F,), "mean_y": (F,), "c_xy": n cov_r[x, y] and "mean_x":
            E_r[x], both kernel-shaped}} for the regime "all" and, with the regime sums,
            "plus" and "minus".
        """
        w, n = self.w, self.count
        f = w.shape[1]
        frame = (w, self.k, self.shift)
        sum_x = np.repeat(self.sum_x[:, None], f, axis=1)
        sum_xy = self.sum_xx @ w
        out = {"all": _regime_statistics(*frame, np.full(f, n), sum_x, sum_xy, kernel_shape)}
        if self.n_plus is not None:
            out["plus"] = _regime_statistics(*frame, self.n_plus, self.sum_mx, self.sum_mxy,
                                             kernel_shape)
            out["minus"] = _regime_statistics(*frame, n - self.n_plus, sum_x - self.sum_mx,
                                              sum_xy - self.sum_mxy, kernel_shape)
        return out
