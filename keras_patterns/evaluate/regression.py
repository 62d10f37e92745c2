"""The regression vector of the signal quality: v = (Sigma_dd + eps I)^-1 cov[d, y], the
least-squares regression of a neuron's output y on the residual d = x - S(x), for every
neuron of a layer at once (numpy and TensorFlow, float64).

Sigma_dd = Sigma_x + U C U^T is a rank-2r update of the layer's input covariance Sigma_x
(`residuals.residual_terms`, r = 1 or 2). `regression_vectors` factorizes Sigma_x + eps I
once (Cholesky) and solves each neuron's update with the Woodbury identity, then refines
the answer on the exact product (Sigma_dd + eps I) v.

The ridge. Sigma_dd is always singular along w (w^T d = y - y = 0) and Sigma_x along inputs
that never vary (the zeros of a dead ReLU channel, constant padding), hence
eps = `RIDGE` tr(Sigma_x) / D: it tends to the minimum-norm least-squares v, moves well-posed
answers by about eps over the smallest eigenvalue of Sigma_dd (tested: below 1e-10), and
its effect along w never matters (w^T d = 0 on every split). Near-degenerate neurons move
more (a regime with one observation in split 2 gives the residual a direction of tiny
variance: 6e-5 in rho on a digits CNN, proportional to the ridge).

The fallback. A neuron whose refined v still leaves a relative residual above
`SOLVE_TOLERANCE`, or anti-correlates with y on the split it was fitted on (impossible for a
least-squares v), is solved directly from the explicit Sigma_dd (`direct_solve`, O(D^3) for
that neuron only). This happens where Sigma_dd is far more singular than Sigma_x + eps I,
e.g. a random pattern nearly orthogonal to w (a = u / (w^T u) huge) next to inputs that
never vary.
"""

import numpy as np
import tensorflow as tf

from .._warn import warn

# the ridge added to the input covariance, relative to its mean eigenvalue tr(Sigma_x) / D
RIDGE = 1e-10
# the relative residual |g - (Sigma_dd + eps I) v| / |g| above which a neuron is solved
# directly
SOLVE_TOLERANCE = 1e-6
# float64 entries of the per-neuron Woodbury terms held at once (about 128 MiB)
_CHUNK_ENTRIES = 2**24


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


def _cholesky_solve(chol, b):
    """(sigma + eps I)^-1 b for b (D, m), from the factor of `_cholesky`."""
    return tf.linalg.cholesky_solve(chol, tf.constant(b)).numpy()


class _Woodbury:
    """The systems (Sigma_dd + eps I) v = g of a chunk of n neurons, Sigma_dd = sigma +
    U C U^T per neuron: `solve` applies the inverse by the Woodbury identity, `product` the
    matrix itself. U (n, D, q), C and C^-1 (n, q, q)."""

    def __init__(self, sigma, chol, eps, u, c, c_inv):
        self.sigma, self.chol, self.eps, self.u, self.c = sigma, chol, eps, u, c
        n, d, q = u.shape
        flat = u.transpose(1, 0, 2).reshape(d, n * q)
        self.z = _cholesky_solve(chol, flat).reshape(d, n, q).transpose(1, 0, 2)
        self.capacitance = c_inv + np.einsum("fdq,fdp->fqp", u, self.z)

    def solve(self, b):
        """(Sigma_dd + eps I)^-1 b per neuron, b (n, D), by the Woodbury identity."""
        y = _cholesky_solve(self.chol, b.T).T
        t = np.linalg.solve(self.capacitance,
                            np.einsum("fdq,fd->fq", self.u, y)[..., None])[..., 0]
        return y - np.einsum("fdq,fq->fd", self.z, t)

    def product(self, v):
        """(Sigma_dd + eps I) v per neuron, v (n, D), from the explicit terms."""
        low = np.einsum("fqp,fp->fq", self.c, np.einsum("fdq,fd->fq", self.u, v))
        return (self.sigma @ v.T).T + self.eps * v + np.einsum("fdq,fq->fd", self.u, low)


