"""Perturbing images patch by patch: the patch grid, patch sums and ranks, and what a
destroyed patch is replaced with (image degradation, `degradation`)."""

import math
from typing import Optional

import numpy as np

# what a destroyed patch becomes (see `replacement_images`)
REPLACE = ("patch_mean", "image_mean", "zero", "blur", "uniform")
# the orders patches are destroyed in (see `patch_order`)
ORDERS = ("most_relevant_first", "least_relevant_first", "random")

def patch_grid(height: int, width: int, patch_size: int) -> tuple:
    """The patch grid (rows, columns) of an image: ``ceil(H / p), ceil(W / p)``."""
    return math.ceil(height / patch_size), math.ceil(width / patch_size)


def patch_ids(height: int, width: int, patch_size: int) -> np.ndarray:
    """(H, W) the id of the patch each pixel belongs to (``row * columns + column``)."""
    _, gw = patch_grid(height, width, patch_size)
    rows = np.arange(height) // patch_size
    cols = np.arange(width) // patch_size
    return rows[:, None] * gw + cols[None, :]


def patch_sums(values: np.ndarray, patch_size: int) -> np.ndarray:
    """Sums of `values` (N, H, W, C) over each patch's pixels and channels: (N, n_patches)."""
    n, h, w = values.shape[:3]
    ids = patch_ids(h, w, patch_size).ravel()
    gh, gw = patch_grid(h, w, patch_size)
    per_pixel = values.reshape(n, h * w, -1).sum(axis=-1, dtype=np.float64)
    out = np.zeros((n, gh * gw), np.float64)
    np.add.at(out, (slice(None), ids), per_pixel)
    return out


def replacement_images(x: np.ndarray, replace: str, patch_size: int,
                       rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """What each pixel becomes once its patch is replaced, for every sample: (N, H, W, C).

    - "patch_mean": the mean of the pixel's own (unperturbed) patch, per channel.
    - "image_mean": the image's mean, per channel.
    - "zero": 0.
    - "blur": the image convolved with a normalised Gaussian of standard deviation
      ``patch_size / 2`` (separable, truncated at radius ``int(3 * sigma + 0.5)``, the image
      mirrored at its borders: ``d c b a | a b c d | d c b a``), per channel.
    - "uniform": noise drawn uniformly in [min, max] of the image (over all its pixels and
      channels) from `rng`.

    Args:
        x: (N, H, W, C) images.
        replace: one of `REPLACE`.
        patch_size: the patch side.
        rng: the generator of "uniform".

    Returns:
        float64 array shaped like `x`.
    """
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    if replace == "zero":
        return np.zeros_like(x)
    if replace == "image_mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
    if replace == "patch_mean":
        ids = patch_ids(h, w, patch_size).ravel()
        n_patches = int(ids.max()) + 1
        flat = x.reshape(n, h * w, c)
        sums = np.zeros((n, n_patches, c))
        np.add.at(sums, (slice(None), ids), flat)
        counts = np.bincount(ids, minlength=n_patches)[None, :, None]
        return (sums / counts)[:, ids].reshape(x.shape)
    if replace == "blur":
        return gaussian_blur(x, patch_size / 2.0)
    if replace == "uniform":
        rng = rng if rng is not None else np.random.default_rng()
        low = x.min(axis=(1, 2, 3), keepdims=True)
        high = x.max(axis=(1, 2, 3), keepdims=True)
        return low + (high - low) * rng.random(x.shape)
    raise ValueError(f"replace must be one of {REPLACE}, got {replace!r}.")


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, H, W, C) images over H and W (see
    `replacement_images`, "blur")."""
    radius = int(3.0 * sigma + 0.5)
    if radius == 0:
        return np.array(x, np.float64)
    k = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (k / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.asarray(x, np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        length = out.shape[axis]
        acc = np.zeros_like(out)
        for j, wgt in enumerate(kernel):
            acc += wgt * np.take(padded, np.arange(j, j + length), axis=axis)
        out = acc
    return out


def patch_order(sums: np.ndarray, order: str,
                rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The patch ids of each sample in replacement order: (N, n_patches).

    Ties keep the grid's row-major order (a stable sort). "random" draws one permutation
    per sample from `rng`.
    """
    n, n_patches = sums.shape
    if order == "most_relevant_first":
        return np.argsort(-sums, axis=1, kind="stable")
    if order == "least_relevant_first":
        return np.argsort(sums, axis=1, kind="stable")
    if order == "random":
        rng = rng if rng is not None else np.random.default_rng()
        return np.stack([rng.permutation(n_patches) for _ in range(n)]) if n else (
            np.zeros((0, n_patches), np.int64))
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
