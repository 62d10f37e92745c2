"""Speed and memory ratios on a VGG16-shaped model, measured in one run.

    python bench/bench.py [--size 64] [--images 64] [--repeats 3] [--methods gradient,...]
    python bench/bench.py --fit-memory      # peak memory of fitting on N and 10 N images

Prints, per method, analyze time / forward time over the same images (best of `repeats`),
the time to build an analyzer plus its first call, and fit time / forward time: for a fit on
one batch of the images (fixed costs included) and per further batch (the streaming pass
alone). Ratios, not absolute times, are comparable between machines; timings on a busy
machine are noisy.
"""

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import keras_patterns as kp  # noqa: E402

DEFAULT_METHODS = ("gradient", "guided_backprop", "pattern.net", "pattern.attribution",
                   "lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.sequential_preset_a",
                   "deep_taylor")


def vgg16(size):
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=1000,
                                    classifier_activation=None)


def best_time(fn, repeats):
    fn()  # warm up (tracing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--fit-memory", action="store_true")
    p.add_argument("--no-fit", action="store_true", help="time the analyzers only")
    p.add_argument("--_fit_only", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()

    model = vgg16(args.size)
    rng = np.random.default_rng(0)
    if args._fit_only:
        data = tf.data.Dataset.from_tensor_slices(
            rng.uniform(size=(args._fit_only, args.size, args.size, 3)).astype("float32")
        ).batch(16)
        kp.compute_patterns(model, data)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return
    if args.fit_memory:
        peaks = []
        for n in (args.images, 10 * args.images):
            out = subprocess.run([sys.executable, __file__, "--size", str(args.size),
                                  "--_fit_only", str(n)], capture_output=True, text=True,
                                 check=True)
            peaks.append(int(out.stdout.strip().splitlines()[-1]))
            print(f"fit on {n:6d} images: peak RSS {peaks[-1] / 1024:8.1f} MiB")
        print(f"peak memory ratio (10x data): {peaks[1] / peaks[0]:.2f}")
        return

    x = rng.uniform(size=(args.images, args.size, args.size, 3)).astype("float32")
    forward = tf.function(lambda v: model(v, training=False), autograph=False)
    t_forward = best_time(lambda: forward(x).numpy(), args.repeats)
    print(f"VGG16-shaped model, {args.images} images of {args.size}x{args.size}; "
          f"forward {t_forward * 1000:.1f} ms")
    print(f"{'method':<22} {'build+1st call s':>16} {'analyze/forward':>16}")
    for name in args.methods.split(","):
        start = time.perf_counter()
        # Pattern methods use unfitted filter patterns here: the backward pass costs the same.
        extra = {"pattern_type": "filter"} if name.startswith("pattern.") else {}
        analyzer = kp.create_analyzer(name, model, batch_size=args.images, **extra)
        analyzer.analyze(x[:1])
        t_build = time.perf_counter() - start
        t = best_time(lambda: analyzer.analyze(x), args.repeats)
        print(f"{name:<22} {t_build:>16.2f} {t / t_forward:>16.2f}")
    if args.no_fit:
        return
    with warnings.catch_warnings():  # random weights and images leave dead units
        warnings.simplefilter("ignore")
        t_fit = best_time(lambda: kp.compute_patterns(model, x, batch_size=args.images), 1)
        # The same fit on three batches: the difference is the cost of the streaming pass
        # per batch, without the fixed costs of a fit (tracing, estimator, reading back).
        x3 = np.concatenate([x, x, x])
        t_fit3 = best_time(lambda: kp.compute_patterns(model, x3, batch_size=args.images), 1)
    print(f"{'fit (relu patterns)':<22} {'':>16} {t_fit / t_forward:>16.2f}")
    print(f"{'fit, per further batch':<22} {'':>16} {(t_fit3 - t_fit) / 2 / t_forward:>16.2f}")


if __name__ == "__main__":
    main()
