"""The digits CNN (keras_patterns.zoo.digits): the data, the CNN trained on it, saving, and
the command line (applications/digits.py).

Oracles: scikit-learn's bundled digits themselves (1797 images of integers 0..16, their class
counts), the true labels of the test images (accuracy recomputed here from the logits), and
the documented layout of the grid picture (its size and the input cells' pixels computed
here from the test digits).

The CNN is trained once for the module (~5 s on 2 CPU cores); the command line runs once in
a subprocess with 1 epoch (~15 s with TensorFlow's start-up).
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image, ImageFont
from sklearn.datasets import load_digits

from keras_patterns.errors import MissingExtraError, ModelFileError
from keras_patterns.loading import load_model
from keras_patterns.zoo import digits

ROOT = Path(__file__).resolve().parents[1]
GRID_FILE = "digits_grid.png"  # the picture the command line writes


@pytest.fixture(scope="module")
def data():
    return digits.load_digits_data()


@pytest.fixture(scope="module")
def trained(data):
    return digits.train_cnn(seed=0, data=data)


def test_data_shapes_ranges_and_split(data):
    x_train, y_train, x_test, y_test = data
    raw = load_digits()
    assert x_train.shape == (1347, 8, 8, 1) and x_test.shape == (450, 8, 8, 1)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    assert 0.0 == min(x_train.min(), x_test.min()) and max(x_train.max(), x_test.max()) == 1.0
    # the split is a partition of the 1797 images (as a multiset, with their labels)
    both = np.concatenate([x_train, x_test])[..., 0] * 16.0
    np.testing.assert_array_equal(both, np.round(both))  # still the integers 0..16
    rows = np.concatenate([both.reshape(len(both), -1), np.r_[y_train, y_test][:, None]], axis=1)
    original = np.concatenate([raw.images.reshape(1797, -1), raw.target[:, None]], axis=1)
    np.testing.assert_array_equal(
        rows[np.lexsort(rows.T[::-1])], original[np.lexsort(original.T[::-1])]
    )
    # stratified: every digit in the test part in proportion 0.25 (within rounding)
    counts = np.bincount(raw.target, minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    assert (np.abs(test_counts - 0.25 * counts) <= 1).all(), (test_counts, counts)
    assert set(np.unique(y_train)) == set(range(10))


def test_split_is_seeded(data):
    again = digits.load_digits_data()
    for a, b in zip(data, again):
        np.testing.assert_array_equal(a, b)
    other = digits.load_digits_data(seed=1)
    assert not np.array_equal(other[3], data[3])
    small = digits.load_digits_data(test_fraction=0.1)
    assert len(small[2]) == 180 and len(small[0]) == 1617
    with pytest.raises(ValueError, match="test_fraction"):
        digits.load_digits_data(test_fraction=1.0)


def test_cnn_architecture():
    model = digits.build_cnn()
    names = [layer.name for layer in model.layers]
    assert names == ["digits", "conv1", "conv2", "pool", "flatten", "dense", "logits"]
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
    last = model.get_layer("logits")
    assert last.activation in (keras.activations.linear, None)


def test_trained_cnn_classifies_the_test_digits(trained, data):
    model, reported = trained
    _, _, x_test, y_test = data
    logits = np.asarray(model(x_test, training=False))
    assert logits.shape == (450, 10)
    measured = float(np.mean(np.argmax(logits, axis=1) == y_test))  # against the true labels
    assert measured >= 0.95, measured
    assert reported == pytest.approx(measured)
    # logits, not probabilities: rows do not sum to 1 and take negative values
    assert (logits < 0).any() and not np.allclose(logits.sum(axis=1), 1.0)


def test_training_is_reproducible(data):
    a, acc_a = digits.train_cnn(epochs=1, seed=3, data=data)
    b, acc_b = digits.train_cnn(epochs=1, seed=3, data=data)
    assert acc_a == acc_b
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="epochs"):
        digits.train_cnn(epochs=0)


def test_save_load_round_trip(trained, data, tmp_path):
    model, _ = trained
    x_test = data[2]
    path = digits.save_model(model, tmp_path / "sub" / "cnn.keras")
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no partial file left
    loaded = load_model(path)
    np.testing.assert_array_equal(
        loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0)
    )
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match=r"\.keras"):
        digits.save_model(model, tmp_path / "cnn.h5")
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.keras")


def test_pretrained_trains_once_then_loads(trained, data, tmp_path, monkeypatch):
    model, acc = trained
    calls = []

    def fake_train(*args, **kwargs):
        calls.append(1)
        return model, acc

    monkeypatch.setattr(digits, "train_cnn", fake_train)
    first = digits.pretrained(tmp_path)
    assert calls == [1] and (tmp_path / digits.MODEL_FILE).is_file()
    second = digits.pretrained(tmp_path)
    assert calls == [1]  # loaded, not retrained
    x = data[2][:16]
    np.testing.assert_array_equal(second.predict(x, verbose=0), model.predict(x, verbose=0))
    assert first is model


@pytest.mark.slow  # trains and explains in a subprocess
def test_command_line_writes_model_and_grid(data, tmp_path):
    out = tmp_path / "out"
    methods = ["gradient", "lrp.epsilon", "pattern.attribution"]
    samples, cell = 3, 96  # every column label fits one line
    # the script imports the keras_patterns of this checkout, as the tests do
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    result = subprocess.run(
        [
            sys.executable,
            "applications/digits.py",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--samples",
            str(samples),
            "--cell",
            str(cell),
            "--methods",
            *methods,
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout
    model = load_model(out / digits.MODEL_FILE)
    _, _, x_test, y_test = data
    images = x_test[:samples]
    predicted = np.argmax(model.predict(images, verbose=0), axis=1)
    with Image.open(out / GRID_FILE) as picture:
        assert picture.format == "PNG"
        pixels = np.asarray(picture.convert("RGB"))
    # the documented layout: row labels "y=<label> p=<prediction>", one header line
    font = ImageFont.load_default()
    labels = [f"y={y} p={p}" for y, p in zip(y_test[:samples], predicted)]
    left = max(math.ceil(font.getlength(t)) for t in labels) + 6
    top = (sum(font.getmetrics()) if hasattr(font, "getmetrics") else font.getbbox("Ag")[3]) + 6
    pad, cols = 2, 1 + len(methods)
    assert pixels.shape == (
        top + samples * cell + (samples + 1) * pad,
        left + cols * cell + (cols + 1) * pad,
        3,
    )
    # the first column shows the test digits, each stretched from its min..max
    factor = cell // 8
    for r in range(samples):
        img = images[r, :, :, 0].astype(np.float64)
        gray = np.floor(255.0 * (img - img.min()) / (img.max() - img.min()) + 0.5)
        expected = np.repeat(np.repeat(gray, factor, 0), factor, 1).astype(np.uint8)
        y0, x0 = top + pad + r * (cell + pad), left + pad
        cell_pixels = pixels[y0 : y0 + cell, x0 : x0 + cell]
        for channel in range(3):
            np.testing.assert_array_equal(cell_pixels[..., channel], expected)


def test_missing_scikit_learn_is_one_sentence_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingExtraError) as error:
        digits.load_digits_data()
    message = str(error.value)
    assert "sklearn" in message and "scikit-learn" in message
    assert 'pip install "keras-patterns[demo]"' in message
    assert "\n" not in message and message.count(". ") == 0 and message.endswith(".")
