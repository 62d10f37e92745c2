"""Heat maps, signal projections, gray maps and overlays of batches (numpy only)."""

import numbers

import numpy as np

from .batches import check_batch

# Diverging colour tables: RGB anchors in [0, 255], evenly spaced over [-1, 1] and linearly
# interpolated in between. "bwr": blue, white, red. "seismic": dark blue, blue, white, red,
# dark red (more contrast at the extremes).
COLOR_TABLES = {
    "bwr": ((0, 0, 255), (255, 255, 255), (255, 0, 0)),
    "seismic": ((0, 0, 77), (0, 0, 255), (255, 255, 255), (255, 0, 0), (128, 0, 0)),
}

_SCALES = ("sample", "shared")
_REDUCTIONS = ("sum", "max_abs")
STYLES = ("heatmap", "project", "graymap")


def signal_methods():
    """The methods whose explanation is a signal in input space (their class says
    ``returns = "signal"``): :func:`grid` shows them with :func:`project` and every other
    method with :func:`heatmap`.

    Read from the analyzer registry at each call, so a method registered later counts.
    This folder loaded on its own, without keras_patterns (and TensorFlow), has no
    registry: then the set is empty and ``grid``'s ``styles`` chooses.
    """
    if not __name__.startswith("keras_patterns."):
        return frozenset()
    from ..analyzers import signal_methods as registered

    return registered()


def style_of(method):
    """How :func:`grid` draws the explanation of ``method``: ``"project"`` for a signal,
    ``"heatmap"`` for an attribution."""
    return "project" if method in signal_methods() else "heatmap"


def __getattr__(name):
    if name == "SIGNAL_METHODS":  # the former constant, now read from the registry
        return signal_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------
# input checks


def _batch(x, name, channels_first=False, channels=None):
    """Returns ``x`` as a float64 channels-last batch ``(N, H, W, C)`` after checking it."""
    if not isinstance(channels_first, (bool, np.bool_)):
        raise ValueError(f"channels_first must be True or False, got {channels_first!r}")
    array = check_batch(x, name, channels_first=channels_first, empty=True)
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4:
        if channels_first:
            array = np.transpose(array, (0, 2, 3, 1))
    if channels is not None and array.shape[-1] not in channels:
        allowed = " or ".join(str(c) for c in channels)
        raise ValueError(
            f"{name} must have {allowed} channels, got shape {np.shape(x)} "
            f"({array.shape[-1]} channels"
            f"{', channels_first' if channels_first else ', channels last'})"
        )
    return array.astype(np.float64)


