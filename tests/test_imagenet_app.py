"""The ImageNet classifiers (keras_patterns.zoo.imagenet), the folder reader
(keras_patterns.images) and applications/imagenet.py, offline: random weights
(weights=None), 32x32 inputs, 10 classes.

Oracles: the preprocessing modes of keras.applications as documented
(``keras.applications.imagenet_utils.preprocess_input``: "caffe" RGB -> BGR minus the
ImageNet means (103.939, 116.779, 123.68), "tf" v / 127.5 - 1, "torch" (v / 255 - mean) / std
with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); EfficientNet's
``preprocess_input`` passes the pixels through), written out below; images of known colours,
layout and EXIF orientation for the loader; known file counts; a tf.GradientTape gradient;
patterns fitted on the same images held in memory (the streamed fit must give the same
patterns); grid's documented layout for the picture the script writes.

Timing on 2 CPU cores: VGG16 at 32x32 builds in ~1 s, its pattern fit and the five methods
take ~15 s; the script in a subprocess ~12-20 s. The other families (ResNet50, MobileNetV2,
DenseNet121, EfficientNetB0: 45 s to 2 min each for two fits and four methods, mostly
tracing; ~5 min together) are marked `slow`.
"""

import math
import os
import subprocess
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageFont  # noqa: E402

import keras_patterns as kp  # noqa: E402
from applications import imagenet as app  # noqa: E402
from keras_patterns import images as reader  # noqa: E402
from keras_patterns.zoo import imagenet as zoo  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*got a zero pattern:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
CLASSES = 10

# --------------------------------------------------------------------------------------
# preprocessing: the documented formulas of keras.applications' modes


def caffe(v):
    return v[..., ::-1] - np.array([103.939, 116.779, 123.68])


def tf_mode(v):
    return v / 127.5 - 1.0


def torch_mode(v):
    return (v / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])


def identity(v):
    return v


FORMULAS = {
    "vgg16": caffe,
    "resnet50": caffe,
    "mobilenetv2": tf_mode,
    "densenet121": torch_mode,
    "efficientnetb0": identity,
}


