"""keras_patterns.visualize: pixels checked against formulas written out here.

The oracles: the blue-white-red table (t >= 0: (255, 255 (1 - t), 255 (1 - t)); t < 0:
(255 (1 + t), 255 (1 + t), 255)), the paper's signal display x / (2 max|x|) + 1/2, min..max
rescaling of images, and uint8 conversion by rounding half up, floor(u + 0.5). Every
expected value below is computed from these by hand or by the small helpers in this file,
never by the module itself.
"""

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from keras_patterns import visualize as vis

ROOT = Path(__file__).resolve().parents[1]


def to_uint8(u):
    return np.floor(np.asarray(u, dtype=np.float64) + 0.5).astype(np.uint8)


def bwr(t):
    """The blue-white-red colour of t in [-1, 1], as floats in [0, 255]."""
    t = np.asarray(t, dtype=np.float64)
    r = np.where(t >= 0, 255.0, 255.0 * (1 + t))
    g = np.where(t >= 0, 255.0 * (1 - t), 255.0 * (1 + t))
    b = np.where(t >= 0, 255.0 * (1 - t), 255.0)
    return np.stack([r, g, b], axis=-1)


def expected_heatmap(values, m):
    """values (N, H, W) already reduced, m the divisor per sample (N,)."""
    m = np.where(np.asarray(m) > 0, m, 1.0)
    return to_uint8(bwr(values / np.asarray(m, dtype=np.float64)[:, None, None]))


def line_height(font):
    """Ascent + descent of a FreeType font; the bottom of "Ag" for Pillow's bitmap font."""
    return sum(font.getmetrics()) if hasattr(font, "getmetrics") else font.getbbox("Ag")[3]


def upscale(picture, factor):
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


# --------------------------------------------------------------------------------------
# heatmap


def test_heatmap_of_known_values():
    e = np.array([[[1.0, -0.5], [0.25, 0.0]]])  # (1, 2, 2): max |v| = 1
    expected = np.array(
        [[[[255, 0, 0], [128, 128, 255]], [[255, 191, 191], [255, 255, 255]]]], dtype=np.uint8
    )  # -0.5: 255 * 0.5 = 127.5 -> 128; 0.25: 255 * 0.75 = 191.25 -> 191
    out = vis.heatmap(e)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(out, expected)
    # scaling a sample does not change its picture; the rank-4 one-channel form is the same
    np.testing.assert_array_equal(vis.heatmap(-3.0 * e), expected[..., ::-1])  # red <-> blue
    np.testing.assert_array_equal(vis.heatmap(4.0 * e[..., None]), expected)


def test_heatmap_sample_and_shared_scale():
    a = np.array([[0.2, -0.8], [0.4, 0.1]])
    e = np.stack([a, 0.25 * a])  # two samples, magnitudes differ by 4
    per_sample = vis.heatmap(e, scale="sample")
    np.testing.assert_array_equal(per_sample, expected_heatmap(e, [0.8, 0.2]))
    np.testing.assert_array_equal(per_sample[0], per_sample[1])
    shared = vis.heatmap(e, scale="shared")
    np.testing.assert_array_equal(shared, expected_heatmap(e, [0.8, 0.8]))
    np.testing.assert_array_equal(shared[0], per_sample[0])
    assert not np.array_equal(shared[1], per_sample[1])
    # pixel (0, 1) of the smaller sample: t = -0.2 / 0.8 = -0.25 -> (191.25, 191.25, 255)
    np.testing.assert_array_equal(shared[1, 0, 1], [191, 191, 255])


def test_heatmap_channel_reductions():
    e = np.zeros((1, 1, 3, 2))
    e[0, 0, 0] = [0.3, -0.6]  # sum -0.3, largest magnitude -0.6
    e[0, 0, 1] = [0.45, 0.4]  # sum 0.85, largest magnitude 0.45
    e[0, 0, 2] = [-0.2, 0.1]  # sum -0.1, largest magnitude -0.2
    summed = np.array([[[-0.3, 0.85, -0.1]]])
    largest = np.array([[[-0.6, 0.45, -0.2]]])
    np.testing.assert_array_equal(vis.heatmap(e), expected_heatmap(summed, [0.85]))
    np.testing.assert_array_equal(
        vis.heatmap(e, reduce="max_abs"), expected_heatmap(largest, [0.6])
    )


def test_heatmap_all_zero_sample_is_white_without_warnings():
    e = np.zeros((2, 3, 3, 3))
    e[1, 1, 1, 0] = -2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero, no invalid value
        out = vis.heatmap(e)
        shared = vis.heatmap(np.zeros((2, 3, 3)), scale="shared")
    assert (out[0] == 255).all() and (shared == 255).all()
    np.testing.assert_array_equal(out[1, 1, 1], [0, 0, 255])


