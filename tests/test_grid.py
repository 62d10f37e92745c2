"""keras_patterns.visualize.grid: the cells, labels and layout of the picture, pixel for pixel.

The oracles are those of test_visualize (the blue-white-red table, the paper's signal display
x / (2 max|x|) + 1/2, min..max rescaling of images, uint8 conversion by rounding half up) and
grid's layout as its docstring states it: white padding, a label band above and left of the
cells, titles wrapped after their dots.
"""

import math

import numpy as np
import pytest
from PIL import Image, ImageFont
from test_visualize import bwr, to_uint8, upscale

from keras_patterns import visualize as vis


def line_height(font):
    """Ascent + descent of a FreeType font; the bottom of "Ag" for Pillow's bitmap font."""
    return sum(font.getmetrics()) if hasattr(font, "getmetrics") else font.getbbox("Ag")[3]


def digit_like(n, h=4, w=4, channels=1, low=0.0, high=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(n, h, w, channels))


def cell_at(picture, r, c, ch, cw, pad, left=0, top=0):
    x0 = left + pad + c * (cw + pad)
    y0 = top + pad + r * (ch + pad)
    return picture[y0 : y0 + ch, x0 : x0 + cw]


def test_grid_size_and_cells():
    n, h, w, factor, pad = 3, 4, 5, 6, 2
    rng = np.random.default_rng(1)
    images = rng.uniform(-2.0, 7.0, size=(n, h, w, 1))
    relevance = rng.normal(size=(n, h, w, 1))
    gradient = rng.normal(size=(n, h, w, 1))
    picture = vis.grid(
        images,
        {"lrp.epsilon": relevance, "gradient": gradient},
        col_labels=False,
        cell=(h * factor, w * factor),
        pad=pad,
    )
    assert isinstance(picture, Image.Image) and picture.mode == "RGB"
    ch, cw, cols = h * factor, w * factor, 3
    assert picture.size == (cols * cw + (cols + 1) * pad, n * ch + (n + 1) * pad)
    pixels = np.asarray(picture)
    for r in range(n):
        # column 0: the image rescaled from its own min..max, gray
        img = images[r, :, :, 0]
        gray = to_uint8(255.0 * (img - img.min()) / (img.max() - img.min()))
        np.testing.assert_array_equal(
            cell_at(pixels, r, 0, ch, cw, pad), upscale(np.stack([gray] * 3, -1), factor)
        )
        # column 1: LRP is an attribution -> heat map, per-sample scale
        v = relevance[r, :, :, 0]
        np.testing.assert_array_equal(
            cell_at(pixels, r, 1, ch, cw, pad), upscale(to_uint8(bwr(v / np.abs(v).max())), factor)
        )
        # column 2: the gradient is a signal -> x / (2 max|x|) + 1/2, gray
        g = gradient[r, :, :, 0]
        shown = to_uint8(255.0 * (g / (2 * np.abs(g).max()) + 0.5))
        np.testing.assert_array_equal(
            cell_at(pixels, r, 2, ch, cw, pad), upscale(np.stack([shown] * 3, -1), factor)
        )
    # the padding is white
    assert (pixels[:pad] == 255).all() and (pixels[:, :pad] == 255).all()