def _option(value, name, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _to_uint8(values):
    """Maps floats in [0, 255] to uint8 by rounding half up (values outside are clipped)."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _color_table(cmap):
    if isinstance(cmap, str):
        if cmap not in COLOR_TABLES:
            raise ValueError(
                f"cmap must be one of {', '.join(map(repr, COLOR_TABLES))} or a (K, 3) array "
                f"of RGB anchors in [0, 255]; got {cmap!r}"
            )
        return np.asarray(COLOR_TABLES[cmap], dtype=np.float64)
    table = np.asarray(cmap, dtype=np.float64) if cmap is not None else None
    if table is None or table.ndim != 2 or table.shape[1] != 3 or table.shape[0] < 2:
        raise ValueError(
            f"cmap must be a name or a (K, 3) array of RGB anchors with K >= 2, got "
            f"{cmap if table is None else 'shape ' + str(table.shape)}"
        )
    if not np.isfinite(table).all() or table.min() < 0 or table.max() > 255:
        raise ValueError("cmap anchors must be finite RGB values in [0, 255]")
    return table


def _per_sample_max_abs(x):
    """max |x| over every axis but the first (0 for an empty sample)."""
    return np.abs(x).max(axis=tuple(range(1, x.ndim)), initial=0.0)


# --------------------------------------------------------------------------------------
# arrays to pixels


def _reduce_channels(x, reduce):
    """(N, H, W, C) -> (N, H, W): the sum, or the signed value of largest magnitude."""
    if reduce == "sum":
        return x.sum(axis=-1)
    index = np.argmax(np.abs(x), axis=-1)[..., None]
    return np.take_along_axis(x, index, axis=-1)[..., 0]


def heatmap(
    explanations,
    *,
    scale="sample",
    reduce="sum",
    cmap="bwr",
    channels_first=False,
):
    """Colours explanations on a diverging scale symmetric around zero.

    The channels of each pixel are reduced to one value ``v`` (their sum, or the signed
    value of largest magnitude); ``v`` is divided by ``m = max |v|`` (per sample, or over the
    whole batch) and ``t = v / m`` in ``[-1, 1]`` is coloured by linear interpolation
    between the anchors of ``cmap`` placed evenly over ``[-1, 1]``. With the default table
    ``"bwr"``: ``t >= 0`` gives ``(255, 255 (1 - t), 255 (1 - t))`` and ``t < 0`` gives
    ``(255 (1 + t), 255 (1 + t), 255)``: zero is white, +1 red, -1 blue. A sample (or batch)
    that is zero everywhere is white.

    Args:
        explanations: a batch ``(N, H, W)``, ``(N, H, W, C)`` or, with
            ``channels_first=True``, ``(N, C, H, W)``; any number of channels.
        scale: ``"sample"`` (``m`` per sample) or ``"shared"`` (one ``m`` for the batch, so
            magnitudes compare across samples).
        reduce: ``"sum"`` or ``"max_abs"`` (per pixel the channel value of largest
            magnitude, keeping its sign; on a tie the first channel).
        cmap: ``"bwr"`` (default), ``"seismic"`` or a ``(K, 3)`` array of RGB anchors in
            ``[0, 255]`` for ``t = -1 ... +1``.
        channels_first: read a rank-4 batch as ``(N, C, H, W)``.

    Returns:
        uint8 array ``(N, H, W, 3)``, RGB.

    Raises:
        ValueError: wrong rank, non-finite values, or an unknown ``scale``, ``reduce`` or
            ``cmap``.
    """
    _option(scale, "scale", _SCALES)
    _option(reduce, "reduce", _REDUCTIONS)
    table = _color_table(cmap)
    x = _batch(explanations, "explanations", channels_first)
    values = _reduce_channels(x, reduce)
    m = _per_sample_max_abs(values)
    if scale == "shared":
        m = np.full_like(m, m.max(initial=0.0))
    m = np.where(m > 0, m, 1.0)[:, None, None]
    t = np.clip(values / m, -1.0, 1.0)
    anchors = np.linspace(-1.0, 1.0, len(table))
    rgb = np.stack([np.interp(t, anchors, table[:, k]) for k in range(3)], axis=-1)
    return _to_uint8(rgb)


def project(signals, *, channels_first=False, as_float=False):
    """Shows signals on their original channels: ``x / (2 max|x|) + 1/2`` per sample.

    This is the display of Kindermans et al. (2018, Fig. 6) for back-projections to input
    space (gradient, DeConvNet, Guided Backprop, PatternNet): ``max |x|`` is taken over all
    pixels and channels of each sample, so zero is mid-gray, the largest positive value 1
    and the most negative value 0 (if it has the largest magnitude). A sample that is zero
    everywhere is uniformly mid-gray.

    Args:
        signals: a batch ``(N, H, W)``, ``(N, H, W, C)`` or, with ``channels_first=True``,
            ``(N, C, H, W)``, with 1 or 3 channels.
        channels_first: read a rank-4 batch as ``(N, C, H, W)``.
        as_float: return the float values in ``[0, 1]`` instead of pixels.

    Returns:
        ``(N, H, W, C)`` channels last (``C`` = 1 for a rank-3 batch): uint8
        ``floor(255 v + 0.5)``, or float64 ``v`` in ``[0, 1]`` when ``as_float``.

    Raises:
        ValueError: wrong rank, a channel count other than 1 or 3, or non-finite values.
    """
    x = _batch(signals, "signals", channels_first, channels=(1, 3))
    m = _per_sample_max_abs(x)
    m = np.where(m > 0, m, 1.0)[:, None, None, None]
    v = np.clip(x / (2.0 * m) + 0.5, 0.0, 1.0)
    return v if as_float else _to_uint8(255.0 * v)


def graymap(explanations, *, channels_first=False, channels=3):
    """Shows the magnitude of explanations: ``|e|`` summed over channels, per-sample scaled.

    Each pixel gets ``g = sum_c |e_c|``, divided by the sample's largest ``g``: 0 is black,
    the largest magnitude white. A sample that is zero everywhere is black.

    Args:
        explanations: a batch ``(N, H, W)``, ``(N, H, W, C)`` or, with
            ``channels_first=True``, ``(N, C, H, W)``; any number of channels.
        channels_first: read a rank-4 batch as ``(N, C, H, W)``.
        channels: 3 (gray as RGB) or 1.

    Returns:
        uint8 array ``(N, H, W, channels)`` with value ``floor(255 g / max g + 0.5)``.

    Raises:
        ValueError: wrong rank, non-finite values, or ``channels`` not 1 or 3.
    """
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    x = _batch(explanations, "explanations", channels_first)
    g = np.abs(x).sum(axis=-1)
    m = _per_sample_max_abs(g)
    m = np.where(m > 0, m, 1.0)[:, None, None]
    gray = _to_uint8(255.0 * g / m)[..., None]
    return np.repeat(gray, channels, axis=-1)


def _image_pixels(images, name="images", channels_first=False):
    """Images in any range -> uint8 RGB (N, H, W, 3), each rescaled from its min..max."""
    x = _batch(images, name, channels_first, channels=(1, 3))
    low = x.min(axis=(1, 2, 3), keepdims=True, initial=np.inf)
    high = x.max(axis=(1, 2, 3), keepdims=True, initial=-np.inf)
    span = np.where(high > low, high - low, 1.0)
    pixels = _to_uint8(255.0 * (x - low) / span)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def overlay(images, heatmaps, alpha=0.5, *, channels_first=False):
    """Blends images with heat maps: ``(1 - alpha) * image + alpha * heatmap``.

    Each image is first rescaled from its own minimum..maximum to 0..255 (a constant image
    becomes black), so inputs may be in any range; one-channel images are shown gray.

    Args:
        images: a batch ``(N, H, W)``, ``(N, H, W, C)`` or, with ``channels_first=True``,
            ``(N, C, H, W)``, with 1 or 3 channels.
        heatmaps: RGB pictures ``(N, H, W, 3)`` with values in ``[0, 255]`` (as returned by
            :func:`heatmap`, :func:`graymap` or :func:`project` of 3 channels); always
            channels last.
        alpha: weight of the heat map, in ``[0, 1]``.
        channels_first: read a rank-4 ``images`` batch as ``(N, C, H, W)``.

    Returns:
        uint8 array ``(N, H, W, 3)``.

    Raises:
        ValueError: wrong ranks or channel counts, batch or picture sizes that differ,
            heat-map values outside ``[0, 255]``, ``alpha`` outside ``[0, 1]``, non-finite
            values.
    """
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not (0.0 <= float(alpha) <= 1.0)
    ):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    pixels = _image_pixels(images, "images", channels_first)
    heat = np.asarray(heatmaps)
    if heat.ndim != 4 or heat.shape[-1] != 3:
        raise ValueError(
            f"heatmaps must be RGB pictures shaped (N, H, W, 3) as returned by heatmap(); got "
            f"shape {heat.shape}"
        )
    heat = _batch(heat, "heatmaps")
    if heat.shape[:3] != pixels.shape[:3]:
        raise ValueError(
            f"heatmaps shaped {heat.shape} do not match images: (N, H, W) = {pixels.shape[:3]} "
            f"(images given as {np.shape(images)})"
        )
    if heat.size and (heat.min() < 0 or heat.max() > 255):
        raise ValueError(
            f"heatmaps must have values in [0, 255], got {heat.min():g}..{heat.max():g}"
        )
    alpha = float(alpha)
    return _to_uint8((1.0 - alpha) * pixels + alpha * heat)