def test_heatmap_seismic_and_custom_tables():
    e = np.array([[[-1.0, -0.5, 0.0, 0.5, 1.0, 0.25]]])
    seismic = vis.heatmap(e, cmap="seismic")
    # anchors at t = -1, -0.5, 0, 0.5, 1; t = 0.25 halfway between white and red
    np.testing.assert_array_equal(
        seismic[0, 0],
        [[0, 0, 77], [0, 0, 255], [255, 255, 255], [255, 0, 0], [128, 0, 0], [255, 128, 128]],
    )
    gray = vis.heatmap(e, cmap=[[0, 0, 0], [200, 200, 200]])  # t = -1 black .. +1 light gray
    np.testing.assert_array_equal(gray[0, 0, :, 0], to_uint8(100.0 * (e[0, 0] + 1.0)))


def test_channels_first_gives_the_same_pictures():
    rng = np.random.default_rng(0)
    last = rng.normal(size=(3, 5, 4, 3))
    first = np.transpose(last, (0, 3, 1, 2))  # (3, 3, 5, 4)
    np.testing.assert_array_equal(vis.heatmap(first, channels_first=True), vis.heatmap(last))
    np.testing.assert_array_equal(vis.project(first, channels_first=True), vis.project(last))
    np.testing.assert_array_equal(vis.graymap(first, channels_first=True), vis.graymap(last))
    # and the channels-last result is the oracle's
    np.testing.assert_array_equal(
        vis.heatmap(last), expected_heatmap(last.sum(-1), np.abs(last.sum(-1)).max((1, 2)))
    )


# --------------------------------------------------------------------------------------
# project, graymap, overlay


def test_project_of_a_known_array():
    x = np.array([[[2.0, -1.0], [0.0, 0.5]]])  # max |x| = 2: x / 4 + 1/2
    v = np.array([[[1.0, 0.25], [0.5, 0.625]]])
    np.testing.assert_array_equal(vis.project(x, as_float=True), v[..., None])
    out = vis.project(x)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 2, 1)
    # 255 v = 255, 63.75, 127.5, 159.375
    np.testing.assert_array_equal(out[..., 0], [[[255, 64], [128, 159]]])


