"""The residual d = x - S(x) of a signal estimator, from a layer's moments (numpy, float64):
its covariance as a low-rank update of cov[x] (`residual_terms`, for the regression on
split 2) and the correlation of y with a regression v^T d (`correlations`, on split 3).

Linear-type estimators, S(x) = a y: d = x - a y, so with c = cov[x, y] = Sigma_x w

    cov[d, y] = c - a var[y],    Sigma_dd = Sigma_x - a c^T - c a^T + var[y] a a^T,

a rank-2 update of Sigma_x.

Two-component estimators: S(x) = a_- y + delta m y with delta = a_+ - a_-, that is
d = x - A u with A = [a_-, delta] (D x 2) and u = (y, m y). By bilinearity of cov,

    cov[d, y] = cov[x, y] - A cov[u, y],
    Sigma_dd  = Sigma_x - A K^T - K A^T + A S_uu A^T,
    K = cov[x, u] = [c, cov[x, m y]],
    S_uu = cov[u] = [[var y, cov(y, m y)], [cov(y, m y), var(m y)]],
    cov[u, y] = (var y, cov(y, m y)),

a rank-4 update (the moments cov[x, m y], cov(y, m y) and var(m y) are
`layer_moments.LayerMoments`'s). In both cases Sigma_dd = Sigma_x + U C U^T with U = [A, K]
and C = [[S_uu, -I], [-I, 0]], whose inverse is [[0, -I], [-I, -S_uu]].
"""

import numpy as np


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