def test_grid_labels_layout_and_png(tmp_path):
    n, h, pad, cell = 2, 8, 2, 64
    images = digit_like(n, h, h)
    explanations = [
        ("lrp.z", digit_like(n, h, h, seed=1) - 0.5),
        ("pattern.net", digit_like(n, h, h, seed=2)),
    ]
    row_labels = ["y=3 p=3", "y=10 p=1"]
    path = tmp_path / "grid.png"
    picture = vis.grid(images, explanations, row_labels=row_labels, path=path, cell=cell, pad=pad)
    font = ImageFont.load_default()
    left = max(math.ceil(font.getlength(t)) for t in row_labels) + 6
    top = line_height(font) + 6  # the labels "input", "lrp.z", "pattern.net" fit 64 px
    assert picture.size == (left + 3 * cell + 4 * pad, top + n * cell + (n + 1) * pad)
    pixels = np.asarray(picture)
    # pattern.net is a signal: project, cell (1, 2)
    p = explanations[1][1][1, :, :, 0]
    shown = to_uint8(255.0 * (p / (2 * np.abs(p).max()) + 0.5))
    np.testing.assert_array_equal(
        cell_at(pixels, 1, 2, cell, cell, pad, left, top),
        upscale(np.stack([shown] * 3, -1), cell // h),
    )
    # text is drawn in the label bands (dark pixels), nowhere else outside the cells
    assert pixels[:top, left:].min() < 128 and pixels[top:, :left].min() < 128
    # the PNG holds exactly the returned picture
    with Image.open(path) as reread:
        assert reread.format == "PNG"
        np.testing.assert_array_equal(np.asarray(reread.convert("RGB")), pixels)


@pytest.mark.parametrize("n", [1, 5])
def test_grid_rgb_channels_first_any_range(n):
    h, w, factor = 3, 4, 2
    rgb_last = digit_like(n, h, w, channels=3, low=0.0, high=255.0, seed=n)
    rgb_first = np.transpose(rgb_last, (0, 3, 1, 2))
    e_last = digit_like(n, h, w, channels=3, low=-1.0, high=1.0, seed=n + 1)
    e_first = np.transpose(e_last, (0, 3, 1, 2))
    kwargs = {"col_labels": False, "cell": (h * factor, w * factor), "pad": 1}
    a = vis.grid(rgb_last, {"guided_backprop": e_last, "lrp.epsilon": e_last}, **kwargs)
    b = vis.grid(
        rgb_first,
        {"guided_backprop": e_first, "lrp.epsilon": e_first},
        channels_first=True,
        **kwargs,
    )
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    pixels = np.asarray(a)
    assert a.size == (3 * w * factor + 4, n * h * factor + (n + 1))
    for r in range(n):
        img = rgb_last[r]
        expected = to_uint8(255.0 * (img - img.min()) / (img.max() - img.min()))
        np.testing.assert_array_equal(
            cell_at(pixels, r, 0, h * factor, w * factor, 1), upscale(expected, factor)
        )
        e = e_last[r]
        shown = to_uint8(255.0 * (e / (2 * np.abs(e).max()) + 0.5))  # colour signal
        np.testing.assert_array_equal(
            cell_at(pixels, r, 1, h * factor, w * factor, 1), upscale(shown, factor)
        )
        s = e.sum(-1)
        heat = to_uint8(bwr(s / np.abs(s).max()))
        np.testing.assert_array_equal(
            cell_at(pixels, r, 2, h * factor, w * factor, 1), upscale(heat, factor)
        )


def test_grid_styles_override_and_default_cell():
    images = digit_like(2, 8, 8)
    e = digit_like(2, 8, 8, seed=3) - 0.5
    picture = vis.grid(images, {"gradient": e}, col_labels=False, styles={"gradient": "graymap"})
    # the former name of styles still works
    same = vis.grid(images, {"gradient": e}, col_labels=False, kinds={"gradient": "graymap"})
    np.testing.assert_array_equal(np.asarray(same), np.asarray(picture))
    # default cell: 8 x round(96 / 8) = 96
    assert picture.size == (2 * 96 + 3 * 2, 2 * 96 + 3 * 2)
    g = np.abs(e[0, :, :, 0])
    gray = to_uint8(255.0 * g / g.max())
    np.testing.assert_array_equal(
        cell_at(np.asarray(picture), 0, 1, 96, 96, 2), upscale(np.stack([gray] * 3, -1), 12)
    )
    # scale="shared": one divisor for the whole column, here that of sample 1
    e[1] *= 10.0
    shared = np.asarray(vis.grid(images, {"lrp.z": e}, col_labels=False, cell=8, scale="shared"))
    m = np.abs(e).max()
    for r in range(2):
        np.testing.assert_array_equal(
            cell_at(shared, r, 1, 8, 8, 2), to_uint8(bwr(e[r, :, :, 0] / m))
        )


@pytest.mark.parametrize("cell,lines", [
    (48, ["lrp.", "alpha_2_", "beta_1"]),
    (100, ["lrp.alpha_2_beta_1"]),
])
def test_grid_titles_keep_their_dots_when_wrapped(cell, lines):
    """A title wider than its cell is broken after its dot, which ends the line; the header
    holds exactly those lines, drawn centred as the docstring says."""
    from PIL import ImageDraw

    font = ImageFont.load_default()
    name = "lrp.alpha_2_beta_1"
    assert (math.ceil(font.getlength(name)) <= cell) == (len(lines) == 1)
    picture = vis.grid(np.zeros((1, 4, 4)), {name: np.ones((1, 4, 4))}, cell=cell, pad=2)
    height = line_height(font)
    top = len(lines) * height + 6
    want = Image.new("RGB", (picture.width, top), "white")
    draw = ImageDraw.Draw(want)
    for column, column_lines in enumerate([["input"], lines]):
        x0 = 2 + column * (cell + 2)
        for i, line in enumerate(column_lines):
            offset = max(0, (cell - math.ceil(font.getlength(line))) // 2)
            draw.text((x0 + offset, 3 + i * height), line, fill="black", font=font)
    assert picture.height == top + cell + 2 * 2
    np.testing.assert_array_equal(np.asarray(picture)[:top], np.asarray(want))
