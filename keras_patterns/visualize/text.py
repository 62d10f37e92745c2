"""Token heat maps: one coloured box per token, as a PNG picture (Pillow) or a
self-contained HTML page.

A token's colour is the colour :func:`~keras_patterns.visualize.heatmap` gives its
relevance: the same tables (``"bwr"``: zero white, positive red, negative blue) on a scale
symmetric around zero, per sample unless ``scale="shared"``. Padding tokens (``mask`` 0) do
not count for the scale and are left out (``padding="skip"``) or drawn gray
(``padding="grey"``, :data:`PAD_COLOR`).
"""

import html
import numbers

import numpy as np

from .batches import check_batch
from .grid import _font, _line_height, _text_width
from .pictures import _REDUCTIONS, _option, _reduce_channels, heatmap

PAD_COLOR = (216, 216, 216)  # a padding token drawn with padding="grey"
BORDER_COLOR = (160, 160, 160)  # the outline of every box, so that a zero (white) one shows
_PADDINGS = ("skip", "grey")

# the PNG's layout, in pixels
MARGIN = 6  # around the picture
BOX_PAD = (4, 3)  # text inside its box: left/right, top/bottom
BOX_GAP = 3  # between boxes, horizontally and vertically
SAMPLE_GAP = 10  # between samples


def _tokens_and_values(tokens, relevance, mask):
    """(tokens as lists of str, relevance as float64 (N, T) or (N, T, D), keep (N, T))."""
    values = check_batch(relevance, "relevance", images=False).astype(np.float64)
    if values.ndim not in (2, 3):
        raise ValueError(f"relevance must be shaped (N, tokens) or (N, tokens, dims); got "
                         f"shape {values.shape}.")
    n, length = values.shape[:2]
    if mask is None:
        keep = np.ones((n, length), dtype=bool)
    else:
        keep = check_batch(mask, "mask", images=False) != 0
        if keep.shape != (n, length):
            raise ValueError(f"mask must be shaped like relevance's (N, tokens) = "
                             f"{(n, length)}; got shape {keep.shape}.")
    if tokens is None:
        return None, values, keep
    if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__len__") or len(tokens) != n:
        got = type(tokens).__name__ if not hasattr(tokens, "__len__") else len(tokens)
        raise ValueError(f"tokens must be a list of {n} token lists (one per sample of "
                         f"relevance, shape {values.shape}); got {got}.")
    rows = []
    for i, row in enumerate(tokens):
        if isinstance(row, (str, bytes)) or len(row) != length:
            got = "a string" if isinstance(row, (str, bytes)) else f"{len(row)} tokens"
            raise ValueError(f"tokens[{i}] must list {length} tokens (relevance has shape "
                             f"{values.shape}); got {got}.")
        rows.append([str(token) for token in row])
    return rows, values, keep


def _colors(values, keep, scale, reduce, cmap):
    """uint8 (N, T, 3): heatmap's colour of each token; padding tokens PAD_COLOR."""
    _option(reduce, "reduce", _REDUCTIONS)
    spread = keep if values.ndim == 2 else keep[..., None]
    colors = heatmap(np.where(spread, values, 0.0)[:, None], scale=scale, reduce=reduce,
                     cmap=cmap)[:, 0]
    colors[~keep] = PAD_COLOR
    return colors


def token_colors(relevance, mask=None, *, scale="sample", reduce="sum", cmap="bwr"):
    """The colour of each token's relevance, as :func:`heatmap` colours a pixel.

    Args:
        relevance: ``(N, T)`` one value per token, or ``(N, T, D)`` (reduced over ``D`` as
            ``heatmap`` reduces channels).
        mask: optional ``(N, T)``: nonzero for real tokens, 0 for padding (left out of the
            scale and coloured :data:`PAD_COLOR`).
        scale: ``"sample"`` or ``"shared"`` (see :func:`heatmap`).
        reduce: ``"sum"`` or ``"max_abs"`` (see :func:`heatmap`).
        cmap: a table name or ``(K, 3)`` anchors (see :func:`heatmap`).

    Returns:
        uint8 array ``(N, T, 3)``, RGB.

    Raises:
        ValueError: a bad rank, non-finite values, a mask of another shape, or a bad
            ``scale``, ``reduce`` or ``cmap``.
    """
    _, values, keep = _tokens_and_values(None, relevance, mask)
    return _colors(values, keep, scale, reduce, cmap)


def _ink(color):
    """Black text on light boxes, white on dark ones (luma below one half)."""
    r, g, b = (int(c) for c in color)
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b >= 128 else (255, 255, 255)