def test_project_scales_per_sample_over_all_channels():
    x = np.zeros((2, 1, 2, 3))
    x[0, 0, 0] = [1.0, -4.0, 2.0]
    x[0, 0, 1] = [0.0, 0.0, 0.0]
    x[1, 0, 0] = [0.1, 0.0, -0.1]  # sample 1: max 0.1
    out = vis.project(x, as_float=True)
    np.testing.assert_allclose(out[0, 0, 0], [1 / 8 + 0.5, 0.0, 2 / 8 + 0.5])
    np.testing.assert_allclose(out[0, 0, 1], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(out[1, 0, 0], [1.0, 0.5, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = vis.project(np.zeros((1, 2, 2, 3)))
    assert (zero == 128).all()  # 127.5 rounds up


def test_graymap_of_known_values():
    e = np.zeros((1, 1, 3, 2))
    e[0, 0, 0] = [1.0, -3.0]  # |e| summed: 4
    e[0, 0, 1] = [-1.0, 0.0]  # 1
    gray = vis.graymap(e)
    assert gray.dtype == np.uint8 and gray.shape == (1, 1, 3, 3)
    expected = to_uint8(255.0 * np.array([4.0, 1.0, 0.0]) / 4.0)  # 255, 63.75 -> 64, 0
    for channel in range(3):
        np.testing.assert_array_equal(gray[0, 0, :, channel], expected)
    np.testing.assert_array_equal(vis.graymap(e, channels=1)[0, 0, :, 0], expected)
    assert (vis.graymap(np.zeros((1, 2, 2))) == 0).all()


def test_overlay_rescales_images_and_blends():
    images = np.array([[[-3.0, 5.0], [1.0, -3.0]]])  # (1, 2, 2), range -3..5
    scaled = 255.0 * (images[0] + 3.0) / 8.0  # 0, 255, 127.5, 0
    heat = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    heat[0, :, :, 0] = 200
    heat[0, 0, 0] = [10, 20, 30]
    out = vis.overlay(images, heat, alpha=0.25)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 2, 3)
    gray = to_uint8(scaled)[..., None].astype(np.float64)  # the image in pixels first
    np.testing.assert_array_equal(out[0], to_uint8(0.75 * gray + 0.25 * heat[0]))
    # an RGB image in [0, 255] and channels first: the same blend
    rgb = np.stack([images[0], 2 * images[0], -images[0]])[None]  # (1, 3, 2, 2)
    out_rgb = vis.overlay(rgb, heat, alpha=1.0, channels_first=True)
    np.testing.assert_array_equal(out_rgb, heat)
    np.testing.assert_array_equal(
        vis.overlay(images, heat, alpha=0.0)[0, :, :, 1], to_uint8(scaled)
    )


# --------------------------------------------------------------------------------------
# grid


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


# --------------------------------------------------------------------------------------
# errors


def test_errors_name_the_problem():
    good = np.zeros((2, 4, 4, 1))
    with pytest.raises(ValueError, match=r"explanations must be a batch.*\(4, 4\).*x\[None\]"):
        vis.heatmap(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"explanations must be a batch.*rank 5"):
        vis.heatmap(np.zeros((1, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match="scale must be one of"):
        vis.heatmap(good, scale="global")
    with pytest.raises(ValueError, match="reduce must be one of"):
        vis.heatmap(good, reduce="mean")
    with pytest.raises(ValueError, match="cmap must be one of"):
        vis.heatmap(good, cmap="viridis")
    with pytest.raises(ValueError, match="cmap must be a name or a"):
        vis.heatmap(good, cmap=[[0, 0, 0]])
    bad = good.copy()
    bad[1, 0, 0, 0] = np.nan
    bad[0, 1, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"explanations has 2 non-finite"):
        vis.heatmap(bad)
    with pytest.raises(ValueError, match=r"signals must have 1 or 3 channels.*\(2, 4, 4, 2\)"):
        vis.project(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="must hold real numbers"):
        vis.project(np.zeros((1, 2, 2), dtype=complex))
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        vis.graymap(good, channels=2)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        vis.overlay(good, np.zeros((2, 4, 4, 3)), alpha=1.5)
    with pytest.raises(ValueError, match=r"heatmaps must be RGB.*\(2, 4, 4, 1\)"):
        vis.overlay(good, good)
    with pytest.raises(ValueError, match=r"heatmaps shaped \(3, 4, 4, 3\) do not match"):
        vis.overlay(good, np.zeros((3, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"heatmaps must have values in \[0, 255\]"):
        vis.overlay(good, np.full((2, 4, 4, 3), 300.0))
    with pytest.raises(
        ValueError, match=r"explanations\['lrp.z'\] has shape \(3, 4, 4, 1\).*2 samples"
    ):
        vis.grid(good, {"lrp.z": np.zeros((3, 4, 4, 1))})
    with pytest.raises(ValueError, match=r"explanations\['lrp.z'\] has shape \(2, 4, 5, 1\)"):
        vis.grid(good, {"lrp.z": np.zeros((2, 4, 5, 1))})
    with pytest.raises(ValueError, match=r"explanations\['gradient'\] must have 1 or 3 channels"):
        vis.grid(good, {"gradient": np.zeros((2, 4, 4, 4))})
    with pytest.raises(ValueError, match=r"images must have 1 or 3 channels"):
        vis.grid(np.zeros((2, 4, 4, 2)), {})
    with pytest.raises(ValueError, match="images must hold at least one image"):
        vis.grid(np.zeros((0, 4, 4, 1)), {})
    with pytest.raises(ValueError, match="row_labels must have 2 entries, got 1"):
        vis.grid(good, {"lrp.z": good}, row_labels=["a"])
    with pytest.raises(ValueError, match="col_labels must have 2 entries, got 3"):
        vis.grid(good, {"lrp.z": good}, col_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"styles\['lrp.z'\] must be one of"):
        vis.grid(good, {"lrp.z": good}, styles={"lrp.z": "contour"})
    with pytest.raises(ValueError, match="styles names methods not in explanations"):
        vis.grid(good, {"lrp.z": good}, styles={"lrp.zz": "heatmap"})
    with pytest.raises(ValueError, match="styles must be a dict"):
        vis.grid(good, {"lrp.z": good}, styles=["heatmap"])
    with pytest.raises(ValueError, match=r"kinds\['lrp.z'\] must be one of"):
        vis.grid(good, {"lrp.z": good}, kinds={"lrp.z": "contour"})
    with pytest.raises(ValueError, match="pad must be a non-negative int"):
        vis.grid(good, {}, pad=-1)
    with pytest.raises(ValueError, match="cell must be a positive int"):
        vis.grid(good, {}, cell=0)
    with pytest.raises(ValueError, match="explanations must be a dict"):
        vis.grid(good, [good])


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


def test_module_needs_neither_tensorflow_nor_matplotlib():
    folder = str(ROOT / "keras_patterns" / "visualize")
    code = (
        "import importlib.util, os, sys\n"
        f"spec = importlib.util.spec_from_file_location('vis', os.path.join({folder!r}, "
        f"'__init__.py'), submodule_search_locations=[{folder!r}])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['vis'] = module\n"
        "spec.loader.exec_module(module)\n"
        "import numpy as np\n"
        "module.grid(np.ones((1, 2, 2)), {'lrp.z': np.ones((1, 2, 2))})\n"
        "bad = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
