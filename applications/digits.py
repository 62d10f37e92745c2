"""Handwritten digits explained: a small CNN trained on scikit-learn's 8x8 digits.

Data: ``sklearn.datasets.load_digits()``, bundled with scikit-learn (nothing is downloaded):
1797 grayscale 8x8 images of the digits 0-9 with integer values 0..16 (the UCI "optical
recognition of handwritten digits" test set). ``load_digits_data`` scales them to [0, 1] and
splits them with a stratified, seeded split (every digit in the same proportion in both
parts).

Model: ``build_cnn`` builds a Keras 3 functional CNN ending in 10 logits (no softmax; the
loss uses ``from_logits=True``), so the analyzers explain the logit of the selected class.
``train_cnn`` trains it from a fixed seed; ``pretrained`` trains once and keeps the model
in a cache folder.

    model, accuracy = train_cnn()
    x_train, y_train, x_test, y_test = load_digits_data()
    analyzer = keras_patterns.create_analyzer("pattern.attribution", model)
    analyzer.fit(x_train)
    heatmaps = analyzer.analyze(x_test[:8])        # (8, 8, 8, 1)

Command line (from the repository root): ``python applications/digits.py --out DIR
[--epochs E] [--samples N] [--methods NAME ...]`` trains the CNN, prints its test accuracy,
saves ``DIR/digits_cnn.keras``, explains the first N test digits with each method (the
pattern methods fitted on the training images) and draws ``DIR/digits_grid.png`` with
:func:`keras_patterns.visualize.grid` (one row per digit, labelled with its true and
predicted class).
"""

import argparse
import numbers
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if not __package__:  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

#: Input shape of the CNN: 8x8 pixels, one channel, channels last.
INPUT_SHAPE = (8, 8, 1)
#: Number of classes (the digits 0-9).
NUM_CLASSES = 10
#: Epochs ``train_cnn`` and ``pretrained`` use by default.
DEFAULT_EPOCHS = 10
#: File name of the trained model in the output or cache folder.
MODEL_FILE = "digits_cnn.keras"
#: Name of the picture the command line writes.
GRID_FILE = "digits_grid.png"
#: Methods the command line explains with by default.
DEFAULT_METHODS = (
    "gradient",
    "guided_backprop",
    "lrp.epsilon",
    "pattern.net",
    "pattern.attribution",
)


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
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not isinstance(test_fraction, numbers.Real) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
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
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
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


def load_model(path):
    """Loads a model saved by :func:`save_model`.

    Args:
        path: a ``.keras`` file.

    Returns:
        keras.Model.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {str(path)!r}")
    return keras.saving.load_model(path)


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


def explain(model, images, methods=DEFAULT_METHODS, fit_images=None):
    """Explains images with several methods.

    Args:
        model: the digits CNN (logits output).
        images: inputs ``(n, 8, 8, 1)``.
        methods: analyzer names (see ``keras_patterns.list_analyzers()``).
        fit_images: images the pattern methods are fitted on (required if ``methods``
            has one).

    Returns:
        dict {method name: explanation array shaped like ``images``}, in the order of
        ``methods``.

    Raises:
        ValueError: a pattern method without ``fit_images``.
    """
    import keras_patterns

    maps = {}
    for name in methods:
        analyzer = keras_patterns.create_analyzer(name, model)
        if name.startswith("pattern."):
            if fit_images is None:
                raise ValueError(f"{name} needs fit_images to learn its patterns")
            analyzer.fit(fit_images)
        maps[name] = analyzer.analyze(images)
    return maps


def main(argv=None):
    """Command line: train, save, explain test digits and draw the grid.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        int exit status (0).
    """
    from keras_patterns import visualize

    parser = argparse.ArgumentParser(
        description="Train a CNN on scikit-learn's 8x8 digits and draw its explanations."
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=8, help="test digits to explain")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--cell", type=int, default=64, help="pixels per picture side")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits_data(seed=args.seed)
    x_train, _, x_test, y_test = data
    start = time.perf_counter()
    model, test_accuracy = train_cnn(args.epochs, seed=args.seed, data=data)
    took = time.perf_counter() - start
    print(
        f"trained {model.name} for {args.epochs} epochs in {took:.1f} s: test accuracy "
        f"{test_accuracy:.4f} ({len(x_test)} test images)"
    )
    model_path = save_model(model, out / MODEL_FILE)
    print(f"saved {model_path}")

    images, labels = x_test[: args.samples], y_test[: args.samples]
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    start = time.perf_counter()
    maps = explain(model, images, args.methods, fit_images=x_train)
    print(
        f"explained {len(images)} test digits with {len(maps)} methods in "
        f"{time.perf_counter() - start:.1f} s"
    )
    grid_path = out / GRID_FILE
    visualize.grid(
        images,
        maps,
        row_labels=[f"y={y} p={p}" for y, p in zip(labels, predicted)],
        path=grid_path,
        cell=args.cell,
    )
    print(f"wrote {grid_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
