"""The one check of a batch of images (or of any batch) passed to a function of the package:
the pictures here, ExplanationGrid's images, degradation's and the sanity checks' inputs.
It lives with the pictures because this package needs numpy only (no Keras, no
TensorFlow), and every other part of the package may import it.
"""

import numpy as np


def check_batch(x, name, *, images=True, channels_first=False, empty=False, copy=False):
    """`x` as a numpy batch after checking it: real numbers (bool, int, uint or float), all
    finite, one sample at least.

    Args:
        x: what the user passed (an array or anything numpy turns into one).
        name: the argument's name, for the messages.
        images: True: a batch of images, (N, H, W) or (N, H, W, C) ((N, C, H, W) with
            `channels_first`, named in the message only); False: any batch (N, ...).
        channels_first: how the message names the layout of rank 4.
        empty: whether a batch of no samples is accepted.
        copy: return a copy, never a view of `x`.

    Returns:
        np.ndarray: `x` in its own dtype.

    Raises:
        ValueError: naming `name`: not an array of real numbers, another rank (a single
            sample of rank 2 gets the hint `x[None]`), no sample, NaN or inf (counted).
    """
    try:
        array = np.array(x, copy=True) if copy else np.asarray(x)
    except (TypeError, ValueError) as e:  # ragged lists and the like
        raise ValueError(f"{name} must be a numeric array: {e}") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    if images and array.ndim not in (3, 4):
        layout = "(N, C, H, W)" if channels_first else "(N, H, W, C)"
        hint = " (a single sample? pass x[None])" if array.ndim == 2 else ""
        raise ValueError(f"{name} must be a batch of images shaped (N, H, W) or {layout}; got "
                         f"shape {array.shape} (rank {array.ndim}){hint}.")
    if array.ndim < 2:
        raise ValueError(f"{name} must be a batch shaped (N, ...); got shape {array.shape}.")
    if len(array) == 0 and not empty:
        what = "image" if images else "sample"
        raise ValueError(f"{name} must hold at least one {what}, got shape {array.shape}.")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf), shape "
                         f"{array.shape}.")
    return array
