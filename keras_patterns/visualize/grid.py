"""Labelled grids of images and their explanations (Pillow)."""

import math
import numbers

import numpy as np

from .pictures import (
    _REDUCTIONS,
    _SCALES,
    STYLES,
    _batch,
    _color_table,
    _image_pixels,
    _option,
    graymap,
    heatmap,
    project,
    style_of,
)

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


def _pieces(text, breaks):
    """``text`` cut after each character in ``breaks`` (which stays with its piece)."""
    pieces, piece = [], ""
    for char in text:
        piece += char
        if char in breaks:
            pieces.append(piece)
            piece = ""
    return pieces + [piece] if piece or not pieces else pieces


def _wrap(font, text, width):
    """Splits text into lines no wider than ``width``. A line that does not fit is broken
    after each '.' (the dot ends its line: ``lrp.`` / ``alpha_2_beta_1``), and each part
    that still does not fit after '_', '-' or spaces, or between characters."""
    lines = []
    for paragraph in str(text).split("\n"):
        if _text_width(font, paragraph) <= width:
            lines.append(paragraph)
            continue
        for part in _pieces(paragraph, "."):
            line = ""
            for piece in _pieces(part, "_- "):
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
    styles=None,
    kinds=None,
    channels_first=False,
    scale="sample",
    reduce="sum",
    cmap="bwr",
    pad=2,
):
    """Draws one row per image: the image, then its explanation by each method.

    The first column shows each image rescaled from its min..max (any input range). Each
    further column shows one method in its style: a method that returns a signal
    (:func:`signal_methods`: ``input``, ``gradient``, ``smoothgrad``, ``deconvnet``,
    ``guided_backprop``, ``pattern.net`` and any registered since) with :func:`project`,
    every other method with :func:`heatmap`; ``styles`` overrides this per method.
    Pictures are enlarged to ``cell`` with nearest-neighbour resampling, so an integer
    factor repeats every pixel as a block.

    Layout (white background, black text in Pillow's default font): with ``R`` images,
    ``K`` methods and pictures ``(ch, cw)``, the picture of row ``r`` and column ``c``
    (column 0 the image) has its top-left corner at
    ``(x, y) = (L + pad + c (cw + pad), T + pad + r (ch + pad))`` and the whole picture is
    ``L + (K + 1) cw + (K + 2) pad`` wide and ``T + R ch + (R + 1) pad`` high. ``L`` is 0
    without row labels, else the widest row label plus 6 pixels; ``T`` is 0 without column
    labels, else the largest number of lines a column label takes (a label wider than
    ``cw`` is broken after its dots, each dot ending a line, and each part wrapped after
    '_', '-' or spaces) times the font's line height (ascent + descent) plus 6 pixels.

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
        styles: optional ``{method name: "heatmap" | "project" | "graymap"}`` overriding the
            choice above.
        kinds: the former name of ``styles``.
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
            differs from the images, non-finite values, wrong label counts, unknown styles
            or methods in ``styles``, or a bad ``cell``, ``pad``, ``scale``, ``reduce`` or
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
    given = "styles" if kinds is None else "kinds"
    if styles is not None and kinds is not None:
        raise ValueError("give styles or kinds (its former name), not both")
    styles = styles if kinds is None else kinds
    if styles is not None and not isinstance(styles, dict):
        raise ValueError(
            f"{given} must be a dict {{method name: style}}, got {type(styles).__name__}")
    styles = dict(styles or {})
    unknown = sorted(set(styles) - set(names))
    if unknown:
        raise ValueError(
            f"{given} names methods not in explanations: {unknown} (methods: {names})")
    for name, batch in items:
        style = styles.get(name) or style_of(name)
        _option(style, f"{given}[{name!r}]", STYLES)
        label = f"explanations[{name!r}]"
        x = _batch(batch, label, channels_first, channels=(1, 3) if style == "project" else None)
        if x.shape[:3] != (rows, height, width):
            raise ValueError(
                f"{label} has shape {np.shape(batch)}: expected {rows} samples of "
                f"{height}x{width} like images (shape {np.shape(images)})"
            )
        if style == "heatmap":
            picture = heatmap(x, scale=scale, reduce=reduce, cmap=cmap)
        elif style == "graymap":
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
