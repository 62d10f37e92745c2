"""Fitting under tf.distribute.MirroredStrategy on two logical CPU devices gives the same
statistics as a single device (exact totals: no replica is counted twice)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_patterns as kp

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(37, 6, 6, 2)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    single = kp.compute_patterns(model, x, batch_size=10)
    mirrored = kp.compute_patterns(model, x, batch_size=10, strategy=strategy)
    assert mirrored.n_samples == single.n_samples == 37
    for key in single:
        for regime in ("plus", "minus"):
            assert np.array_equal(mirrored.counts[key][regime], single.counts[key][regime]), key
        for name in single[key]:
            np.testing.assert_allclose(mirrored[key][name], single[key][name], rtol=1e-5,
                                       atol=1e-6 * np.abs(single[key][name]).max())
    print("ok")
""")


def test_mirrored_strategy_on_two_logical_cpus():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
