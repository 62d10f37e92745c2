"""keras_patterns.visualize: pixels checked against formulas written out here.

The oracles: the blue-white-red table (t >= 0: (255, 255 (1 - t), 255 (1 - t)); t < 0:
(255 (1 + t), 255 (1 + t), 255)), the paper's signal display x / (2 max|x|) + 1/2, min..max
rescaling of images, and uint8 conversion by rounding half up, floor(u + 0.5). Every
expected value below is computed from these by hand or by the small helpers in this file,
never by the module itself. The tests of `grid` are in test_grid.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

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