def pixels(shape=(3, 5, 6, 3), seed=0):
    images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    images[0, 0, 0] = (0, 0, 0)  # the ends of the range
    images[0, 0, 1] = (255, 255, 255)
    return images


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_preprocess_is_the_documented_formula(name):
    images = pixels()
    expected = FORMULAS[name](images.astype(np.float64))
    x = zoo.preprocess(name, images)
    assert x.dtype == np.float32 and x.shape == images.shape
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=2e-5)
    as_float = images.astype(np.float32)
    zoo.preprocess(name, as_float)  # keras' preprocess_input works in place on floats
    np.testing.assert_array_equal(as_float, images)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_unpreprocess_inverts_each_mode(name):
    images = pixels()
    # the inverse of the float64 formula: exact up to float64 round-off
    back = zoo.unpreprocess(name, FORMULAS[name](images.astype(np.float64)))
    np.testing.assert_allclose(back, images, rtol=0, atol=1e-9)
    # through the float32 inputs the model sees: within float32 round-off, exact as uint8
    through = zoo.unpreprocess(name, zoo.preprocess(name, images))
    np.testing.assert_allclose(through, images, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(np.rint(through), images)
    again = zoo.unpreprocess(name, zoo.preprocess(name, images), as_uint8=True)
    assert again.dtype == np.uint8
    np.testing.assert_array_equal(again, images)


def test_names_and_channel_order_for_display():
    for alias in ("VGG16", "vgg_16", "MobileNet-V2", "mobilenet_v2", "DenseNet121"):
        zoo.family(alias)
    with pytest.raises(ValueError, match="choose one of vgg16, resnet50"):
        zoo.family("alexnet")
    e = np.arange(2 * 2 * 2 * 3, dtype=np.float64).reshape(2, 2, 2, 3)
    np.testing.assert_array_equal(zoo.to_rgb("vgg16", e)[..., 0], e[..., 2])  # BGR -> RGB
    np.testing.assert_array_equal(zoo.to_rgb("resnet50", e)[..., 2], e[..., 0])
    for name in ("mobilenetv2", "densenet121", "efficientnetb0"):
        np.testing.assert_array_equal(zoo.to_rgb(name, e), e)
    with pytest.raises(ValueError, match=r"RGB images \(N, H, W, 3\)"):
        zoo.preprocess("vgg16", np.zeros((2, 4, 4)))


# --------------------------------------------------------------------------------------
# the folder loader


def write_folder(folder):
    """7 images of various sizes, modes and formats, a text file, a subfolder image."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    sizes = [(40, 50), (64, 33), (32, 32), (100, 80), (45, 45), (37, 70), (33, 90)]
    modes = ["RGB", "L", "RGBA", "P", "RGB", "L", "RGB"]
    for i, ((h, w), mode) in enumerate(zip(sizes, modes)):
        picture = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
        if i % 2 and mode not in ("RGBA", "P"):
            picture.save(folder / f"img{i}.JPG", quality=90)
        else:
            picture.save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir(exist_ok=True)
    Image.new("RGB", (20, 30), "white").save(folder / "sub" / "deeper.jpeg")
    return 7


def test_load_folder_streams_every_image_at_the_size(tmp_path):
    count = write_folder(tmp_path)
    batches = reader.load_folder(tmp_path, 24, batch_size=3)
    assert isinstance(batches, types.GeneratorType)
    shapes = [b.shape for b in batches]
    assert shapes == [(3, 24, 24, 3), (3, 24, 24, 3), (1, 24, 24, 3)]
    assert sum(s[0] for s in shapes) == count
    deep = list(reader.load_folder(tmp_path, (16, 20), batch_size=5, recursive=True))
    assert [b.shape for b in deep] == [(5, 16, 20, 3), (3, 16, 20, 3)]
    assert all(b.dtype == np.uint8 for b in deep)
    limited = list(reader.load_folder(tmp_path, 8, batch_size=4, limit=5, with_paths=True))
    assert [len(p) for _, p in limited] == [4, 1]
    assert [p.name for _, names in limited for p in names] == [
        "img0.png", "img1.JPG", "img2.png", "img3.png", "img4.png"]


def test_load_folder_reads_one_batch_at_a_time(tmp_path, monkeypatch):
    write_folder(tmp_path)
    opened = []
    original = reader.load_image
    monkeypatch.setattr(reader, "load_image",
                        lambda path, size: opened.append(path) or original(path, size))
    batches = reader.load_folder(tmp_path, 8, batch_size=2)
    assert opened == []  # nothing read before the first batch is asked for
    next(batches)
    assert len(opened) == 2
    next(batches)
    assert len(opened) == 4


def test_load_image_crops_the_centre_and_turns_by_exif(tmp_path):
    # 40 rows x 80 columns: red, then green over columns 16..63, then blue
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :16] = (255, 0, 0)
    wide[:, 16:64] = (0, 255, 0)
    wide[:, 64:] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    # shorter side 40 -> 32 (64 columns), centre 32 columns = columns 20..59 of the original
    crop = reader.load_image(tmp_path / "wide.png", 32)
    assert crop.shape == (32, 32, 3)
    np.testing.assert_array_equal(crop, np.broadcast_to(np.array([0, 255, 0], np.uint8),
                                                        (32, 32, 3)))
    # stored 32 rows x 64 columns, left half red, right half blue, EXIF orientation 6
    # ("rotate 90 degrees clockwise to display"): upright it is 64 x 32, red on top
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32] = (255, 0, 0)
    stored[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    upright = reader.load_image(tmp_path / "turned.jpg", 32).astype(int)  # rows 16..47 of 64
    top, bottom = upright[2:14].reshape(-1, 3).mean(0), upright[18:30].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50, top
    assert bottom[2] > 200 and bottom[0] < 50, bottom


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder"):
        reader.load_folder(tmp_path / "missing", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in"):
        reader.load_folder(tmp_path / "empty", 32)
    write_folder(tmp_path / "some")
    (tmp_path / "some" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        list(reader.load_folder(tmp_path / "some", 8))
    with pytest.warns(UserWarning, match="broken.png"):
        kept = list(reader.load_folder(tmp_path / "some", 8, skip_unreadable=True))
    assert sum(len(b) for b in kept) == 7
    for bad in ({"size": 0}, {"size": (8,)}, {"batch_size": 0}, {"limit": 0}):
        args = {"size": 8, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            reader.load_folder(tmp_path / "some", **args)


# --------------------------------------------------------------------------------------
# models


def test_build_checks_and_offline_failure(monkeypatch):
    with pytest.raises(ValueError, match="need input_size=224 and classes=1000"):
        zoo.build("vgg16", input_size=32)
    with pytest.raises(ValueError, match="at least 32"):
        zoo.build("vgg16", weights=None, input_size=16)
    with pytest.raises(ValueError, match="classes must be a positive int"):
        zoo.build("vgg16", weights=None, input_size=32, classes=0)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match=r"weights=None \(--weights none\)") as error:
        zoo.build("mobilenetv2")
    assert isinstance(error.value.__cause__, OSError)
    assert "network is unreachable" in str(error.value)


SMALL_METHODS = ("gradient", "guided_backprop", "pattern.net", "pattern.attribution",
                 "lrp.epsilon")


def check_family(name, folder, methods, tmp_path):
    """Build, fit over the folder, compare with an in-memory fit, explain; returns maps."""
    model = zoo.build(name, weights=None, input_size=SIZE, classes=CLASSES)
    assert model.output_shape == (None, CLASSES)
    assert model.layers[-1].activation is keras.activations.linear  # logits
    patterns = app.fit_patterns_on_folder(model, folder, batch_size=3, verbose=0)
    assert patterns.n_samples == 7  # the known number of images in the folder
    # the same batches held in memory give the same patterns
    loaded = np.concatenate(list(reader.load_folder(folder, SIZE, batch_size=7)))
    x_all = zoo.preprocess(name, loaded)
    in_memory = kp.compute_patterns(model, x_all, batch_size=3)
    assert set(patterns) == set(in_memory)
    for key in patterns:
        for array in patterns[key]:
            np.testing.assert_allclose(patterns[key][array], in_memory[key][array],
                                       rtol=1e-12, atol=1e-12)
    x = x_all[:2]
    result = app.explain(model, x, methods, patterns=patterns)
    for method, e in result.maps.items():
        assert e.shape == x.shape, method
        assert np.isfinite(e).all(), method
        assert np.abs(e).max() > 0, method
    # the gradient against a tape over the model (the max logit per sample)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        logits = model(xt, training=False)
        chosen = tf.reduce_sum(logits * tf.one_hot(tf.argmax(logits, axis=1), CLASSES))
    g = tape.gradient(chosen, xt).numpy()
    np.testing.assert_allclose(result.maps["gradient"], g, rtol=1e-4,
                               atol=1e-5 * np.abs(g).max())
    picture = app.draw(name, loaded[:2], result.maps, path=tmp_path / f"{name}.png")
    assert Image.open(tmp_path / f"{name}.png").size == picture.size
    return result


def test_vgg16_small_methods_finite(tmp_path):
    folder = tmp_path / "images"
    write_folder(folder)
    result = check_family("vgg16", folder, SMALL_METHODS, tmp_path)
    assert list(result.maps) == list(SMALL_METHODS)
    assert result.refused == {}
    with pytest.raises(ValueError, match="needs patterns"):
        app.explain(zoo.build("vgg16", weights=None, input_size=SIZE, classes=CLASSES),
                    np.zeros((1, SIZE, SIZE, 3), np.float32), ["pattern.net"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2", "densenet121", "efficientnetb0"])
def test_other_families_finite(name, tmp_path):
    folder = tmp_path / "images"
    write_folder(folder)
    # lrp.z, not lrp.epsilon: the random MobileNetV2's logits are ~1e-12, below the
    # epsilon (1e-7), which then absorbs all relevance (exact zeros, by the rule's design)
    methods = ("gradient", "guided_backprop", "pattern.attribution", "lrp.z")
    result = check_family(name, folder, methods, tmp_path)
    if name == "efficientnetb0":  # swish: Guided Backprop is defined for rectifiers only
        assert list(result.refused) == ["guided_backprop"]
        assert "swish" in result.refused["guided_backprop"]
    else:
        assert result.refused == {}
    assert set(result.maps) == set(methods) - set(result.refused)


# --------------------------------------------------------------------------------------
# the script


@pytest.mark.slow  # the script in a subprocess
def test_script_writes_a_readable_grid(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate([(50, 40), (32, 64), (48, 48), (70, 35)]):
        picture = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        picture.save(images / (f"p{i}.png" if i % 2 else f"p{i}.jpg"))
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))  # this checkout
    methods = ["gradient", "pattern.attribution"]
    done = subprocess.run(
        [sys.executable, "applications/imagenet.py", "--model", "vgg16", "--images",
         str(images), "--out", str(out), "--weights", "none", "--size", str(SIZE),
         "--classes", str(CLASSES), "--methods", *methods],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fitted the patterns on 4 images" in done.stdout
    path = out / "vgg16_grid.png"
    assert f"wrote {path}" in done.stdout
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        grid = np.asarray(picture.convert("RGB"))
    # grid's layout: cells 32 x round(96 / 32) = 96 px, pad 2, 4 rows, 1 + 2 columns; the
    # column labels fit one line, so T = line height + 6
    font = ImageFont.load_default()
    cell, pad, rows = SIZE * 3, 2, 4
    for label in ["input", *methods]:
        assert math.ceil(font.getlength(label)) <= cell
    top = sum(font.getmetrics()) + 6
    assert grid.shape[0] == top + rows * cell + (rows + 1) * pad
    left = grid.shape[1] - (3 * cell + 4 * pad)  # the row labels' margin
    assert left > 6
    # the first column: each image as loaded, stretched from its min..max, 3x enlarged
    loaded = reader.load_image(images / "p0.jpg", SIZE).astype(np.float64)
    lo, hi = loaded.min(), loaded.max()
    expected = np.floor(255 * (loaded - lo) / (hi - lo) + 0.5).astype(np.uint8)
    expected = np.repeat(np.repeat(expected, 3, axis=0), 3, axis=1)
    y0, x0 = top + pad, left + pad
    np.testing.assert_array_equal(grid[y0 : y0 + cell, x0 : x0 + cell], expected)


def test_script_refuses_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        app.main(["--model", "alexnet", "--images", str(tmp_path), "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "unknown model 'alexnet'" in capsys.readouterr().err
    # the ImageNet weights need 224 x 224: refused before anything is downloaded
    code = app.main(["--model", "vgg16", "--images", str(tmp_path), "--out", str(tmp_path),
                     "--size", "64"])
    assert code == 2
    assert "need input_size=224" in capsys.readouterr().err
    code = app.main(["--model", "vgg16", "--images", str(tmp_path / "missing"), "--out",
                     str(tmp_path), "--weights", "none", "--size", "32", "--classes", "2"])
    assert code == 2
    assert "no folder" in capsys.readouterr().err
