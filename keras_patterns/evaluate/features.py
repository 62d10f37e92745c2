"""What the perturbation metrics remove, insert or draw: features.

A *feature* is the unit a metric perturbs at once and ranks by its relevance, the sum of
the attribution over its entries:

- "pixel": one pixel of an image with all its channels ((N, H, W, C) or (N, H, W)); for a
  batch of vectors (N, D), one entry.
- "patch": a square of ``patch_size x patch_size`` pixels on the grid of
  `perturbation.patch_ids` (smaller patches at the right and bottom borders), for images
  and for vision transformers, whose tokens are such patches.
- "token": one position of an integer token input (N, T) that feeds an Embedding; it is
  removed by replacing its id with a baseline token (a [PAD] or [MASK] id, or 0). The
  attribution is (N, T) or (N, T, D) (summed over the embedding dimension D).

Inputs are held as (N, S, C): S positions (pixels or tokens) of C channels, each position
belonging to one feature (`Features.ids`), so that one mask over features perturbs every
granularity alike.
"""

import dataclasses
from typing import Optional, Union

import keras
import numpy as np

from ..inputs import positive_int
from ..visualize.batches import check_batch
from .perturbation import gaussian_blur, patch_grid, patch_ids

GRANULARITIES = ("pixel", "patch", "token")


