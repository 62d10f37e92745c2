"""Throughput of fitting and explaining under tf.distribute.MirroredStrategy, 1, 2, 4 devices.

    python bench/bench_distribute.py [--devices 1,2,4] [--size 64] [--images 64]
    python bench/bench_distribute.py --gpu          # the machine's GPUs, one per replica

Each device count runs in its own process (logical devices are configured before
TensorFlow starts). Without ``--gpu`` the replicas are logical CPU devices that share this
machine's cores, so the figure shows the overhead of splitting, not a speed-up; with
``--gpu`` the replicas are physical GPUs and the speed-up is the real one. The model is
VGG16 (random weights) at ``--size``, built inside the strategy's scope (its variables
mirrored on every device). Prints, per device count, images per second and the speed-up
over one device for the relu pattern fit (the streaming pass, tracing excluded) and for
gradient and PatternAttribution explanations, and checks that the patterns and the
explanations equal those of one device.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
devices, size, images = (int(a) for a in sys.argv[1:4])
gpu = sys.argv[4] == "1"
if gpu:
    names = [f"/gpu:{i}" for i in range(devices)]
    assert len(tf.config.list_physical_devices("GPU")) >= devices, "not enough GPUs"
else:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    names = [f"/cpu:{i}" for i in range(devices)]
import keras
sys.path.insert(0, sys.argv[5])
import keras_patterns as kp

strategy = tf.distribute.MirroredStrategy(names) if devices > 1 else tf.distribute.get_strategy()
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=1000,
                                     classifier_activation=None)
x = np.random.default_rng(0).uniform(size=(images, size, size, 3)).astype("float32")
batch = 8 * devices  # the same share per replica in every run
out = {}
kp.compute_patterns(model, x[:batch], batch_size=batch, strategy=strategy)  # tracing
start = time.perf_counter()
patterns = kp.compute_patterns(model, x, batch_size=batch, strategy=strategy)
out["fit"] = images / (time.perf_counter() - start)
out["pattern_sum"] = float(sum(np.abs(v).sum() for key in patterns for v in patterns[key].values()))
for name in ("gradient", "pattern.attribution"):
    kwargs = {"patterns": patterns} if kp.analyzers.analyzer_class(name).needs_fit else {}
    analyzer = kp.create_analyzer(name, model, batch_size=batch, **kwargs)
    analyzer.analyze(x[:batch], strategy=strategy)  # tracing
    start = time.perf_counter()
    e = analyzer.analyze(x, strategy=strategy)
    out[name] = images / (time.perf_counter() - start)
    out[name + "_sum"] = float(np.abs(e).sum())
print("RESULT " + json.dumps(out))
"""


def run(devices, size, images, gpu):
    root = os.path.dirname(HERE)
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(devices), str(size), str(images),
         "1" if gpu else "0", root], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{devices} device(s) failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="1,2,4")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--gpu", action="store_true", help="one physical GPU per replica")
    args = p.parse_args()
    counts = [int(d) for d in args.devices.split(",")]
    kind = "GPU" if args.gpu else "logical CPU"
    print(f"VGG16 at {args.size}x{args.size}, {args.images} images, 8 images per replica "
          f"and step, {kind} devices")
    results = {}
    for d in counts:
        start = time.perf_counter()
        results[d] = run(d, args.size, args.images, args.gpu)
        print(f"  {d} device(s) measured in {time.perf_counter() - start:.0f} s", flush=True)
    base = results[counts[0]]
    print(f"{'devices':>7s} " + " ".join(f"{c + ' img/s':>24s} {'speed-up':>8s}" for c in
                                         ("fit", "gradient", "pattern.attribution")))
    for d in counts:
        r = results[d]
        cells = [f"{r[c]:24.1f} {r[c] / base[c]:8.2f}" for c in
                 ("fit", "gradient", "pattern.attribution")]
        print(f"{d:7d} " + " ".join(cells))
    for key in ("pattern_sum", "gradient_sum", "pattern.attribution_sum"):
        values = [results[d][key] for d in counts]
        spread = (max(values) - min(values)) / max(abs(values[0]), 1e-30)
        print(f"{key}: relative spread over device counts {spread:.1e}")


if __name__ == "__main__":
    main()
