"""Pictures of explanations: heat maps, signal projections and labelled grids.

This module needs only numpy and Pillow (no TensorFlow, no matplotlib).

Conventions shared by every function:

* **Always a batch.** Arrays are batches: ``(N, H, W)`` (one channel) or ``(N, H, W, C)``
  (channels last), or ``(N, C, H, W)`` with ``channels_first=True``. To draw a single
  sample pass ``x[None]``. A rank-3 array is always read as ``(N, H, W)``.
* **Pixels are uint8.** Functions return ``uint8`` arrays in channels-last layout (except
  ``project(..., as_float=True)``); a value ``u`` in ``[0, 255]`` becomes the integer
  ``floor(u + 0.5)`` (rounding half up).
* **Finite input.** NaN or infinite values, wrong ranks, mismatched batch sizes and unknown
  options raise ``ValueError`` naming the argument and its shape.

Two ways of showing an explanation follow Kindermans et al. (ICLR 2018, Fig. 6):

* signals (gradient, SmoothGrad, DeConvNet, Guided Backprop, PatternNet) are shown on the
  original colour channels with :func:`project`: ``x / (2 max|x|) + 1/2`` per sample;
* attributions (LRP, Deep Taylor, PatternAttribution, ...) are shown as heat maps with
  :func:`heatmap`: one value per pixel on a diverging colour scale symmetric around zero
  (zero white, positive red, negative blue).
"""

import math
import numbers

import numpy as np

__all__ = [
    "COLOR_TABLES",
    "SIGNAL_METHODS",
    "graymap",
    "grid",
    "heatmap",
    "overlay",
    "project",
]

#: Diverging colour tables: RGB anchors in [0, 255], evenly spaced over [-1, 1] and linearly
#: interpolated in between. "bwr": blue, white, red. "seismic": dark blue, blue, white, red,
#: dark red (more contrast at the extremes).
COLOR_TABLES = {
    "bwr": ((0, 0, 255), (255, 255, 255), (255, 0, 0)),
    "seismic": ((0, 0, 77), (0, 0, 255), (255, 255, 255), (255, 0, 0), (128, 0, 0)),
}

#: Methods whose explanation is a signal in input space; :func:`grid` shows them with
#: :func:`project` and every other method with :func:`heatmap`.
SIGNAL_METHODS = frozenset(
    {"gradient", "smoothgrad", "deconvnet", "guided_backprop", "pattern.net"}
)

_SCALES = ("sample", "shared")
_REDUCTIONS = ("sum", "max_abs")
_KINDS = ("heatmap", "project", "graymap")


# --------------------------------------------------------------------------------------
# input checks


def _batch(x, name, channels_first=False, channels=None):
    """Returns ``x`` as a float64 channels-last batch ``(N, H, W, C)`` after checking it."""
    if not isinstance(channels_first, (bool, np.bool_)):
        raise ValueError(f"channels_first must be True or False, got {channels_first!r}")
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as e:  # ragged lists and the like
        raise ValueError(f"{name} must be a numeric array: {e}") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4:
        if channels_first:
            array = np.transpose(array, (0, 2, 3, 1))
    else:
        layout = "(N, C, H, W)" if channels_first else "(N, H, W, C)"
        hint = " (a single sample? pass x[None])" if array.ndim == 2 else ""
        raise ValueError(
            f"{name} must be a batch shaped (N, H, W) or {layout}; got shape "
            f"{np.shape(x)} (rank {array.ndim}){hint}"
        )
    if channels is not None and array.shape[-1] not in channels:
        allowed = " or ".join(str(c) for c in channels)
        raise ValueError(
            f"{name} must have {allowed} channels, got shape {np.shape(x)} "
            f"({array.shape[-1]} channels"
            f"{', channels_first' if channels_first else ', channels last'})"
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf), shape {np.shape(x)}")
    return array


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


# --------------------------------------------------------------------------------------
# grid


try:
    from PIL.Image import Resampling as _Resampling

    _NEAREST = _Resampling.NEAREST
except ImportError:  # Pillow < 9.1
    from PIL.Image import NEAREST as _NEAREST


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _line_height(font):
    if hasattr(font, "getmetrics"):
        ascent, descent = font.getmetrics()
        return ascent + descent
    return int(font.getbbox("Ag")[3])


def _text_width(font, text):
    return math.ceil(font.getlength(text))


