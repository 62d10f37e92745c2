"""Speed and memory of the CAM, perturbation and surrogate methods and of the perturbation
metrics against their floors (issue 24), VGG16 with random weights, measured in one run.

    python bench/bench_methods.py                       # everything at 224x224 (long on CPU)
    python bench/bench_methods.py --perturbation-size 56 # the same forward-pass counts, smaller
    python bench/bench_methods.py --sections cam,memory

Sections (``--sections``, comma-separated; all by default):

- ``cam``: Grad-CAM, Grad-CAM++ and LayerCAM at ``--size``, each over the gradient (goal
  <= 1.2) and over the forward pass of the same batch; the three timed alternately.
- ``perturbation``: Occlusion, RISE, Score-CAM, KernelSHAP and LIME at
  ``--perturbation-size`` (default ``--size``) with ``batch_size`` = the batch, so that each
  model call holds as many rows as the forward pass; each over its floor: the number of
  forward passes it needs (its perturbed copies over the batch size, plus the one pass on
  the unmodified input) times the forward time (goal <= 1.15). Occlusion's patch and stride
  default to size/7 and size/14 (32 and 16 at 224: 13 x 13 = 169 patches at any size
  divisible by 14).
- ``metrics``: `evaluate.degradation` (pixel flipping) over its floor, the model calls it
  reports (`forward_passes`) times the forward time of a chunk of ``batch_size`` images.
- ``memory`` (each run in its own process): peak RSS of RISE and KernelSHAP with few and
  many perturbed samples at batch_size 4 (goal: ratio <= 1.1, flat in the samples).

A method's calls alternate with forward passes (`bench.interleaved`); the forward time is
the best of those, so a machine that slows down during the run biases neither. Ratios, not
absolute times, carry over between machines. Timings on a busy machine are noisy.
"""

import argparse
import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # bench.py, then this checkout's package
import keras_patterns as kp  # noqa: E402
from bench import chosen_sections, interleaved, peak_rss_kib, row, run_child, vgg16  # noqa: E402
from keras_patterns.analyzers.perturbation import patch_starts  # noqa: E402

CAM_GOAL = 1.2
FLOOR_GOAL = 1.15
MEMORY_GOAL = 1.1
CAMS = ("grad_cam", "grad_cam_plus_plus", "layer_cam")
SECTIONS = ("cam", "perturbation", "metrics", "memory")
# forward calls between two calls of a perturbation method (the best of them is the forward)
FORWARDS_PER_CALL = 3


def batch(images, size, seed=0):
    x = np.random.default_rng(seed).uniform(size=(images, size, size, 3))
    return x.astype("float32")


def compiled_forward(model):
    return tf.function(lambda v: model(v, training=False), autograph=False)


def last_spatial_channels(model):
    """The channels of the last layer with a spatial output (Score-CAM's masks)."""
    return [layer for layer in model.layers if len(layer.output.shape) == 4][-1].output.shape[-1]