def _refine(system, g, refinements):
    """v = `system.solve(g)` improved by at most `refinements` steps of iterative refinement,
    each neuron keeping its best step. Returns (v, |g - product(v)|) per neuron."""
    v = system.solve(g)
    res = g - system.product(v)
    size = np.linalg.norm(res, axis=1)
    for _ in range(refinements):
        if not np.any(size > 1e-14 * np.linalg.norm(g, axis=1)):
            break
        trial = v + system.solve(res)
        trial_res = g - system.product(trial)
        trial_size = np.linalg.norm(trial_res, axis=1)
        better = trial_size < size
        if not np.any(better):
            break
        v = np.where(better[:, None], trial, v)
        res = np.where(better[:, None], trial_res, res)
        size = np.minimum(size, trial_size)
    return v, size


def regression_vectors(sigma, terms, ridge=RIDGE, refinements=4):
    """v = (Sigma_dd + eps I)^-1 g for every neuron: the least-squares regression of y on
    the residual d, with Sigma_dd = sigma + U C U^T and g = cov[d, y].

    One Cholesky factorization of sigma + eps I serves all neurons; each neuron's rank-2r
    update is solved with the Woodbury identity

        (S + U C U^T)^-1 = S^-1 - S^-1 U (C^-1 + U^T S^-1 U)^-1 U^T S^-1,

    followed by a few steps of iterative refinement on the exact product (Sigma_dd +
    eps I) v, which remove the round-off of the Woodbury formula where Sigma_dd is
    (nearly) singular: always along w (w^T d = 0), and along inputs that never vary. The
    neurons where that is not enough are solved directly (`direct_solve`).

    Args:
        sigma: (D, D) cov[x] of the split v is fitted on.
        terms: (U, C, C^-1, g), `residuals.residual_terms` on the same split.
        ridge: eps relative to the mean eigenvalue tr(sigma) / D.
        refinements: at most this many refinement steps.

    Returns:
        (F, D) the regression vectors.

    Raises:
        numpy.linalg.LinAlgError: sigma + eps I could not be factorized even with a ridge
            grown 1e7 times.
    """
    u, c, c_inv, g = terms
    f, d, q = u.shape
    chol, eps = _cholesky(sigma, ridge)
    out = np.empty((f, d))
    step = max(1, _CHUNK_ENTRIES // (d * q))
    for lo in range(0, f, step):
        part = slice(lo, min(f, lo + step))
        uc, cc, gc = u[part], c[part], g[part]
        v, size = _refine(_Woodbury(sigma, chol, eps, uc, cc, c_inv[part]), gc, refinements)
        # where the Woodbury round-off survived the refinement (Sigma_dd far more singular
        # than sigma + eps I, e.g. a random pattern nearly orthogonal to w, so that |a| is
        # huge), solve that neuron's system directly; a least-squares v always has
        # v^T g > 0, so a v that anti-correlates on its own split is wrong too
        g_size = np.linalg.norm(gc, axis=1)
        failed = (size > SOLVE_TOLERANCE * g_size) | (np.einsum("fd,fd->f", v, gc) <= 0)
        for i in np.flatnonzero(failed & (g_size > 0)):
            v[i] = direct_solve(sigma, uc[i], cc[i], gc[i], eps)
        out[part] = v
    return out


def direct_solve(sigma, u, c, g, eps):
    """(Sigma_dd + eps I)^-1 g for one neuron from the explicit Sigma_dd = sigma + u c u^T.

    Forms the D x D matrix and its eigen-decomposition (O(D^3)); eigenvalues below zero by
    round-off count as zero, so that the matrix solved is positive definite.

    Args:
        sigma: (D, D) cov[x].
        u: (D, q), the neuron's low-rank update's basis.
        c: (q, q), the neuron's low-rank update's core.
        g: (D,) the right-hand side cov[d, y].
        eps: the ridge (absolute).

    Returns:
        (D,) the neuron's regression vector.
    """
    sigma_dd = sigma + u @ c @ u.T
    values, vectors = np.linalg.eigh(0.5 * (sigma_dd + sigma_dd.T))
    return vectors @ ((vectors.T @ g) / (np.maximum(values, 0.0) + eps))