def _titles(titles, predictions, n):
    if titles is None:
        titles = [f"sample {i}" for i in range(n)]
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"titles must have {n} entries (one per sample), got {len(titles)}.")
    if predictions is None:
        return titles
    predictions = list(predictions)
    if len(predictions) != n:
        raise ValueError(f"predictions must have {n} entries (one per sample), got "
                         f"{len(predictions)}.")
    out = []
    for title, prediction in zip(titles, predictions):
        if prediction is None:
            out.append(title)
            continue
        label, score = prediction
        out.append(f"{title}: predicted {label} (score {float(score):.4g})")
    return out


def _title_lines(font, text, width):
    """Words of ``text`` on lines no wider than ``width`` (a longer word gets its own line)."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if line and _text_width(font, candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line]


def _prepare(tokens, relevance, mask, titles, predictions, padding, scale, reduce, cmap):
    _option(padding, "padding", _PADDINGS)
    rows, values, keep = _tokens_and_values(tokens, relevance, mask)
    colors = _colors(values, keep, scale, reduce, cmap)
    reduced = values if values.ndim == 2 else _reduce_channels(values, reduce)
    shown = keep | (padding == "grey")
    return rows, reduced, keep, shown, colors, _titles(titles, predictions, len(rows))


_STYLE = """body { font-family: sans-serif; margin: 1.5em; line-height: 2.2; }
h1 { font-size: 1.2em; }
h2 { font-size: 1em; margin: 1.2em 0 0.2em 0; }
p.legend { color: #555; font-size: 0.9em; }
span.token { padding: 0.15em 0.3em; margin: 0 0.1em; border: 1px solid #a0a0a0;
  border-radius: 0.25em; white-space: pre; }
span.pad { color: #777; }"""


def token_html(tokens, relevance, mask=None, *, titles=None, predictions=None,
               padding="skip", scale="sample", reduce="sum", cmap="bwr", title="Relevance",
               path=None):
    """A self-contained HTML page (inline CSS, no scripts) with each token on its colour.

    Each sample is a ``<h2>`` title and a paragraph of ``<span class="token">`` elements whose
    ``background-color`` is :func:`token_colors`'s colour (``#rrggbb``); the text is black on
    light colours, white on dark ones; hovering shows the token's value. Tokens are
    HTML-escaped.

    Args:
        tokens: ``N`` lists of ``T`` strings, the tokens of each sample.
        relevance: ``(N, T)`` or ``(N, T, D)`` (see :func:`token_colors`).
        mask: optional ``(N, T)``, nonzero for real tokens, 0 for padding.
        titles: ``N`` titles (default ``"sample i"``).
        predictions: optional ``N`` pairs ``(class, score)`` (or None) added to the titles as
            ``"predicted CLASS (score S)"``.
        padding: ``"skip"`` (padding tokens left out) or ``"grey"`` (shown gray).
        scale: ``"sample"`` or ``"shared"``.
        reduce: ``"sum"`` or ``"max_abs"``, for ``(N, T, D)``.
        cmap: a table name or ``(K, 3)`` anchors.
        title: the page's title.
        path: if given, the page is also written there (UTF-8).

    Returns:
        str: the page.

    Raises:
        ValueError: tokens that do not match ``relevance``, non-finite values, or a bad
            option.
    """
    rows, reduced, keep, shown, colors, heads = _prepare(
        tokens, relevance, mask, titles, predictions, padding, scale, reduce, cmap)
    scale_text = ("one scale for all samples" if scale == "shared"
                  else "each sample on its own scale")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(str(title))}</title>", f"<style>\n{_STYLE}\n</style>",
             "</head><body>", f"<h1>{html.escape(str(title))}</h1>",
             '<p class="legend">red: positive relevance, blue: negative, white: zero; '
             f"{scale_text}, symmetric around zero (&plusmn;max |r|).</p>"]
    for i, row in enumerate(rows):
        m = np.abs(reduced[i][keep[i]]).max(initial=0.0)
        parts.append(f"<section><h2>{html.escape(heads[i])}</h2>")
        parts.append(f'<p class="legend">max |r| = {m:.4g}</p><p>')
        spans = []
        for j, token in enumerate(row):
            if not shown[i, j]:
                continue
            color = "#{:02x}{:02x}{:02x}".format(*colors[i, j])
            ink = "#{:02x}{:02x}{:02x}".format(*_ink(colors[i, j]))
            kind = "token" if keep[i, j] else "token pad"
            spans.append(f'<span class="{kind}" style="background-color: {color}; color: '
                         f'{ink}" title="r = {reduced[i, j]:.4g}">{html.escape(token)}</span>')
        parts.append(" ".join(spans))
        parts.append("</p></section>")
    parts.append("</body></html>")
    page = "\n".join(parts) + "\n"
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return page


