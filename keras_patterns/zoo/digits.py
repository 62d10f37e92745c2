"""Handwritten digits: a small CNN trained on scikit-learn's 8x8 digits, and its data.

Data: ``sklearn.datasets.load_digits()``, bundled with scikit-learn (nothing is downloaded):
1797 grayscale 8x8 images of the digits 0-9 with integer values 0..16 (the UCI "optical
recognition of handwritten digits" test set). ``load_digits_data`` scales them to [0, 1] and
splits them with a stratified, seeded split (every digit in the same proportion in both
parts).

Model: ``build_cnn`` builds a Keras 3 functional CNN ending in 10 logits (no softmax; the
loss uses ``from_logits=True``), so the analyzers explain the logit of the selected class.
``train_cnn`` trains it from a fixed seed; ``pretrained`` trains once and keeps the model
in a cache folder (loaded with ``keras_patterns.loading.load_model``).

    from keras_patterns.zoo import digits
    model, accuracy = digits.train_cnn()
    x_train, y_train, x_test, y_test = digits.load_digits_data()
    analyzer = keras_patterns.create_analyzer("pattern.attribution", model)
    analyzer.fit(x_train)
    heatmaps = analyzer.analyze(x_test[:8])        # (8, 8, 8, 1)

scikit-learn is an optional dependency (the demo extra); without it ``load_digits_data``
raises ``keras_patterns.errors.MissingExtraError``.
"""

import numbers
import os
from pathlib import Path

import keras
import numpy as np

from .. import loading
from ..inputs import positive_int
from .extras import require

# Input shape of the CNN: 8x8 pixels, one channel, channels last.
INPUT_SHAPE = (8, 8, 1)
# Number of classes (the digits 0-9).
NUM_CLASSES = 10
# Epochs ``train_cnn`` and ``pretrained`` use by default.
DEFAULT_EPOCHS = 10
# File name of the trained model in the output or cache folder.
MODEL_FILE = "digits_cnn.keras"


def load_digits_data(test_fraction=0.25, seed=0):
    """Loads scikit-learn's 8x8 digits, scaled to [0, 1] and split into train and test.

    Args:
        test_fraction: fraction of the 1797 images in the test part, in (0, 1).
        seed: seed of the stratified split (the same seed gives the same split).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: images float32 ``(n, 8, 8, 1)`` in [0, 1]
        (pixel value / 16) and labels int64 ``(n,)`` in 0..9.

    Raises:
        ValueError: ``test_fraction`` not strictly between 0 and 1, or too small or too
            large to hold every class in both parts.
        MissingExtraError: scikit-learn is not installed.
    """
    if not isinstance(test_fraction, numbers.Real) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    datasets = require("sklearn.datasets", "the digits data")
    split = require("sklearn.model_selection", "the digits data").train_test_split
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return x_train, y_train, x_test, y_test


def build_cnn():
    """Builds the (untrained) digits CNN: two convolutions, max pooling, two dense layers.

    Layers: ``conv1`` Conv2D(16, 3x3, same, ReLU) -> ``conv2`` Conv2D(32, 3x3, same, ReLU)
    -> ``pool`` MaxPooling2D(2x2) -> ``flatten`` -> ``dense`` Dense(64, ReLU) -> ``logits``
    Dense(10), linear. Input ``digits`` of shape (8, 8, 1).

    Returns:
        keras.Model named ``digits_cnn``, not compiled.
    """
    layers = keras.layers
    inputs = keras.Input(INPUT_SHAPE, name="digits")
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def accuracy(model, images, labels, batch_size=256):
    """Fraction of images whose largest logit is at the true label.

    Args:
        model: a model mapping images to class scores.
        images: inputs ``(n, 8, 8, 1)``.
        labels: integer labels ``(n,)``.
        batch_size: prediction batch size.

    Returns:
        float in [0, 1].
    """
    images = np.asarray(images)
    predicted = np.concatenate(
        [
            np.argmax(np.asarray(model(images[i : i + batch_size], training=False)), axis=-1)
            for i in range(0, len(images), batch_size)
        ]
    )
    return float(np.mean(predicted == np.asarray(labels)))


def train_cnn(epochs=DEFAULT_EPOCHS, seed=0, verbose=0, *, batch_size=32, data=None):
    """Trains the digits CNN from a fixed seed and measures its test accuracy.

    Adam (learning rate 3e-3), sparse categorical cross-entropy on the logits. Seeds
    Python, numpy and Keras with ``keras.utils.set_random_seed(seed)`` first, so the same
    seed and data give the same model on the same machine.

    Args:
        epochs: passes over the training images.
        seed: random seed of the weights and the batch order (the split is
            ``load_digits_data``'s default unless ``data`` is given).
        verbose: Keras ``fit`` verbosity (0 silent).
        batch_size: training batch size.
        data: ``(x_train, y_train, x_test, y_test)`` to use instead of
            ``load_digits_data()``.

    Returns:
        ``(model, test_accuracy)``: the trained, compiled model and its accuracy on the
        test images.

    Raises:
        ValueError: ``epochs`` not a positive int.
    """
    epochs = positive_int(epochs, "epochs")
    x_train, y_train, x_test, y_test = data if data is not None else load_digits_data()
    keras.utils.set_random_seed(seed)
    model = build_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        x_train, y_train, epochs=int(epochs), batch_size=batch_size, shuffle=True, verbose=verbose
    )
    return model, accuracy(model, x_test, y_test)


def save_model(model, path):
    """Saves a model as a ``.keras`` file (creating its folder; replacing atomically).

    Args:
        model: the Keras model.
        path: destination; must end in ``.keras``.

    Returns:
        pathlib.Path of the written file.

    Raises:
        ValueError: ``path`` does not end in ``.keras``.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path must end in .keras, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    try:
        model.save(partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return path


def default_cache_dir():
    """The cache folder of :func:`pretrained` when none is given.

    Returns:
        pathlib.Path: ``$KERAS_PATTERNS_CACHE`` if set, else
        ``$XDG_CACHE_HOME/keras_patterns`` (``~/.cache/keras_patterns``).
    """
    if os.environ.get("KERAS_PATTERNS_CACHE"):
        return Path(os.environ["KERAS_PATTERNS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras_patterns"


def load_model(path):
    """A digits CNN saved by `save_model`, with its training configuration, so that it can
    be trained further (`keras_patterns.loading.load_model` with ``compile=True``).

    Args:
        path: the ``.keras`` file.

    Returns:
        keras.Model.

    Raises:
        ModelFileError: no file at `path`, or not a Keras model.
    """
    return loading.load_model(path, compile=True)


def pretrained(cache_dir=None):
    """The trained digits CNN: loaded from ``cache_dir/digits_cnn.keras``, else trained.

    The first call trains ``train_cnn()`` (default epochs and seed, a few seconds on a CPU)
    and saves the model; later calls load it. Delete the file to retrain.

    Args:
        cache_dir: folder of the cached model; None for :func:`default_cache_dir`.

    Returns:
        keras.Model.
    """
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / MODEL_FILE
    if path.is_file():
        return load_model(path)
    model, _ = train_cnn()
    save_model(model, path)
    return model
