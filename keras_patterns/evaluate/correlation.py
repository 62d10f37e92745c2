"""Correlations between explanations, per sample (the sanity checks, `sanity`).

An explanation that is constant (zero variance, relative to its size) has no correlation:
it correlates 0 with any explanation that varies and 1 with another constant one.
"""

import numpy as np

# Pearson or Spearman, of the explanations or of their magnitudes
MEASURES = ("pearson", "spearman", "pearson_abs", "spearman_abs")


def ranks(a: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, tied entries given their mean rank.

    Args:
        a: (..., D) values.

    Returns:
        float64 array of a's shape, ranks 0..D-1 along the last axis.
    """
    a = np.asarray(a, np.float64)
    out = np.empty(a.shape, np.float64)
    for i, row in enumerate(a.reshape(-1, a.shape[-1])):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        first = np.cumsum(counts) - counts
        out.reshape(-1, a.shape[-1])[i] = (first + (counts - 1) / 2.0)[inverse]
    return out


def _prepare(e, measure):
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}.")
    e = np.asarray(e, np.float64)
    e = e.reshape(e.shape[0], -1) if e.ndim > 1 else e[None]
    if measure.endswith("_abs"):
        e = np.abs(e)
    if measure.startswith("spearman"):
        e = ranks(e)
    return e


def _standardize(e):
    """Rows centred and scaled to unit norm; constant rows (zero variance) flagged."""
    centred = e - e.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1)
    scale = np.linalg.norm(e, axis=1)
    constant = norm <= 1e-12 * np.maximum(scale, 1e-300)
    z = centred / np.where(constant, 1.0, norm)[:, None]
    z[constant] = 0.0
    return z, constant


def _fix_constant(r, ca, cb):
    """Correlations with a constant side: 1 if both are constant, else 0."""
    r = np.where(ca | cb, 0.0, r)
    return np.where(ca & cb, 1.0, r)


def correlation(a: np.ndarray, b: np.ndarray, measure: str = "pearson") -> np.ndarray:
    """Per-sample correlation of two batches of explanations.

    Args:
        a: (N, ...) explanations (flattened per sample).
        b: (N, ...) explanations of the same shape.
        measure: "pearson", "spearman", "pearson_abs" or "spearman_abs".

    Returns:
        (N,) correlations in [-1, 1] (see the module docstring for constant explanations).

    Raises:
        ValueError: explanations of different shapes, or an unknown measure.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"explanations of shapes {np.shape(a)} and {np.shape(b)} differ.")
    za, ca = _standardize(_prepare(a, measure))
    zb, cb = _standardize(_prepare(b, measure))
    return np.clip(_fix_constant(np.sum(za * zb, axis=1), ca, cb), -1.0, 1.0)


def correlation_matrix(e: np.ndarray, measure: str = "pearson") -> np.ndarray:
    """Correlations between the C explanations of one sample.

    Args:
        e: (C, ...) explanations (flattened per explanation).
        measure: "pearson", "spearman", "pearson_abs" or "spearman_abs".

    Returns:
        (C, C) correlations in [-1, 1], ones on the diagonal.
    """
    z, c = _standardize(_prepare(e, measure))
    r = _fix_constant(z @ z.T, c[:, None], c[None, :])
    np.fill_diagonal(r, 1.0)
    return np.clip(r, -1.0, 1.0)