def token_boxes(tokens, relevance, mask=None, *, titles=None, predictions=None,
                padding="skip", width=640):
    """The layout of :func:`token_image`: where each title line and token box goes.

    Tokens flow left to right in boxes ``text width + 2 * BOX_PAD[0]`` wide and ``line
    height + 2 * BOX_PAD[1]`` high, ``BOX_GAP`` apart; a box that would pass ``width -
    MARGIN`` starts a new line (a token wider than the line gets a line of its own, and
    the picture widens). Each sample starts with its title (wrapped between words) and ends
    ``SAMPLE_GAP`` above the next.

    Args:
        tokens: ``N`` lists of ``T`` strings.
        relevance: ``(N, T)`` or ``(N, T, D)``.
        mask: optional ``(N, T)``, nonzero for real tokens.
        titles: ``N`` titles (default ``"sample i"``).
        predictions: optional ``N`` pairs ``(class, score)``.
        padding: ``"skip"`` or ``"grey"``.
        width: the picture's width in pixels (at least 64).

    Returns:
        dict: ``"size"`` (width, height), ``"titles"`` a list of ``(x, y, line)`` and
        ``"boxes"`` a list of ``(sample, token, (x0, y0, x1, y1))``, corners inclusive.
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 64:
        raise ValueError(f"width must be an int of at least 64 pixels, got {width!r}")
    rows, _, _, shown, _, heads = _prepare(tokens, relevance, mask, titles, predictions,
                                           padding, "sample", "sum", "bwr")
    font = _font()
    line = _line_height(font)
    box_h = line + 2 * BOX_PAD[1]
    right = width - MARGIN
    layout = {"titles": [], "boxes": []}
    widest, y = width, MARGIN
    for i, row in enumerate(rows):
        for text in _title_lines(font, heads[i], right - MARGIN):
            layout["titles"].append((MARGIN, y, text))
            widest = max(widest, MARGIN + _text_width(font, text) + MARGIN)
            y += line
        y += BOX_GAP
        x = MARGIN
        for j, token in enumerate(row):
            if not shown[i, j]:
                continue
            box_w = _text_width(font, token) + 2 * BOX_PAD[0]
            if x > MARGIN and x + box_w > right:
                x, y = MARGIN, y + box_h + BOX_GAP
            layout["boxes"].append((i, j, (x, y, x + box_w - 1, y + box_h - 1)))
            widest = max(widest, x + box_w + MARGIN)
            x += box_w + BOX_GAP
        y += box_h + SAMPLE_GAP
    layout["size"] = (widest, y - SAMPLE_GAP + MARGIN)
    return layout


def token_image(tokens, relevance, mask=None, *, titles=None, predictions=None,
                padding="skip", scale="sample", reduce="sum", cmap="bwr", width=640,
                path=None):
    """Draws tokens as coloured boxes, a sample after the other (Pillow's default font).

    Each box is filled with :func:`token_colors`'s colour, outlined in
    :data:`BORDER_COLOR` and holds its token in black (white on dark colours); the layout
    is :func:`token_boxes`'s, on white.

    Args:
        tokens: ``N`` lists of ``T`` strings.
        relevance: ``(N, T)`` or ``(N, T, D)``.
        mask: optional ``(N, T)``, nonzero for real tokens, 0 for padding.
        titles: ``N`` titles (default ``"sample i"``).
        predictions: optional ``N`` pairs ``(class, score)`` added to the titles.
        padding: ``"skip"`` or ``"grey"``.
        scale: ``"sample"`` or ``"shared"``.
        reduce: ``"sum"`` or ``"max_abs"``, for ``(N, T, D)``.
        cmap: a table name or ``(K, 3)`` anchors.
        width: the picture's width in pixels (a longer text wraps).
        path: if given, the picture is also written there as PNG.

    Returns:
        PIL.Image.Image in RGB mode.
    """
    from PIL import Image, ImageDraw

    rows, _, _, _, colors, _ = _prepare(tokens, relevance, mask, titles, predictions, padding,
                                        scale, reduce, cmap)
    layout = token_boxes(tokens, relevance, mask, titles=titles, predictions=predictions,
                         padding=padding, width=width)
    font = _font()
    canvas = Image.new("RGB", layout["size"], "white")
    draw = ImageDraw.Draw(canvas)
    for x, y, text in layout["titles"]:
        draw.text((x, y), text, fill="black", font=font)
    for i, j, (x0, y0, x1, y1) in layout["boxes"]:
        color = tuple(int(c) for c in colors[i, j])
        draw.rectangle((x0, y0, x1, y1), fill=color, outline=BORDER_COLOR)
        draw.text((x0 + BOX_PAD[0], y0 + BOX_PAD[1]), rows[i][j], fill=_ink(color), font=font)
    if path is not None:
        canvas.save(path, format="PNG")
    return canvas
