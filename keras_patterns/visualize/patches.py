"""Patch maps of vision transformers: one relevance per patch drawn over the image.

A ViT cuts an ``H x W`` image into a ``rows x cols`` grid of patches, row by row (the order
of keras-hub's ``ViTPatchingAndEmbedding`` and of the original ViT), and may put class
tokens in front (one in ViT, a class and a distillation token in DeiT). Relevance per token
is then ``(N, class_tokens + rows * cols)``: the first ``class_tokens`` values are left out
and the rest are spread over their patches' pixels.
"""

import math
import numbers

import numpy as np

from .batches import check_batch
from .pictures import _REDUCTIONS, _image_pixels, _option, _reduce_channels, heatmap, overlay


def _grid_shape(n_patches, grid, class_tokens):
    if grid is None:
        side = math.isqrt(n_patches)
        if side * side != n_patches:
            hint = ""
            for k in (1, 2):
                if math.isqrt(n_patches - k) ** 2 == n_patches - k:
                    hint = f" (with class_tokens={class_tokens + k} it would be)"
                    break
            raise ValueError(
                f"relevance holds {n_patches} patch values after class_tokens="
                f"{class_tokens}, not a square grid{hint}; pass grid=(rows, cols).")
        return side, side
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1
                       for g in grid)):
        raise ValueError(f"grid must be a (rows, cols) pair of positive ints, got {grid!r}")
    if grid[0] * grid[1] != n_patches:
        raise ValueError(f"grid {tuple(grid)} has {grid[0] * grid[1]} patches; relevance holds "
                         f"{n_patches} after class_tokens={class_tokens}.")
    return int(grid[0]), int(grid[1])


def patch_grid(relevance, *, class_tokens=0, grid=None, reduce="sum"):
    """Relevance per token -> relevance per patch, as a ``(N, rows, cols)`` grid.

    Args:
        relevance: ``(N, class_tokens + P)`` one value per token, or ``(N, class_tokens + P,
            D)`` (reduced over ``D`` as :func:`heatmap` reduces channels).
        class_tokens: how many tokens precede the patches (1 for ViT's class token); their
            values are dropped.
        grid: ``(rows, cols)`` with ``rows * cols = P``; default the square grid.
        reduce: ``"sum"`` or ``"max_abs"``, for ``(N, tokens, D)``.

    Returns:
        float64 array ``(N, rows, cols)``, patch ``k`` at row ``k // cols``, column
        ``k % cols``.

    Raises:
        ValueError: a bad rank, non-finite values, a count of patches that is not
            ``rows * cols`` (or not a square without ``grid``), a bad ``class_tokens``.
    """
    _option(reduce, "reduce", _REDUCTIONS)
    values = check_batch(relevance, "relevance", images=False).astype(np.float64)
    if values.ndim == 3:
        values = _reduce_channels(values, reduce)
    if values.ndim != 2:
        raise ValueError(f"relevance must be shaped (N, tokens) or (N, tokens, dims); got "
                         f"shape {np.shape(relevance)}.")
    if (isinstance(class_tokens, bool) or not isinstance(class_tokens, numbers.Integral)
            or not 0 <= class_tokens < values.shape[1]):
        raise ValueError(f"class_tokens must be an int in [0, {values.shape[1]}) (relevance "
                         f"has {values.shape[1]} tokens), got {class_tokens!r}")
    patches = values[:, class_tokens:]
    rows, cols = _grid_shape(patches.shape[1], grid, class_tokens)
    return patches.reshape(len(patches), rows, cols)


def patch_values(relevance, size, *, class_tokens=0, grid=None, reduce="sum"):
    """Relevance per patch spread over the pixels: ``(N, H, W)``, each pixel its patch's value.

    Pixel ``(y, x)`` belongs to patch row ``floor(y rows / H)`` and column ``floor(x cols /
    W)``; where ``H`` and ``W`` are multiples of the grid (a ViT's patches tile its input)
    this is ``np.kron(grid, np.ones((H / rows, W / cols)))`` per sample.

    Args:
        relevance: ``(N, class_tokens + P)`` or ``(N, class_tokens + P, D)``.
        size: ``(H, W)`` of the image.
        class_tokens: how many tokens precede the patches (1 for ViT's class token).
        grid: ``(rows, cols)``; default the square grid.
        reduce: ``"sum"`` or ``"max_abs"``, for ``(N, tokens, D)``.

    Returns:
        float64 array ``(N, H, W)``.
    """
    patches = patch_grid(relevance, class_tokens=class_tokens, grid=grid, reduce=reduce)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size)):
        raise ValueError(f"size must be an (H, W) pair of positive ints, got {size!r}")
    rows, cols = patches.shape[1:]
    height, width = int(size[0]), int(size[1])
    if height < rows or width < cols:
        raise ValueError(f"size {height}x{width} is smaller than the {rows}x{cols} patch grid.")
    row_of = np.arange(height) * rows // height
    col_of = np.arange(width) * cols // width
    return patches[:, row_of][:, :, col_of]


def patch_heatmap(images, relevance, *, class_tokens=0, grid=None, alpha=0.5,
                  scale="sample", reduce="sum", cmap="bwr", channels_first=False):
    """The heat map of the patch values (:func:`patch_values`, coloured by :func:`heatmap`)
    blended over the images (:func:`overlay`).

    ``alpha=1`` gives the heat map alone; to show image and patch map side by side, pass
    :func:`patch_values` to :func:`grid` as a method's explanation.

    Args:
        images: a batch ``(N, H, W)``, ``(N, H, W, C)`` or, with ``channels_first=True``,
            ``(N, C, H, W)``, with 1 or 3 channels, any range.
        relevance: ``(N, class_tokens + P)`` or ``(N, class_tokens + P, D)``.
        class_tokens: how many tokens precede the patches (1 for ViT's class token).
        grid: ``(rows, cols)``; default the square grid.
        alpha: the heat map's weight in ``[0, 1]``.
        scale: ``"sample"`` or ``"shared"`` (see :func:`heatmap`).
        reduce: ``"sum"`` or ``"max_abs"``, for ``(N, tokens, D)``.
        cmap: a table name or ``(K, 3)`` anchors.
        channels_first: read rank-4 images as ``(N, C, H, W)``.

    Returns:
        uint8 array ``(N, H, W, 3)``.
    """
    pixels = _image_pixels(images, "images", channels_first)
    values = patch_values(relevance, pixels.shape[1:3], class_tokens=class_tokens, grid=grid,
                          reduce=reduce)
    if len(values) != len(pixels):
        raise ValueError(f"relevance has {len(values)} samples, images {len(pixels)}.")
    return overlay(pixels, heatmap(values, scale=scale, cmap=cmap), alpha)
