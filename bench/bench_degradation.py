"""The cost of the image degradation measurement, as a ratio to plain forward passes.

    python bench/bench_degradation.py [--images 64] [--steps 100] [--patch 2]

Trains the digits CNN (keras_patterns.zoo.digits), explains `--images` test digits with
lrp.epsilon and times `kp.evaluate.degradation` with `--steps` steps; prints the time, the
number of forward passes it made and the ratio to `steps + 1` forward passes of the same
images (its floor: every perturbed copy must go through the model once).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tensorflow as tf  # noqa: E402

import keras_patterns as kp  # noqa: E402
from keras_patterns.zoo import digits  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--patch", type=int, default=2)
    args = p.parse_args()
    data = digits.load_digits_data(seed=0)
    model, accuracy = digits.train_cnn(seed=0, data=data)
    x = data[2][: args.images]
    e = kp.create_analyzer("lrp.epsilon", model, epsilon=0.1).analyze(x)
    forward = tf.function(lambda v: model(v, training=False), autograph=False)
    forward(x)
    start = time.perf_counter()
    for _ in range(args.steps + 1):
        forward(x).numpy()
    t_floor = time.perf_counter() - start
    kp.evaluate.degradation(model, x, e, args.patch, args.steps)  # warm up (tracing)
    start = time.perf_counter()
    result = kp.evaluate.degradation(model, x, e, args.patch, args.steps)
    took = time.perf_counter() - start
    print(f"digits CNN (test accuracy {accuracy:.3f}), {len(x)} images, {args.steps} steps, "
          f"{args.patch}x{args.patch} patches")
    print(f"degradation: {took:.2f} s in {result.forward_passes} forward passes of up to "
          f"64 images; {args.steps + 1} forward passes of the {len(x)} images: {t_floor:.2f} s;"
          f" ratio {took / t_floor:.2f}; AOPC {result.aopc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
