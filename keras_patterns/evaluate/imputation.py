"""Noisy linear imputation (Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022, section 4): the removed
pixels of an image are filled so that each one equals the weighted mean of its eight
neighbours,

    x_p = Σ_q w_pq x_q / Σ_q w_pq,   w = 1/6 for the 4 direct neighbours, 1/12 for the 4
                                     diagonal ones (neighbours outside the image left out),

where a neighbour q is a kept pixel (a known value) or a removed one (another unknown).
Multiplied out, the unknowns solve one sparse linear system per image,

    Σ_q w_pq x_p - Σ_{q removed} w_pq x_q = Σ_{q kept} w_pq x_q   for every removed p,

whose matrix is symmetric and positive definite as long as one pixel is kept; all channels
share it (one right-hand side per channel). Then Gaussian noise of standard deviation
`noise` is added to the imputed pixels, so that the imputed values do not form a pattern
the model could read the removal from (the paper's "noisy" imputation).

With scipy the system is solved by `scipy.sparse.linalg.spsolve`; without it by conjugate
gradients in numpy on the same sparse entries.
"""

from typing import Optional

import numpy as np

try:  # scipy is optional: the numpy solver below is the fallback
    from scipy import sparse
    from scipy.sparse import linalg as sparse_linalg
except ImportError:  # pragma: no cover - exercised by forcing the fallback in the tests
    sparse = None

# (row offset, column offset, weight) of the eight neighbours
NEIGHBOURS = tuple((dr, dc, 1.0 / 6.0 if dr == 0 or dc == 0 else 1.0 / 12.0)
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))


def imputation_system(image: np.ndarray, removed: np.ndarray) -> tuple:
    """The linear system of the removed pixels of one image.

    Args:
        image: (H, W, C) the image.
        removed: (H, W) bool, the pixels to impute.

    Returns:
        (rows, cols, values, rhs): the matrix A (m x m, m removed pixels numbered in
        row-major order) as coordinate triplets, and rhs (m, C).
    """
    h, w, c = image.shape
    r, col = np.nonzero(removed)
    m = len(r)
    unknown = np.full((h, w), -1, np.int64)
    unknown[r, col] = np.arange(m)
    diag = np.zeros(m)
    rhs = np.zeros((m, c))
    rows, cols, values = [], [], []
    for dr, dc, weight in NEIGHBOURS:
        nr, nc = r + dr, col + dc
        inside = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
        diag[inside] += weight
        p, qr, qc = np.nonzero(inside)[0], nr[inside], nc[inside]
        q = unknown[qr, qc]
        other = q >= 0
        rows.append(p[other])
        cols.append(q[other])
        values.append(np.full(int(other.sum()), -weight))
        np.add.at(rhs, p[~other], weight * image[qr[~other], qc[~other]])
    rows = np.concatenate(rows + [np.arange(m)])
    cols = np.concatenate(cols + [np.arange(m)])
    values = np.concatenate(values + [diag])
    return rows, cols, values, rhs


def _conjugate_gradient(rows, cols, values, rhs, m, tol=1e-11, max_iter=None):
    """Solve A X = rhs (A symmetric positive definite, as triplets) column by column, to a
    residual of `tol` times the right-hand side's norm."""

    def matvec(v):
        return np.bincount(rows, weights=values * v[cols], minlength=m)

    out = np.zeros_like(rhs)
    for j in range(rhs.shape[1]):
        b = rhs[:, j]
        x = np.zeros(m)
        res = b.copy()
        d = res.copy()
        rr = res @ res
        stop = tol * tol * max(b @ b, 1e-300)
        for _ in range(max_iter or 10 * m + 10):
            if rr <= stop:
                break
            ad = matvec(d)
            alpha = rr / (d @ ad)
            x += alpha * d
            res -= alpha * ad
            rr_new = res @ res
            d = res + (rr_new / rr) * d
            rr = rr_new
        out[:, j] = x
    return out


def linear_imputation(image: np.ndarray, removed: np.ndarray, noise: float = 0.0,
                      rng: Optional[np.random.Generator] = None,
                      use_scipy: bool = True) -> np.ndarray:
    """`image` with its `removed` pixels imputed (see the module docstring).

    Args:
        image: (H, W, C) the image.
        removed: (H, W) bool, the pixels to impute (all channels).
        noise: the standard deviation of the Gaussian noise added to the imputed values.
        rng: the generator of the noise.
        use_scipy: solve with scipy where it is installed (False: the numpy solver).

    Returns:
        (H, W, C) float64: the kept pixels as they were, the removed ones imputed.

    Raises:
        ValueError: every pixel removed (nothing to impute from) or mismatched shapes.
    """
    image = np.asarray(image, np.float64)
    removed = np.asarray(removed, bool)
    if image.ndim != 3 or removed.shape != image.shape[:2]:
        raise ValueError(f"linear_imputation needs an image (H, W, C) and a mask (H, W); got "
                         f"{image.shape} and {removed.shape}.")
    m = int(removed.sum())
    out = image.copy()
    if m == 0:
        return out
    if m == removed.size:
        raise ValueError("linear_imputation: every pixel is removed, so none is left to "
                         "impute from; remove fewer than all.")
    rows, cols, values, rhs = imputation_system(image, removed)
    if sparse is not None and use_scipy:
        a = sparse.csc_matrix((values, (rows, cols)), shape=(m, m))
        solved = np.asarray(sparse_linalg.spsolve(a, rhs)).reshape(m, -1)
    else:
        solved = _conjugate_gradient(rows, cols, values, rhs, m)
    if noise:
        rng = rng if rng is not None else np.random.default_rng()
        solved = solved + noise * rng.standard_normal(solved.shape)
    out[removed] = solved
    return out


__all__ = ["NEIGHBOURS", "imputation_system", "linear_imputation"]
