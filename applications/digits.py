"""Handwritten digits explained: the digits CNN of ``keras_patterns.zoo.digits``, trained on
scikit-learn's 8x8 digits, with several methods, in one picture.

Command line (with keras-patterns and its demo extra installed)::

    python applications/digits.py --out DIR [--epochs E] [--samples N] [--methods NAME ...]

trains the CNN, prints its test accuracy, saves ``DIR/digits_cnn.keras``, explains the first
N test digits with each method (the methods that need a fit fitted on the training images)
and draws ``DIR/digits_grid.png`` with :func:`keras_patterns.visualize.grid` (one row per
digit, labelled with its true and predicted class).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import keras_patterns as kp
from keras_patterns import visualize
from keras_patterns.zoo import digits

# Name of the picture the command line writes.
GRID_FILE = "digits_grid.png"
# Methods the command line explains with by default.
DEFAULT_METHODS = (
    "gradient",
    "guided_backprop",
    "lrp.epsilon",
    "pattern.net",
    "pattern.attribution",
)


def explain(model, images, methods=DEFAULT_METHODS, fit_images=None):
    """Explains images with several methods.

    Args:
        model: the digits CNN (logits output).
        images: inputs ``(n, 8, 8, 1)``.
        methods: analyzer names (see ``keras_patterns.list_analyzers()``).
        fit_images: images the methods that need a fit (``analyzer.needs_fit``) are fitted
            on (required if ``methods`` has one).

    Returns:
        dict {method name: explanation array shaped like ``images``}, in the order of
        ``methods``.

    Raises:
        ValueError: a method that needs a fit without ``fit_images``.
    """
    maps = {}
    for name in methods:
        analyzer = kp.create_analyzer(name, model)
        if analyzer.needs_fit:
            if fit_images is None:
                raise ValueError(f"{name} needs fit_images to learn its patterns")
            analyzer.fit(fit_images)
        maps[name] = analyzer.analyze(images)
    return maps


def main(argv=None):
    """Command line (`argv`, default ``sys.argv[1:]``): train, save, explain test digits
    and draw the grid; returns the exit status 0."""
    parser = argparse.ArgumentParser(
        description="Train a CNN on scikit-learn's 8x8 digits and draw its explanations."
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--epochs", type=int, default=digits.DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=8, help="test digits to explain")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--cell", type=int, default=64, help="pixels per picture side")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.samples < 1:
        parser.error("--samples must be at least 1")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = digits.load_digits_data(seed=args.seed)
    x_train, _, x_test, y_test = data
    start = time.perf_counter()
    model, test_accuracy = digits.train_cnn(args.epochs, seed=args.seed, data=data)
    took = time.perf_counter() - start
    print(
        f"trained {model.name} for {args.epochs} epochs in {took:.1f} s: test accuracy "
        f"{test_accuracy:.4f} ({len(x_test)} test images)"
    )
    model_path = digits.save_model(model, out / digits.MODEL_FILE)
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