def _wrap(font, text, width):
    """Splits text into lines no wider than ``width`` (after '.', '_', '-' or spaces)."""
    lines = []
    for paragraph in str(text).split("\n"):
        pieces, piece = [], ""
        for char in paragraph:
            piece += char
            if char in "._- ":
                pieces.append(piece)
                piece = ""
        if piece or not pieces:
            pieces.append(piece)
        line = ""
        for piece in pieces:
            if line and _text_width(font, line + piece) > width:
                lines.append(line.rstrip())
                line = ""
            while _text_width(font, line + piece) > width and len(line + piece) > 1:
                # a piece longer than the cell: break it between characters
                cut = len(piece)
                while cut > 1 and _text_width(font, line + piece[:cut]) > width:
                    cut -= 1
                lines.append(line + piece[:cut])
                line, piece = "", piece[cut:]
            line += piece
        lines.append(line.rstrip())
    return lines


def _cell_size(cell, height, width):
    if cell is None:
        factor = max(1, round(96 / max(height, width)))
        return height * factor, width * factor
    if isinstance(cell, numbers.Integral) and not isinstance(cell, bool):
        cell = (cell, cell)
    if (
        isinstance(cell, (tuple, list))
        and len(cell) == 2
        and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in cell)
        and min(cell) >= 1
    ):
        return int(cell[0]), int(cell[1])
    raise ValueError(f"cell must be a positive int or a (height, width) pair, got {cell!r}")


def _labels(labels, count, name):
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(f"{name} must have {count} entries, got {len(labels)}")
    return [str(label) for label in labels]


def _methods(explanations):
    shape_hint = "explanations must be a dict {method name: batch} or a list of (name, batch) pairs"
    if isinstance(explanations, dict):
        items = list(explanations.items())
    elif isinstance(explanations, (list, tuple)):
        items = list(explanations)
        for item in items:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise ValueError(f"{shape_hint}; got an entry of type {type(item).__name__}")
    else:
        raise ValueError(f"{shape_hint}; got {type(explanations).__name__}")
    names = [name for name, _ in items]
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{shape_hint}: method names must be strings, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"explanations: method names must be unique, got {names}")
    return items


