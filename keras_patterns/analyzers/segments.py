"""The segments the surrogate methods (KernelSHAP, LIME) turn on and off.

A segment is a set of positions of the input's spatial axes (pixels of an image
(batch, H, W, C), steps of a sequence (batch, L, C)), all channels of a position together.
Each sample gets a map of segment ids, numbered 0 .. M − 1 in the order of the ids found
(so every id names at least one position):

* "grid": `grid_size` cells per spatial axis; along an axis of length L, position u lies in
  cell floor(u g / L) (cells of equal length up to one position; with g > L, one cell
  per position);
* "slic": scikit-image's SLIC superpixels of each image, computed on the image rescaled
  to [0, 1] (its minimum to 0, its maximum to 1), with `slic_options` passed on;
* an integer array of ids (*spatial) for every sample, or (N, *spatial) with one map per
  sample explained (N the number of samples `analyze` gets, in order).
"""

import numpy as np

from ..errors import InvalidInputError, NotAnalyzableModelError
from ..zoo.extras import require
from .perturbation import _sizes


def consecutive(ids):
    """The map `ids` renumbered 0 .. M − 1 (in increasing order of the ids) and M."""
    values, inverse = np.unique(ids, return_inverse=True)
    return inverse.reshape(ids.shape).astype(np.int32), len(values)


class Segments:
    """How a method cuts each sample into segments (see the module).

    Args:
        segments: "grid", "slic" or an integer array of segment ids.
        grid_size: with "grid", the cells along each spatial axis (an int for all).
        slic_options: with "slic", keyword arguments of
            `skimage.segmentation.slic` (default: its own, with start_label=0).
    """

    def __init__(self, segments, grid_size, slic_options):
        self.kind = segments if isinstance(segments, str) else "array"
        if self.kind not in ("grid", "slic", "array"):
            raise ValueError(f"segments={segments!r} is not 'grid', 'slic' or an integer "
                             "array of segment ids.")
        _sizes(grid_size, "grid_size", 1 if np.ndim(grid_size) == 0 else len(grid_size))
        if slic_options is not None and not isinstance(slic_options, dict):
            raise ValueError(f"slic_options must be a dict of keyword arguments of "
                             f"skimage.segmentation.slic, got {slic_options!r}.")
        self.grid_size = grid_size
        self.slic_options = dict(slic_options or {})
        self.ids = None
        # with a user array of one map per sample, the number of maps (set by `check`)
        self.per_sample = None
        if self.kind == "array":
            ids = np.asarray(segments)
            if ids.dtype.kind not in "iu" or ids.ndim < 1:
                raise ValueError("segments must be 'grid', 'slic' or an integer array of "
                                 f"segment ids, got an array of dtype {ids.dtype} and shape "
                                 f"{ids.shape}.")
            if ids.size and ids.min() < 0:
                raise ValueError("segments holds negative ids; segment ids are integers >= 0.")
            self.ids = ids
        if self.kind == "slic":
            require("skimage.segmentation", "segments='slic' (SLIC superpixels)")

    def check(self, shape, method):
        """Refuse segments that do not fit the input shape (batch, *spatial, channels).

        Args:
            shape: the model input's shape.
            method: the method's name, for the messages.
        """
        spatial = tuple(shape[1:-1])
        rank = len(spatial)
        _sizes(self.grid_size, "grid_size", rank)
        if self.kind == "slic" and rank != 2:
            raise NotAnalyzableModelError(
                f"'{method}' with segments='slic' cuts images (batch, height, width, "
                f"channels) into superpixels; the input has shape {shape}: use "
                "segments='grid' or an array of segment ids.")
        if self.ids is not None:
            known = tuple(s for s in spatial if s is not None)
            if self.ids.ndim not in (rank, rank + 1) or (
                    len(known) == rank and self.ids.shape[-rank:] != spatial):
                raise ValueError(
                    f"segments has shape {self.ids.shape}; '{method}' needs one map of the "
                    f"input's spatial shape {spatial} for all samples, or one per sample "
                    f"(N, *{spatial}).")
            self.per_sample = len(self.ids) if self.ids.ndim == rank + 1 else None

    def maps(self, x, start):
        """The segment ids (n, *spatial) int32 of the samples `x` (numpy, (n, *spatial,
        channels)), the samples start .. start + n − 1 of those explained, and M per sample.

        Args:
            x: the samples.
            start: the position of the first of them among the samples explained.

        Returns:
            (ids, counts).
        """
        n, spatial = len(x), x.shape[1:-1]
        if self.kind == "grid":
            grid = _sizes(self.grid_size, "grid_size", len(spatial))
            cells = [(np.arange(size) * g) // size for size, g in zip(spatial, grid)]
            ids = np.ravel_multi_index(np.meshgrid(*cells, indexing="ij"),
                                       [max(c) + 1 for c in cells])
            raw = np.broadcast_to(ids, (n, *spatial))
        elif self.kind == "slic":
            raw = np.stack([self._slic(sample) for sample in x])
        elif self.per_sample is None:
            raw = np.broadcast_to(self.ids, (n, *self.ids.shape))
        else:
            if start + n > len(self.ids):
                raise InvalidInputError(
                    f"segments holds {len(self.ids)} maps, one per sample, but analyze got "
                    f"more samples ({start + n} so far).")
            raw = self.ids[start : start + n]
        if raw.shape[1:] != spatial:
            raise InvalidInputError(f"segments maps have shape {raw.shape[1:]}, the input's "
                                    f"spatial shape is {spatial}.")
        relabelled = [consecutive(r) for r in raw]
        return (np.stack([r[0] for r in relabelled]),
                np.asarray([r[1] for r in relabelled], np.int64))

    def _slic(self, image):
        slic = require("skimage.segmentation", "segments='slic' (SLIC superpixels)").slic
        image = np.asarray(image, np.float64)
        low, span = image.min(), np.ptp(image)
        image = (image - low) / span if span > 0 else np.zeros_like(image)
        options = {"start_label": 0, **self.slic_options}
        return slic(image, channel_axis=-1, **options)
