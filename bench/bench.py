"""Speed and memory of every method against its goal, VGG16 at 224x224, measured in one run.

    python bench/bench.py                         # every figure (about 10 minutes, 2 cores)
    python bench/bench.py --size 64 --sections analysis,noise
    python bench/bench.py --sections memory       # fit memory up to 10,000 streamed images

Sections (``--sections``, comma-separated; all by default):

- ``analysis``: per method, analyze time / forward time over the same batch (best of
  ``--repeats`` each, the two timed alternately) and the seconds to build the analyzer
  plus its first call; PatternAttribution over the gradient, timed alternately. Pattern
  methods use relu patterns fitted beforehand (the fit is not part of the build).
- ``fit``: ``compute_patterns`` on ``--fit-images`` images in batches of ``--fit-batch``,
  fixed costs included, over the forward pass of the same images in the same batches;
  the statistics pass per further batch over its floor (the forward pass plus the two
  kernel gradients per layer that the estimator needs, in float32, nothing kept).
- ``noise``: SmoothGrad, VarGrad, SquareGrad and Integrated Gradients with ``--copies``
  copies over that many gradients of the same batch.
- ``memory`` (each run in its own process): peak RSS and images per second of fits
  streaming ``--memory-images`` images from a tf.data pipeline at ``--memory-size``, and
  peak RSS of SmoothGrad with few and many copies at the same ``batch_size``.

Ratios, not absolute times, carry over between machines; the models have random weights.
Timings on a busy machine are noisy: compare methods within one run.
"""

import argparse
import functools
import json
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

# method -> the goal of its analyze/forward ratio
ANALYSIS_GOALS = {
    "gradient": 2.2, "guided_backprop": 2.2, "deconvnet": 2.2, "pattern.net": 2.2,
    "pattern.attribution": 2.2, "lrp.z": 2.4, "lrp.epsilon": 2.4, "lrp.alpha_1_beta_0": 3.0,
    "lrp.sequential_preset_a": 3.0, "lrp.sequential_preset_b": 3.0, "deep_taylor": 3.0,
}
BUILD_GOAL_S = 1.0
PATTERN_WITHIN_GRADIENT = 0.05
FIT_GOAL = 6.0
FIT_PER_BATCH_GOAL = 1.15
NOISE_GOAL = 1.1
SECTIONS = ("analysis", "fit", "noise", "memory")


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


def interleaved(fns, repeats):
    """Best time of each function, their calls alternating (a machine that slows down or
    speeds up during the run biases none of them); each is warmed up first."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times):
            start = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - start)
    return [min(kept) for kept in times]


def verdict(value, goal):
    return f"goal <= {goal:<5g} {'met' if value <= goal else 'MISSED'}"


def row(name, value, goal=None, extra=""):
    print(f"{name:<40} {value:>9.2f}   " + (verdict(value, goal) if goal else "")
          + (f"   {extra}" if extra else ""))


def fit_time(model, data, batch_size):
    """The best of two `compute_patterns` runs on `data`, in seconds."""
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        quiet_fit(model, data, batch_size=batch_size)
        runs.append(time.perf_counter() - start)
    return min(runs)


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():  # random weights and images leave dead units
        warnings.simplefilter("ignore")
        return kp.compute_patterns(*args, **kwargs)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=4, help="the analysis batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", default=",".join(ANALYSIS_GOALS))
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--fit-images", type=int, default=32)
    p.add_argument("--fit-batch", type=int, default=8)
    p.add_argument("--fit-batches", type=int, default=2,
                   help="further batches whose fit time gives the cost per batch")
    p.add_argument("--copies", type=int, default=8, help="SmoothGrad/IG copies")
    p.add_argument("--memory-size", type=int, default=32)
    p.add_argument("--memory-images", default="1000,10000")
    p.add_argument("--_child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        return child(json.loads(args._child))
    sections = chosen_sections(p, args.sections, SECTIONS)

    model = vgg16(args.size)
    x = np.random.default_rng(0).uniform(size=(args.images, args.size, args.size, 3))
    x = x.astype("float32")
    forward = tf.function(lambda v: model(v, training=False), autograph=False)
    t_forward = best_time(lambda: forward(x).numpy(), args.repeats)
    print(f"VGG16, {args.images} images of {args.size}x{args.size}; forward "
          f"{t_forward * 1000:.1f} ms; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if "analysis" in sections:
        analysis(model, forward, x, args)
    if "fit" in sections:
        fitting(model, forward, args)
    if "noise" in sections:
        noise(model, x, args)
    if "memory" in sections:
        memory(args)


def analysis(model, forward, x, args):
    """Per method: its time over the forward pass's, the two timed alternately."""
    patterns = None
    methods = args.methods.split(",")
    needs_fit = {name: kp.analyzers.analyzer_class(name).needs_fit for name in methods}
    if any(needs_fit.values()):
        patterns = quiet_fit(model, x, batch_size=len(x))
    print(f"\n{'analyze / forward':<40} {'ratio':>9}   build + first call (s)")
    kept = {}
    for name in args.methods.split(","):
        extra = {"patterns": patterns} if needs_fit[name] else {}
        start = time.perf_counter()
        analyzer = kp.create_analyzer(name, model, batch_size=len(x), **extra)
        analyzer.analyze(x[:1])
        t_build = time.perf_counter() - start
        t, t_forward = interleaved([functools.partial(analyzer.analyze, x),
                                    lambda: forward(x).numpy()], args.repeats)
        ratio = t / t_forward
        goal = ANALYSIS_GOALS.get(name)
        print(f"{name:<40} {ratio:>9.2f}   " + (verdict(ratio, goal) if goal else "")
              + f"   build {t_build:.2f} s {'met' if t_build <= BUILD_GOAL_S else 'MISSED'}")
        if name in ("gradient", "pattern.attribution"):
            kept[name] = analyzer
        del analyzer
    if len(kept) == 2:
        t_gradient, t_pattern = interleaved(
            [functools.partial(kept[k].analyze, x) for k in ("gradient", "pattern.attribution")],
            2 * args.repeats)
        row("pattern.attribution / gradient - 1", t_pattern / t_gradient - 1,
            PATTERN_WITHIN_GRADIENT, "timed alternately")


