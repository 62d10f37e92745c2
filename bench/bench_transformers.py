"""Speed and memory of the transformer methods: a ViT-B/16-shaped and a BERT-base-shaped
model (random weights), ratios to the forward pass measured in one run.

    python bench/bench_transformers.py                        # both models, every section
    python bench/bench_transformers.py --models vit --blocks 2 --size 64   # a quick look

Sections (``--sections``, comma-separated; all by default):

- ``analysis``: per method (``attnlrp``, ``cp_lrp``, ``pattern.attribution`` and the
  gradient for comparison), analyze time / forward time over the same batch (the two timed
  alternately, best of ``--repeats``), and the seconds to build the analyzer plus its first
  call. PatternAttribution uses patterns fitted beforehand on the same batch.
- ``fit`` (ViT): the statistics pass per further batch over its floor (the forward pass plus
  the two kernel gradients per kernel map the estimator needs, `bench.py`'s floor).
- ``memory`` (each run in its own process): peak RSS of each method's analysis and of the
  plain tape gradient, each above a process that only runs the forward pass; and of ViT
  pattern fits streaming few and many images (flat in their number).

The models are Keras' own layers: a 16x16 patch convolution, a learned position embedding,
pre-norm blocks of MultiHeadAttention (12 heads of 64) and a GELU MLP (3072), a pooled
head (ViT: 224x224 images, 196 tokens; BERT: 128 tokens of a 30522-word vocabulary, post-norm
blocks, the first token's head).
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import keras_patterns as kp  # noqa: E402
from bench import (  # noqa: E402
    fit_time,
    interleaved,
    kernel_gradient_floor,
    peak_rss_kib,
    quiet_fit,
    row,
    verdict,
)

ANALYSIS_GOAL = 2.3
BUILD_GOAL_S = 2.0
MEMORY_GOAL = 1.3
FIT_PER_BATCH_GOAL = 1.2
METHODS = ("gradient", "attnlrp", "cp_lrp", "pattern.attribution", "pattern.attribution:linear")
SECTIONS = ("analysis", "fit", "memory")


class PositionEmbedding(layers.Layer):
    """A learned embedding per position, added to the tokens."""

    def build(self, shape):
        self.positions = self.add_weight(shape=tuple(shape[1:]), initializer="random_normal")

    def call(self, x):
        return x + self.positions


def _block(x, width, heads, mlp, pre_norm, name):
    norm = (lambda v, k: layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln{k}")(v))
    h = norm(x, 1) if pre_norm else x
    h = layers.MultiHeadAttention(heads, width // heads, name=f"{name}_mha")(h, h)
    x = layers.Add()([x, h])
    x = x if pre_norm else norm(x, 1)
    h = norm(x, 2) if pre_norm else x
    h = layers.Dense(mlp, activation="gelu", name=f"{name}_mlp1")(h)
    h = layers.Dense(width, name=f"{name}_mlp2")(h)
    x = layers.Add()([x, h])
    return x if pre_norm else norm(x, 2)


def vit(size=224, patch=16, blocks=12, width=768, heads=12, mlp=3072, classes=1000):
    keras.utils.set_random_seed(0)
    image = keras.Input((size, size, 3))
    x = layers.Conv2D(width, patch, strides=patch, name="patches")(image)
    x = layers.Reshape(((size // patch) ** 2, width))(x)
    x = PositionEmbedding(name="positions")(x)
    for k in range(blocks):
        x = _block(x, width, heads, mlp, True, f"block{k}")
    x = layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(image, layers.Dense(classes, name="head")(x), name="vit")


def bert(tokens=128, vocabulary=30522, blocks=12, width=768, heads=12, mlp=3072, classes=2):
    keras.utils.set_random_seed(0)
    ids = keras.Input((tokens,), dtype="int32")
    x = layers.Embedding(vocabulary, width, name="tokens")(ids)
    x = PositionEmbedding(name="positions")(x)
    x = layers.LayerNormalization(epsilon=1e-12, name="embedding_ln")(x)
    for k in range(blocks):
        x = _block(x, width, heads, mlp, False, f"block{k}")
    x = layers.Dense(width, activation="tanh", name="pooler")(x[:, 0])
    return keras.Model(ids, layers.Dense(classes, name="head")(x), name="bert")


def build(name, args):
    if name == "vit":
        model = vit(args.size, blocks=args.blocks)
        x = np.random.default_rng(0).uniform(size=(4, args.size, args.size, 3))
        return model, x.astype("float32")
    model = bert(args.tokens, blocks=args.blocks)
    return model, np.random.default_rng(0).integers(1, 30522, size=(8, args.tokens),
                                                     dtype="int32")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit,bert")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--blocks", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fit-batches", type=int, default=2)
    p.add_argument("--memory-images", default="16,64")
    p.add_argument("--scratch", default=tempfile.gettempdir(),
                   help="a folder for the patterns the memory section fits once")
    p.add_argument("--_child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        return child(json.loads(args._child), args)
    sections = args.sections.split(",")
    for name in args.models.split(","):
        model, x = build(name, args)
        forward = tf.function(lambda v, m=model: m(v, training=False), autograph=False)
        t_forward = interleaved([lambda f=forward, v=x: f(v).numpy()], args.repeats)[0]
        print(f"\n{name}: {args.blocks} blocks, batch {len(x)} of {x.shape[1:]}; forward "
              f"{t_forward * 1000:.0f} ms; TensorFlow {tf.__version__}, Keras "
              f"{keras.__version__}")
        if "analysis" in sections:
            analysis(model, forward, x, args)
        if "fit" in sections and name == "vit":
            fitting(model, forward, x, args)
        if "memory" in sections:
            memory(name, args)


def tape_gradient_build(model, x):
    """Seconds to trace and run once a plain tape gradient of the model (the reference of
    the build times; float inputs)."""
    start = time.perf_counter()

    @tf.function
    def gradient(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = tf.reduce_max(model(v, training=False), axis=1)  # on the tape: a gradient
        return tape.gradient(y, v)

    assert gradient(x[:1]) is not None
    return time.perf_counter() - start


def analysis(model, forward, x, args):
    patterns = {t: quiet_fit(model, x, batch_size=len(x), pattern_type=t)
                for t in ("relu", "linear")}
    if x.dtype.kind == "f":
        print(f"tape gradient: build + first call {tape_gradient_build(model, x):.2f} s")
    print(f"{'analyze / forward':<40} {'ratio':>9}   build + first call (s)")
    for name in METHODS:
        method, _, pattern_type = name.partition(":")
        extra = {}
        if method.startswith("pattern."):
            pattern_type = pattern_type or "relu"
            extra = {"patterns": patterns[pattern_type], "pattern_type": pattern_type}
        start = time.perf_counter()
        analyzer = kp.create_analyzer(method, model, batch_size=len(x), **extra)
        analyzer.analyze(x[:1])
        t_build = time.perf_counter() - start
        t, t_forward = interleaved([functools.partial(analyzer.analyze, x),
                                    lambda: forward(x).numpy()], args.repeats)
        goal = None if name == "gradient" else ANALYSIS_GOAL
        print(f"{name:<40} {t / t_forward:>9.2f}   "
              + (verdict(t / t_forward, goal) if goal else " " * 18)
              + f"   build {t_build:.2f} s {'met' if t_build <= BUILD_GOAL_S else 'MISSED'}")
        del analyzer


def fitting(model, forward, x, args):
    b = len(x)
    floor = kernel_gradient_floor(model)
    t_floor = interleaved([lambda: floor(x).numpy()], args.repeats)[0]

    t_one = fit_time(model, x, b)
    t_more = fit_time(model, np.concatenate([x] * (1 + args.fit_batches)), b)
    per_batch = (t_more - t_one) / args.fit_batches
    print(f"fit, relu patterns, batches of {b}")
    row("fit per further batch / floor", per_batch / t_floor, FIT_PER_BATCH_GOAL,
        "unreliable: raise --fit-batches" if per_batch <= 0 else "")


def memory(name, args):
    """Peak RSS above a forward-only process: each method against the tape gradient."""
    base = run_child({"model": name, "job": "forward"}, args)["rss"]
    tape = run_child({"model": name, "job": "tape"}, args)["rss"] - base
    print(f"memory above the forward pass's process ({base / 1024:.0f} MiB): tape gradient "
          f"{tape / 1024:.0f} MiB")
    patterns = os.path.join(args.scratch, f"{name}.patterns.h5")
    run_child({"model": name, "job": "fit", "images": 4, "save": patterns}, args)
    for method in METHODS[1:4]:
        job = {"model": name, "job": method, "patterns": patterns}
        extra = run_child(job, args)["rss"] - base
        row(f"{method} / tape gradient", extra / max(tape, 1), MEMORY_GOAL,
            f"{extra / 1024:.0f} MiB")
    if name == "vit":
        fits = [run_child({"model": name, "job": "fit", "images": int(n)}, args)["rss"]
                for n in args.memory_images.split(",")]
        row("fit peak RSS, most / fewest images", fits[-1] / fits[0], 1.1)


def run_child(job, args):
    cmd = [sys.executable, __file__, "--_child", json.dumps(job), "--size", str(args.size),
           "--tokens", str(args.tokens), "--blocks", str(args.blocks), "--scratch",
           args.scratch]
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{job} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def child(job, args):
    model, x = build(job["model"], args)
    kind = job["job"]
    if kind == "forward":
        model(x, training=False)
    elif kind == "tape":
        v = tf.constant(x)
        with tf.GradientTape() as tape:
            if x.dtype.kind == "f":
                tape.watch(v)
            y = tf.reduce_max(model(v, training=False), axis=1)  # on the tape
        target = v if x.dtype.kind == "f" else model.trainable_weights[0]
        grad = tape.gradient(y, target)
        assert grad is not None, "the tape gradient must reach its target"
    elif kind == "fit":
        if x.dtype.kind == "f":
            data = tf.data.Dataset.range(job["images"]).map(
                lambda i: tf.random.stateless_uniform(x.shape[1:], tf.stack([i, i + 1])))
            patterns = quiet_fit(model, data.batch(len(x)))
        else:
            patterns = quiet_fit(model, np.concatenate([x] * max(1, job["images"] // len(x))))
        if job.get("save"):
            kp.save_patterns(patterns, job["save"])
    else:
        extra = {}
        if kind.startswith("pattern."):  # fitted in another process: only the analysis
            extra["patterns"] = job["patterns"]
        kp.create_analyzer(kind, model, batch_size=len(x), **extra).analyze(x)
    print(json.dumps({"rss": peak_rss_kib()}))


if __name__ == "__main__":
    main()
