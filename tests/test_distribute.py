"""Fitting under tf.distribute.MirroredStrategy on two logical CPU devices gives the same
statistics as a single device (exact totals: no replica is counted twice); explaining under
it gives the same explanations, each replica explaining its contiguous share of a chunk.
Under MultiWorkerMirroredStrategy, two worker processes on this machine (one replica each,
talking over localhost) fit the patterns and explain as one device does."""

import os
import socket
import subprocess
import sys
import textwrap

TWO_DEVICES = textwrap.dedent("""
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_patterns as kp
""")

SAME_PATTERNS = textwrap.dedent("""
    def assert_same_patterns(got, want):
        # exact counts, sums equal to float round-off: no sample counted twice or missed
        assert got.n_samples == want.n_samples == 37, got.n_samples
        for key in want:
            for regime in ("plus", "minus"):
                assert np.array_equal(got.counts[key][regime], want.counts[key][regime]), key
            for name in want[key]:
                np.testing.assert_allclose(got[key][name], want[key][name], rtol=1e-5,
                                           atol=1e-6 * np.abs(want[key][name]).max())
""")

SCRIPT = TWO_DEVICES + SAME_PATTERNS + textwrap.dedent("""

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(37, 6, 6, 2)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    single = kp.compute_patterns(model, x, batch_size=10)
    mirrored = kp.compute_patterns(model, x, batch_size=10, strategy=strategy)
    assert_same_patterns(mirrored, single)
    print("ok")
""")


def test_mirrored_strategy_on_two_logical_cpus():
    _run(SCRIPT)


ANALYZE_SCRIPT = TWO_DEVICES + textwrap.dedent("""
    from keras_patterns import replicas

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 2)),
                              keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(5)])
    x = np.random.default_rng(0).normal(size=(37, 8, 8, 2)).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    # which replica explained which sample: contiguous shares, in order
    split = replicas.Split(lambda per_sample: [
        tf.zeros_like(per_sample[0][:, 0, 0, 0])
        + tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)])
    owner = split(strategy, [tf.constant(x)])[0].numpy()
    assert owner.tolist() == [0.0] * 19 + [1.0] * 18, owner
    assert replicas.shares(37, 2) == [(0, 19), (19, 37)]

    calls = []
    step = replicas.Split._step
    replicas.Split._step = lambda self, s: calls.append(s) or step(self, s)
    methods = [("gradient", {}), ("pattern.attribution", {}), ("lrp.epsilon", {}),
               ("smoothgrad", {"augment_by_n": 5, "seed": 1}),
               ("integrated_gradients", {"steps": 4})]
    for name, kwargs in methods:
        for mode in ("max_activation", "index"):
            analyzer = kp.create_analyzer(name, model, neuron_selection_mode=mode,
                                          batch_size=12, **kwargs)
            if name.startswith("pattern."):
                analyzer.fit(x)
            selection = None if mode == "max_activation" else np.arange(37) % 5
            one = analyzer.analyze(x, selection)
            del calls[:]
            two = analyzer.analyze(x, selection, strategy=strategy)
            assert calls, (name, "the strategy was not used")
            with strategy.scope():
                three = analyzer.analyze(x, selection)
            # chunks 12, 12, 12 are split 6 + 6; the last chunk (1 sample) runs alone
            np.testing.assert_allclose(two, one, rtol=1e-6, atol=1e-7, err_msg=name)
            np.testing.assert_allclose(three, one, rtol=1e-6, atol=1e-7, err_msg=name)
    print("ok")
""")


def test_explanations_under_a_mirrored_strategy_equal_one_device():
    _run(ANALYZE_SCRIPT)


WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    ports, index = sys.argv[1].split(","), int(sys.argv[2])
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"localhost:{p}" for p in ports]},
        "task": {"type": "worker", "index": index}})
    import numpy as np
    import tensorflow as tf
    import keras
    import keras_patterns as kp
""") + SAME_PATTERNS + textwrap.dedent("""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 2)),
                              keras.layers.Conv2D(3, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    # every worker reads the same batches; each replica takes its share of each
    x = np.random.default_rng(0).normal(size=(37, 6, 6, 2)).astype("float32")
    single = kp.compute_patterns(model, x, batch_size=10)
    multi = kp.compute_patterns(model, x, batch_size=10, strategy=strategy)
    assert_same_patterns(multi, single)
    for name in ("gradient", "pattern.attribution"):
        kwargs = {"patterns": single} if name.startswith("pattern.") else {}
        analyzer = kp.create_analyzer(name, model, batch_size=12, **kwargs)
        one = analyzer.analyze(x)
        both = analyzer.analyze(x, strategy=strategy)  # the whole explanation on each worker
        np.testing.assert_allclose(both, one, rtol=1e-6, atol=1e-7, err_msg=name)
    print("ok")
""")


def test_multi_worker_mirrored_strategy_across_two_processes():
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = ",".join(str(s.getsockname()[1]) for s in sockets)
    for s in sockets:
        s.close()
    env = _env()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, ports, str(i)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for i in range(2)]
    try:
        results = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0, err[-3000:]
        assert out.strip().endswith("ok")


def _run(script):
    """Run `script` in its own process (logical devices are set before TensorFlow starts)."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def _env():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
