"""iNNvestigate's visualisation helpers, with its signatures, right for any batch size.

    import keras_patterns.utils.visualizations as ivis   # was innvestigate.utils.visualizations
    ivis.heatmap(analysis)                                # float RGB in [0, 1], (N, H, W, 3)

Same parameters and outputs as iNNvestigate 2.1.2 (float arrays in `output_range`, colour
axis replacing the reduced axis), but every sample is scaled by its own maximum (the
reference helpers divide a batch along the wrong axis for batch sizes above one) and the
input is not modified in place. Colours come from `keras_patterns.visualize`'s tables
("seismic", "bwr", "gray"); any other matplotlib colormap name needs matplotlib. For new
code, `keras_patterns.visualize` offers the same pictures as uint8 images and grids.
"""

import numpy as np

from .. import visualize

__all__ = ["project", "heatmap", "graymap", "gamma", "clip_quantile"]


def project(X, output_range=(0, 1), absmax=None, input_is_positive_only=False):
    """X / max|X| per sample (or by `absmax`), mapped from [-1, 1] (or [0, 1] when
    `input_is_positive_only`) onto `output_range`."""
    X = np.array(X, dtype=np.float64)
    if absmax is None:
        absmax = np.max(np.abs(X), axis=tuple(range(1, X.ndim))) if X.ndim > 1 else np.abs(X)
    absmax = np.asarray(absmax, np.float64)
    scale = np.where(absmax != 0, absmax, 1.0)
    X = X / scale.reshape(scale.shape + (1,) * (X.ndim - scale.ndim))
    if not input_is_positive_only:
        X = (X + 1) / 2
    X = X.clip(0, 1)
    return output_range[0] + X * (output_range[1] - output_range[0])


def _colormap(cmap_type):
    if cmap_type == "gray":
        return np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    if cmap_type in visualize.COLOR_TABLES:
        return np.asarray(visualize.COLOR_TABLES[cmap_type], np.float64) / 255.0
    try:
        import matplotlib
    except ImportError:
        raise ValueError(
            f"cmap_type={cmap_type!r} is a matplotlib colormap and matplotlib is not "
            f"installed; built in: 'gray', {', '.join(map(repr, visualize.COLOR_TABLES))}."
        ) from None
    return np.asarray(matplotlib.colormaps.get_cmap(cmap_type)(np.linspace(0, 1, 256))[:, :3])


def heatmap(X, cmap_type="seismic", reduce_op="sum", reduce_axis=-1, alpha_cmap=False,
            **kwargs):
    """One colour per pixel: the channels reduced by "sum" or "absmax" (the signed value of
    largest magnitude), projected per sample (see `project`, which gets `kwargs`), coloured
    with `cmap_type`. Returns float32 of X's shape with 3 colours (4 with `alpha_cmap`) on
    the reduced axis."""
    X = np.asarray(X, np.float64)
    if reduce_op == "sum":
        values = X.sum(axis=reduce_axis)
    elif reduce_op == "absmax":
        high, low = X.max(axis=reduce_axis), X.min(axis=reduce_axis)
        values = np.where(high >= -low, high, low)
    else:
        raise ValueError(f"reduce_op must be 'sum' or 'absmax', got {reduce_op!r}.")
    level = project(values, output_range=(0, 1), **kwargs)
    table = _colormap(cmap_type)
    position = level * (len(table) - 1)
    lower = np.clip(np.floor(position).astype(int), 0, len(table) - 2)
    frac = (position - lower)[..., None]
    colours = table[lower] * (1 - frac) + table[lower + 1] * frac
    if alpha_cmap:
        colours = np.concatenate([colours, np.ones(colours.shape[:-1] + (1,))], axis=-1)
    axis = reduce_axis % X.ndim
    return np.moveaxis(colours, -1, axis).astype(np.float32)


def graymap(X, **kwargs):
    """`heatmap` with a gray colour map."""
    return heatmap(X, cmap_type="gray", **kwargs)


def gamma(X, gamma=0.5, minamp=0, maxamp=None):
    """Gamma correction that keeps the order of the values and their sign around
    `minamp`: (|X - minamp| / maxamp)^gamma, with its sign, back in X's scale."""
    X = np.asarray(X, np.float64) - minamp
    if maxamp is None:
        maxamp = np.abs(X).max()
    if maxamp == 0:
        return X + minamp
    X = X / maxamp
    return np.sign(X) * np.abs(X) ** gamma * maxamp + minamp


def clip_quantile(X, quantile=1):
    """X clipped to its [quantile, 100 - quantile] percentiles (a copy)."""
    if not isinstance(quantile, (list, tuple)):
        quantile = (quantile, 100 - quantile)
    low, high = np.percentile(X, quantile[0]), np.percentile(X, quantile[1])
    return np.clip(X, low, high)