def grid(
    images,
    explanations,
    row_labels=None,
    col_labels=None,
    path=None,
    cell=None,
    *,
    kinds=None,
    channels_first=False,
    scale="sample",
    reduce="sum",
    cmap="bwr",
    pad=2,
):
    """Draws one row per image: the image, then its explanation by each method.

    The first column shows each image rescaled from its min..max (any input range). Each
    further column shows one method: signal methods (:data:`SIGNAL_METHODS`: ``gradient``,
    ``smoothgrad``, ``deconvnet``, ``guided_backprop``, ``pattern.net``) with
    :func:`project`, every other method with :func:`heatmap`; ``kinds`` overrides this per
    method. Pictures are enlarged to ``cell`` with nearest-neighbour resampling, so an
    integer factor repeats every pixel as a block.

    Layout (white background, black text in Pillow's default font): with ``R`` images,
    ``K`` methods and pictures ``(ch, cw)``, the picture of row ``r`` and column ``c``
    (column 0 the image) has its top-left corner at
    ``(x, y) = (L + pad + c (cw + pad), T + pad + r (ch + pad))`` and the whole picture is
    ``L + (K + 1) cw + (K + 2) pad`` wide and ``T + R ch + (R + 1) pad`` high. ``L`` is 0
    without row labels, else the widest row label plus 6 pixels; ``T`` is 0 without column
    labels, else the largest number of lines a column label takes (labels are wrapped to
    ``cw`` after '.', '_', '-' or spaces) times the font's line height (ascent + descent)
    plus 6 pixels.

    Args:
        images: a batch of ``R >= 1`` inputs ``(R, H, W)``, ``(R, H, W, C)`` or, with
            ``channels_first=True``, ``(R, C, H, W)``, with 1 or 3 channels, any range.
        explanations: a dict ``{method name: batch}`` or a list of ``(name, batch)``
            pairs, each batch with ``R`` samples of the images' height and width in the same
            layout (one that :func:`project` shows needs 1 or 3 channels).
        row_labels: ``R`` strings drawn left of the rows, or None for none.
        col_labels: ``K + 1`` strings drawn above the columns; None (the default) draws
            ``"input"`` and the method names; False draws none.
        path: if given, the picture is also written there as PNG.
        cell: size of each picture: an int (square), a ``(height, width)`` pair, or None
            for the input size times the integer nearest to ``96 / max(H, W)`` (at least 1).
        kinds: optional ``{method name: "heatmap" | "project" | "graymap"}`` overriding the
            choice above.
        channels_first: read rank-4 images and explanations as ``(N, C, H, W)``.
        scale: passed to :func:`heatmap` (per method: ``"shared"`` shares one scale over
            the rows).
        reduce: passed to :func:`heatmap`.
        cmap: passed to :func:`heatmap`.
        pad: white space in pixels between pictures and around them.

    Returns:
        PIL.Image.Image in RGB mode.

    Raises:
        ValueError: bad ranks or channel counts, a method whose batch size or picture size
            differs from the images, non-finite values, wrong label counts, unknown kinds
            or methods in ``kinds``, or a bad ``cell``, ``pad``, ``scale``, ``reduce`` or
            ``cmap``.
    """
    from PIL import Image, ImageDraw

    _option(scale, "scale", _SCALES)
    _option(reduce, "reduce", _REDUCTIONS)
    _color_table(cmap)
    if isinstance(pad, bool) or not isinstance(pad, numbers.Integral) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    pictures = [_image_pixels(images, "images", channels_first)]
    rows, height, width = pictures[0].shape[:3]
    if rows == 0:
        raise ValueError(f"images must hold at least one image, got shape {np.shape(images)}")
    ch, cw = _cell_size(cell, height, width)
    items = _methods(explanations)
    names = [name for name, _ in items]
    if kinds is not None and not isinstance(kinds, dict):
        raise ValueError(f"kinds must be a dict {{method name: kind}}, got {type(kinds).__name__}")
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(names))
    if unknown:
        raise ValueError(f"kinds names methods not in explanations: {unknown} (methods: {names})")
    for name, batch in items:
        kind = kinds.get(name, "project" if name in SIGNAL_METHODS else "heatmap")
        _option(kind, f"kinds[{name!r}]", _KINDS)
        label = f"explanations[{name!r}]"
        x = _batch(batch, label, channels_first, channels=(1, 3) if kind == "project" else None)
        if x.shape[:3] != (rows, height, width):
            raise ValueError(
                f"{label} has shape {np.shape(batch)}: expected {rows} samples of "
                f"{height}x{width} like images (shape {np.shape(images)})"
            )
        if kind == "heatmap":
            picture = heatmap(x, scale=scale, reduce=reduce, cmap=cmap)
        elif kind == "graymap":
            picture = graymap(x)
        else:
            picture = project(x)
            if picture.shape[-1] == 1:
                picture = np.repeat(picture, 3, axis=-1)
        pictures.append(picture)

    font = _font()
    line_height = _line_height(font)
    margin = 3
    if col_labels is None:
        col_labels = ["input", *names]
    if col_labels is False:
        header = []
    else:
        header = [
            _wrap(font, text, cw) for text in _labels(col_labels, len(pictures), "col_labels")
        ]
    if row_labels is not None:
        row_labels = _labels(row_labels, rows, "row_labels")
    left = 0
    if row_labels is not None:
        left = max(_text_width(font, line) for t in row_labels for line in t.split("\n"))
        left += 2 * margin
    top = max(len(lines) for lines in header) * line_height + 2 * margin if header else 0
    cols = len(pictures)
    canvas = Image.new(
        "RGB", (left + cols * cw + (cols + 1) * pad, top + rows * ch + (rows + 1) * pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(header):
        x0 = left + pad + c * (cw + pad)
        for i, line in enumerate(lines):
            offset = max(0, (cw - _text_width(font, line)) // 2)
            draw.text((x0 + offset, margin + i * line_height), line, fill="black", font=font)
    for r in range(rows):
        y0 = top + pad + r * (ch + pad)
        if row_labels is not None:
            lines = row_labels[r].split("\n")
            y_text = y0 + max(0, (ch - len(lines) * line_height) // 2)
            for i, line in enumerate(lines):
                draw.text((margin, y_text + i * line_height), line, fill="black", font=font)
        for c, picture in enumerate(pictures):
            tile = Image.fromarray(np.ascontiguousarray(picture[r]))
            if (ch, cw) != (height, width):
                tile = tile.resize((cw, ch), _NEAREST)
            canvas.paste(tile, (left + pad + c * (cw + pad), y0))
    if path is not None:
        canvas.save(path, format="PNG")
    return canvas