@dataclasses.dataclass
class Features:
    """Inputs cut into features.

    Attributes:
        x: (N, S, C) the inputs as positions x channels, in their own dtype.
        shape: the inputs' shape, which the model takes.
        ids: (S,) the feature each position belongs to.
        n_features: the number of features per sample.
        granularity: "pixel", "patch" or "token".
        image: (H, W) for images, else None.
    """

    x: np.ndarray
    shape: tuple
    ids: np.ndarray
    n_features: int
    granularity: str
    image: Optional[tuple]

    def copies(self, i: np.ndarray, removed: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """The model inputs of copies of samples `i` whose features `removed` ((len(i),
        n_features) bool) are taken from `baseline` ((N, S, C) or broadcastable)."""
        at = (removed if self.ids.shape[0] == self.n_features else removed[:, self.ids])[
            ..., None]
        base = baseline[i] if baseline.shape[0] == self.x.shape[0] else baseline[0]
        out = np.where(at, base, self.x[i])
        return out.reshape((len(i),) + self.shape[1:])

    def sums(self, attributions: np.ndarray) -> np.ndarray:
        """(N, n_features) the attribution summed over each feature's entries (float64)."""
        a = check_batch(attributions, "attributions", images=False)
        n, s = self.x.shape[:2]
        if self.granularity == "token":
            if a.shape[:2] != (n, s) or a.ndim > 3:
                raise ValueError(f"attributions of shape {a.shape} do not match the tokens' "
                                 f"shape {self.shape}: pass (N, T) or (N, T, D).")
        elif self.image is not None:
            if a.ndim == 3 and len(self.shape) == 4:
                a = a[..., None]
            if a.shape[:3] != self.shape[:3] or a.ndim != len(self.shape) or (
                    a.ndim == 4 and a.shape[3] not in (1, self.shape[3])):
                raise ValueError(f"attributions of shape {a.shape} do not match the images' "
                                 f"shape {self.shape}.")
        elif a.shape != self.shape:
            raise ValueError(f"attributions of shape {a.shape} do not match the inputs' "
                             f"shape {self.shape}.")
        per_position = a.reshape(n, s, -1).sum(axis=-1, dtype=np.float64)
        out = np.zeros((n, self.n_features), np.float64)
        np.add.at(out, (slice(None), self.ids), per_position)
        return out


def features(x, granularity: str = "pixel", patch_size: Optional[int] = None) -> Features:
    """Cut `x` into features (see the module docstring).

    Args:
        x: (N, H, W, C) or (N, H, W) images, (N, D) vectors ("pixel"), or (N, T) integer
            token ids ("token").
        granularity: "pixel", "patch" or "token".
        patch_size: the side of a patch ("patch" only).

    Returns:
        Features: the inputs with their feature ids.

    Raises:
        ValueError: an unknown granularity, or inputs that do not fit it.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}.")
    x = check_batch(x, "x", images=False)
    n = x.shape[0]
    if granularity == "token":
        if x.ndim != 2 or x.dtype.kind not in "iu":
            raise ValueError("granularity='token' needs integer token ids shaped (N, T), got "
                             f"dtype {x.dtype} and shape {x.shape}.")
        t = x.shape[1]
        return Features(x.reshape(n, t, 1), x.shape, np.arange(t), t, granularity, None)
    x = x.astype(keras.backend.floatx())
    if x.ndim == 2:
        if granularity == "patch":
            raise ValueError(f"granularity='patch' needs images (N, H, W[, C]), got shape "
                             f"{x.shape}.")
        d = x.shape[1]
        return Features(x.reshape(n, d, 1), x.shape, np.arange(d), d, granularity, None)
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be images (N, H, W[, C]), vectors (N, D) or tokens (N, T); "
                         f"got shape {x.shape}.")
    h, w = x.shape[1:3]
    positions = x.reshape(n, h * w, -1)
    if granularity == "pixel":
        return Features(positions, x.shape, np.arange(h * w), h * w, granularity, (h, w))
    patch_size = positive_int(patch_size, "patch_size")
    gh, gw = patch_grid(h, w, patch_size)
    return Features(positions, x.shape, patch_ids(h, w, patch_size).ravel(), gh * gw,
                    granularity, (h, w))


def baseline_values(f: Features, baseline: Union[str, float, np.ndarray],
                    blur_sigma: float = 5.0) -> np.ndarray:
    """(N or 1, S, C) what a removed feature becomes (`Features.copies`).

    Args:
        f: the features.
        baseline: a number (every removed entry becomes it; for tokens the baseline token
            id), "zero", "mean" (the sample's mean per channel), "blur" (the sample blurred
            by `gaussian_blur` with `blur_sigma`; images only), or an array shaped like one
            sample or like the inputs.
        blur_sigma: the standard deviation of "blur", in pixels.

    Returns:
        The baseline in the inputs' dtype.

    Raises:
        ValueError: an unknown baseline or one of the wrong shape.
    """
    n, s, c = f.x.shape
    dtype = f.x.dtype
    if isinstance(baseline, str):
        if f.granularity == "token":
            raise ValueError("tokens are removed by a baseline token id (an int such as the "
                             f"[PAD] or [MASK] id), got baseline={baseline!r}.")
        if baseline == "zero":
            return np.zeros((1, s, c), dtype)
        if baseline == "mean":
            return np.broadcast_to(f.x.mean(axis=1, keepdims=True), f.x.shape).astype(dtype)
        if baseline == "blur":
            if f.image is None:
                raise ValueError("baseline='blur' needs images (N, H, W[, C]).")
            h, w = f.image
            return gaussian_blur(f.x.reshape(n, h, w, c), float(blur_sigma)).reshape(
                n, s, c).astype(dtype)
        raise ValueError("baseline must be 'zero', 'mean', 'blur', a number or an array, got "
                         f"{baseline!r}.")
    b = np.asarray(baseline)
    if b.ndim == 0:
        if f.granularity == "token" and (b.dtype.kind not in "iu" or b < 0):
            raise ValueError(f"baseline_token must be a non-negative int id, got {baseline!r}.")
        return np.full((1, s, c), b, dtype)
    if b.shape == f.shape[1:]:
        return b.reshape(1, s, c).astype(dtype)
    if b.shape == f.shape:
        return b.reshape(n, s, c).astype(dtype)
    raise ValueError(f"baseline of shape {b.shape} matches neither one sample {f.shape[1:]} "
                     f"nor the inputs {f.shape}.")
