"""Time and table of the signal quality rho(S) on a small CNN trained on the digits.

    python bench/bench_signal_quality.py [--images 2000] [--epochs 15] [--batch-size 64]

Trains a CNN (two 3x3 convolutions with max-pooling, two dense layers) on scikit-learn's
8x8 digits (1797 images, each also shifted by one pixel in four directions: 8985 images),
then times `signal_quality` for the estimators random, filter, linear and relu over
`--images` held-out images (one streaming pass; the three splits are thirds), and prints
rho per layer (mean over each layer's neurons; higher is better).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from keras_patterns.evaluate.signal_quality import signal_quality  # noqa: E402

ESTIMATORS = ("random", "filter", "linear", "relu")


def shifted_digits():
    """The digits scaled to [0, 1] and each shifted by one pixel up, down, left and right
    (zeros shifted in): (8985, 8, 8, 1) images and their labels."""
    digits = load_digits()
    x = digits.images.astype("float32") / 16.0
    images, labels = [x], [digits.target]
    for axis in (1, 2):
        for step in (-1, 1):
            moved = np.roll(x, step, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = 0 if step == 1 else -1
            moved[tuple(edge)] = 0.0
            images.append(moved)
            labels.append(digits.target)
    return np.concatenate(images)[..., None], np.concatenate(labels)


def cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="dense1"),
        keras.layers.Dense(10, name="dense2"),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000,
                        help="held-out images rho is measured on")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    x, y = shifted_digits()
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    if not 0 < args.images < len(x) - 1000:
        parser.error(f"--images must be between 1 and {len(x) - 1000}")
    x_eval, x_train, y_eval, y_train = (x[: args.images], x[args.images :],
                                        y[: args.images], y[args.images :])

    model = cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    trained = time.perf_counter() - start
    accuracy = model.evaluate(x_eval, y_eval, verbose=0)[1]
    print(f"CNN trained on {len(x_train)} images in {trained:.1f} s; accuracy on the "
          f"{len(x_eval)} held-out images {accuracy:.3f}")

    start = time.perf_counter()
    result = signal_quality(model, x_eval, estimators=ESTIMATORS,
                            batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    print(f"signal_quality over {len(x_eval)} images ({result.samples} per split), "
          f"{len(ESTIMATORS)} estimators, {len(result.layers)} layers: {elapsed:.1f} s")
    print("observations per split: " + ", ".join(
        f"{k} {v[1]}" for k, v in result.observations.items()))
    print(result.table())


if __name__ == "__main__":
    main()