def chosen_sections(parser, value, known):
    """The comma-separated sections in `value`, the parser's error naming any unknown."""
    sections = value.split(",")
    unknown = sorted(set(sections) - set(known))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {known}")
    return sections


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


def fitting(model, forward, args):
    """Fit / forward over the same images, fixed costs included, and the per-batch cost of
    the statistics pass over its floor (best of two fits each)."""
    b, n = args.fit_batch, args.fit_images
    x = np.random.default_rng(1).uniform(size=(n, args.size, args.size, 3)).astype("float32")
    t_forward = best_time(lambda: [forward(x[i : i + b]).numpy() for i in range(0, n, b)],
                          args.repeats)
    floor = kernel_gradient_floor(model)
    t_floor = best_time(lambda: floor(x[:b]).numpy(), args.repeats)
    t_batch = t_forward * b / n

    t_fit = fit_time(model, x, b)
    t_more = fit_time(model, np.concatenate([x, x[: args.fit_batches * b]]), b)
    per_batch = (t_more - t_fit) / args.fit_batches
    print(f"\nfit, relu patterns, {n} images in batches of {b} (forward over them "
          f"{t_forward:.2f} s)")
    row(f"fit {n} images / forward", t_fit / t_forward, FIT_GOAL,
        f"fit {t_fit:.2f} s, fixed costs about {t_fit - n / b * per_batch:.2f} s")
    row("floor per batch / forward", t_floor / t_batch)
    row("fit per further batch / floor", per_batch / t_floor, FIT_PER_BATCH_GOAL,
        "unreliable: raise --fit-batches" if per_batch <= 0 else "")


def noise(model, x, args):
    """SmoothGrad, VarGrad, SquareGrad and Integrated Gradients over `copies` gradients of
    the same batch."""
    k = args.copies
    gradient = kp.create_analyzer("gradient", model, batch_size=len(x))
    t_gradient = best_time(functools.partial(gradient.analyze, x), args.repeats)
    print(f"\nnoise and paths, {k} copies of {len(x)} images (one gradient "
          f"{t_gradient * 1000:.0f} ms)")
    for name, kwargs in (("smoothgrad", {"augment_by_n": k, "seed": 0}),
                         ("vargrad", {"augment_by_n": k, "seed": 0}),
                         ("squaregrad", {"augment_by_n": k, "seed": 0}),
                         ("integrated_gradients", {"steps": k})):
        analyzer = kp.create_analyzer(name, model, batch_size=len(x), **kwargs)
        t = best_time(functools.partial(analyzer.analyze, x), args.repeats)
        row(f"{name} / ({k} x gradient)", t / (k * t_gradient), NOISE_GOAL)


def memory(args):
    """Peak RSS, each in its own process: fits streaming the given numbers of images from a
    tf.data pipeline, and SmoothGrad with 8 and 128 copies at batch_size 4."""
    print(f"\nmemory at {args.memory_size}x{args.memory_size} (each run in its own process)")
    fits = []
    for n in (int(v) for v in args.memory_images.split(",")):
        out = run_child({"job": "fit", "size": args.memory_size, "images": n})
        fits.append(out)
        print(f"{'fit, ' + str(n) + ' images streamed':<40} peak RSS {out['rss'] / 1024:8.1f} "
              f"MiB, {out['images_per_s']:.0f} images/s")
    row("peak RSS ratio, most / fewest", fits[-1]["rss"] / fits[0]["rss"], 1.1)
    noisy = [run_child({"job": "smoothgrad", "size": args.memory_size, "copies": c})
             for c in (8, 128)]
    for c, out in zip((8, 128), noisy):
        print(f"{'smoothgrad, ' + str(c) + ' copies, batch_size 4':<40} peak RSS "
              f"{out['rss'] / 1024:8.1f} MiB")
    row("peak RSS ratio, 128 / 8 copies", noisy[1]["rss"] / noisy[0]["rss"], 1.1)


def run_child(job, script=__file__):
    """Runs `script --_child job` in its own process; its last JSON line, parsed."""
    out = subprocess.run([sys.executable, script, "--_child", json.dumps(job)],
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{job} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def child(job):
    size = job["size"]
    model = vgg16(size)
    result = {}
    if job["job"] == "fit":
        n = job["images"]
        data = tf.data.Dataset.range(n).map(
            lambda i: tf.random.stateless_uniform((size, size, 3), tf.stack([i, i + 1])))
        data = data.batch(32).prefetch(2)
        start = time.perf_counter()
        quiet_fit(model, data)
        result["images_per_s"] = n / (time.perf_counter() - start)
    else:
        x = np.random.default_rng(0).uniform(size=(4, size, size, 3)).astype("float32")
        analyzer = kp.create_analyzer("smoothgrad", model, augment_by_n=job["copies"],
                                      batch_size=4, seed=0)
        analyzer.analyze(x)
    result["rss"] = peak_rss_kib()
    print(json.dumps(result))


def peak_rss_kib():
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not carry the
    parent's peak over into a child process)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


if __name__ == "__main__":
    main()