def perturbation_methods(args, model, size):
    """name -> (create_analyzer options, forward passes of the perturbed copies at
    batch_size = the batch, i.e. one copy per sample per pass)."""
    patch = args.patch or size // 7
    stride = args.stride or size // 14
    patches = len(patch_starts(size, patch, stride)[0]) ** 2
    return {
        "occlusion": ({"patch_size": patch, "stride": stride}, patches),
        "rise": ({"n_masks": args.masks, "seed": 0}, args.masks),
        "score_cam": ({}, last_spatial_channels(model)),
        "kernel_shap": ({"n_samples": args.samples, "seed": 0}, args.samples + 1),  # + f(∅)
        "lime": ({"n_samples": args.samples, "seed": 0}, args.samples),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224, help="the CAM section's input size")
    p.add_argument("--perturbation-size", type=int, default=None,
                   help="input size of the perturbation and metrics sections (default --size)")
    p.add_argument("--images", type=int, default=4, help="the batch, also batch_size")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per CAM method")
    p.add_argument("--perturbation-repeats", type=int, default=1,
                   help="timed calls per perturbation method, after one warm-up call")
    p.add_argument("--methods", default="occlusion,rise,score_cam,kernel_shap,lime")
    p.add_argument("--patch", type=int, default=0, help="occlusion patch (default size/7)")
    p.add_argument("--stride", type=int, default=0, help="occlusion stride (default size/14)")
    p.add_argument("--masks", type=int, default=256, help="RISE masks")
    p.add_argument("--samples", type=int, default=256, help="KernelSHAP and LIME samples")
    p.add_argument("--steps", type=int, default=64, help="degradation steps")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--memory-size", type=int, default=32)
    p.add_argument("--memory-samples", default="64,1024")
    p.add_argument("--_child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        return child(json.loads(args._child))
    sections = chosen_sections(p, args.sections, SECTIONS)
    print(f"VGG16 (random weights), batch {args.images}; TensorFlow {tf.__version__}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if "cam" in sections:
        cams(args)
    small = args.perturbation_size or args.size
    if "perturbation" in sections:
        perturbation(args, small)
    if "metrics" in sections:
        metrics(args, small)
    if "memory" in sections:
        memory(args)
    print(f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def cams(args):
    """Each CAM method over the gradient and the forward pass, the three alternating."""
    model = vgg16(args.size)
    x = batch(args.images, args.size)
    forward = compiled_forward(model)
    gradient = kp.create_analyzer("gradient", model, batch_size=len(x))
    print(f"\nCAM methods at {args.size}x{args.size}")
    for name in CAMS:
        analyzer = kp.create_analyzer(name, model, batch_size=len(x))
        t, t_gradient, t_forward = interleaved(
            [functools.partial(analyzer.analyze, x), functools.partial(gradient.analyze, x),
             lambda: forward(x).numpy()], args.repeats)
        row(f"{name} / gradient", t / t_gradient, CAM_GOAL,
            f"/ forward {t / t_forward:.2f}, gradient / forward {t_gradient / t_forward:.2f}")


def timed_against_forward(fn, forward, repeats):
    """The best time of `fn` and of the forward pass, FORWARDS_PER_CALL forward calls
    between two calls of `fn` (one warm-up call each first)."""
    times = interleaved([fn] + [forward] * FORWARDS_PER_CALL, repeats)
    return times[0], min(times[1:])


def perturbation(args, size):
    """Each perturbation method over its floor: forward passes needed x forward time."""
    model = vgg16(size)
    x = batch(args.images, size)
    forward = compiled_forward(model)
    methods = perturbation_methods(args, model, size)
    print(f"\nperturbation methods at {size}x{size}, batch_size {len(x)} "
          f"(floor: passes x forward; passes = perturbed + 1 reference)")
    for name in args.methods.split(","):
        options, passes = methods[name]
        analyzer = kp.create_analyzer(name, model, batch_size=len(x), **options)
        t, t_forward = timed_against_forward(functools.partial(analyzer.analyze, x),
                                             lambda: forward(x).numpy(),
                                             args.perturbation_repeats)
        floor = (passes + 1) * t_forward
        row(f"{name} / floor", t / floor, FLOOR_GOAL,
            f"/ forward {t / t_forward:.1f}, {passes + 1} passes, {t:.1f} s, forward "
            f"{t_forward * 1000:.0f} ms, {options}")


def metrics(args, size):
    """Degradation (pixel flipping) over the model calls it reports times a forward."""
    model = vgg16(size)
    x = batch(args.images, size)
    forward = compiled_forward(model)
    relevance = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    patch = max(1, size // 8)
    run = functools.partial(kp.evaluate.degradation, model, x, relevance, patch_size=patch,
                            steps=args.steps, batch_size=len(x))
    t, t_forward = timed_against_forward(run, lambda: forward(x).numpy(),
                                         args.perturbation_repeats)
    passes = run().forward_passes
    print(f"\nmetrics at {size}x{size}, batch_size {len(x)}")
    row("degradation / floor", t / (passes * t_forward), FLOOR_GOAL,
        f"{passes} passes, patch {patch}, {args.steps} steps, {t:.1f} s")


def memory(args):
    """Peak RSS of RISE and KernelSHAP with few and many samples, each in its own process."""
    counts = [int(v) for v in args.memory_samples.split(",")]
    print(f"\nmemory at {args.memory_size}x{args.memory_size}, batch_size 4 (each run in its "
          "own process)")
    for name, option in (("rise", "n_masks"), ("kernel_shap", "n_samples")):
        peaks = []
        for n in counts:
            out = run_child({"method": name, "options": {option: n, "seed": 0},
                             "size": args.memory_size}, script=os.path.abspath(__file__))
            peaks.append(out["rss"])
            print(f"{f'{name}, {option}={n}':<40} peak RSS {out['rss'] / 1024:8.1f} MiB, "
                  f"{out['seconds']:.1f} s")
        row(f"peak RSS ratio, {counts[-1]} / {counts[0]}", peaks[-1] / peaks[0], MEMORY_GOAL)


def child(job):
    model = vgg16(job["size"])
    x = batch(4, job["size"])
    analyzer = kp.create_analyzer(job["method"], model, batch_size=4, **job["options"])
    start = time.perf_counter()
    analyzer.analyze(x)
    print(json.dumps({"rss": peak_rss_kib(), "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
