"""Speed and memory ratios on a VGG16-shaped model, measured in one run.

    python bench/bench.py [--size 64] [--images 64] [--repeats 3] [--methods gradient,...]
    python bench/bench.py --fit-memory      # peak memory of fitting on N and 10 N images

Prints, per method, analyze time / forward time over the same images (best of `repeats`),
the time to build an analyzer plus its first call, and fit time / forward time: for a fit on
one batch of the images (fixed costs included) and per further batch (the streaming pass
alone: the difference between fits on 1 + k batches and on 1 batch, divided by k). Beside
it, the floor of any exact statistics pass: the forward pass plus the two kernel gradients
per layer that the estimator needs. Ratios, not absolute times, are comparable between
machines; timings on a busy machine are noisy.
"""

import argparse
import functools
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
    p.add_argument("--fit-batches", type=int, default=4,
                   help="further batches whose fit time gives the cost per batch")
    p.add_argument("--float64", action="store_true",
                   help="also time fitting with precision='float64'")
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
        t = best_time(functools.partial(analyzer.analyze, x), args.repeats)
        print(f"{name:<22} {t_build:>16.2f} {t / t_forward:>16.2f}")
    if args.no_fit:
        return
    floor = kernel_gradient_floor(model)
    t_floor = best_time(lambda: floor(x).numpy(), args.repeats)
    print(f"{'floor: fwd + 2 grads':<22} {'':>16} {t_floor / t_forward:>16.2f}")
    for precision in ("float32", "float64") if args.float64 else ("float32",):
        t_one, t_more = fit_times(model, x, args.images, args.fit_batches, precision)
        per_batch = (t_more - t_one) / args.fit_batches
        print(f"{'fit, ' + precision + ', 1 batch':<22} {'':>16} {t_one / t_forward:>16.2f}")
        noisy = t_more - t_one < 0.5 * t_one
        print(f"{'fit, ' + precision + ', per batch':<22} {'':>16} {per_batch / t_forward:>16.2f}"
              f"   ({per_batch / t_floor:.2f} x the floor)"
              + ("   unreliable: fixed costs dominate, raise --fit-batches" if noisy else ""))


def kernel_gradient_floor(model):
    """The least a statistics pass can do: the forward pass and, per kernel map, the two
    kernel gradients the estimator needs (upstreams m and m y), in float32, nothing kept."""
    from keras_patterns.patterns.fit import prepare_graph
    from keras_patterns.patterns.streaming import kernel_calls

    graph = prepare_graph(model)

    def step(x):
        total = 0.0
        for node, inp, _, z in kernel_calls(graph, [x]):
            kmap = node.kernel_map
            kernel = tf.convert_to_tensor(kmap.kernel)
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(kernel)
                out = kmap.apply(inp, kernel)
            m = tf.cast(z > 0, z.dtype)
            for u in (m, m * z):
                total += tf.reduce_sum(tape.gradient(out, kernel, output_gradients=u))
        return total

    return tf.function(step, autograph=False)


def fit_times(model, x, batch_size, more, precision):
    """Seconds for a fit on one batch (fixed costs included) and on 1 + `more` batches;
    best of two each."""
    xs = np.concatenate([x] * (1 + more))
    with warnings.catch_warnings():  # random weights and images leave dead units
        warnings.simplefilter("ignore")
        times = []
        for data in (x, xs):
            runs = []
            for _ in range(2):
                start = time.perf_counter()
                kp.compute_patterns(model, data, batch_size=batch_size, precision=precision)
                runs.append(time.perf_counter() - start)
            times.append(min(runs))
    return times


if __name__ == "__main__":
    main()
