"""The cost of each perturbation metric, as a ratio to its floor.

    python bench/bench_metrics.py [--images 64] [--steps 50] [--batch 64] [--size 0]
    python bench/bench_metrics.py --model vgg16 --size 112 --images 4 --batch 4 --steps 16

Trains the digits CNN (keras_patterns.zoo.digits) and explains `--images` test digits, or
with ``--size S`` builds a CNN (or with ``--model vgg16`` VGG16, issue 24's model) on
random S x S x 3 images (random weights; the digits' forward pass is so short that timer
noise dominates), explains them with lrp.epsilon and
times `degradation`, `deletion`, `insertion`, `mu_fidelity` and `road`
(each after one warm-up call, the best of three); the floor of a metric is its number of
forward passes of `--batch` copies, timed alone on the same compiled function (every
perturbed copy must go through the model once). ROAD's floor leaves out the imputation,
which it must also do.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_patterns as kp  # noqa: E402
from keras_patterns.evaluate.scoring import score_function  # noqa: E402
from keras_patterns.zoo import digits  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--model", choices=("cnn", "vgg16"), default="cnn",
                   help="with --size: a small CNN or VGG16 (random weights, 1000 logits)")
    args = p.parse_args()
    if args.size and args.model == "vgg16":
        keras.utils.set_random_seed(0)
        model = keras.applications.VGG16(weights=None, input_shape=(args.size, args.size, 3),
                                         classifier_activation=None)
        x = np.random.default_rng(0).random((args.images, args.size, args.size, 3),
                                            np.float32)
        what = f"VGG16 on {args.size}x{args.size}x3 random images"
    elif args.size:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((args.size, args.size, 3)),
            keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
        x = np.random.default_rng(0).random((args.images, args.size, args.size, 3),
                                            np.float32)
        what = f"a CNN on {args.size}x{args.size}x3 random images"
    else:
        data = digits.load_digits_data(seed=0)
        model, accuracy = digits.train_cnn(seed=0, data=data)
        x = data[2][: args.images]
        what = f"digits CNN (test accuracy {accuracy:.3f})"
    e = kp.create_analyzer("lrp.epsilon", model, epsilon=0.1).analyze(x)
    ev, b = kp.evaluate, {"batch_size": args.batch}
    runs = {
        "degradation": lambda: ev.degradation(model, x, e, 2, args.steps, **b),
        "deletion": lambda: ev.deletion(model, x, e, steps=args.steps, **b),
        "insertion": lambda: ev.insertion(model, x, e, steps=args.steps, **b),
        "mu_fidelity": lambda: ev.mu_fidelity(model, x, e, n_subsets=args.steps, **b),
        "road": lambda: ev.road(model, x, e, **b),
    }
    forward = score_function(model, "probability")
    chunk = np.repeat(x, -(-args.batch // len(x)), axis=0)[: args.batch]
    np.asarray(forward(chunk))
    print(f"{what}, {len(x)} images, {args.steps} steps, batch {args.batch}")
    def best(fn):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    for name, run in runs.items():
        result = run()  # warm up
        took = best(run)
        passes = result.forward_passes
        floor = best(lambda n=passes: [np.asarray(forward(chunk)) for _ in range(n)])
        print(f"{name}: {took:.2f} s, {passes} forward passes alone "
              f"{floor:.2f} s, ratio {took / floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
