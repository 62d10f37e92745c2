"""Patterns of a small CNN: every data source and batch size gives the same patterns (up to
round-off), and PatternNet / PatternAttribution equal a tape oracle of their back-projection."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close

import keras_patterns as kp


def _cnn():
    keras.utils.set_random_seed(9)
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(), layers.Flatten(),
                             layers.Dense(6, activation="relu"), layers.Dense(3)])


def test_batching_and_data_sources_agree():
    """Batches matter only at round-off: the model's float32 forward pass (whose per-sample
    results vary with the batch size) and each batch's float32 sums."""
    model = _cnn()
    x = np.random.default_rng(2).normal(size=(70, 6, 6, 2)).astype("float32")
    labels = np.zeros(70)
    ref = kp.compute_patterns(model, x, batch_size=64)

    def gen():
        for i in range(0, 70, 9):
            yield x[i:i + 9], labels[i:i + 9]

    class Seq(keras.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return x[i * 14:(i + 1) * 14], labels[i * 14:(i + 1) * 14]

    sources = {
        "batch 1": dict(data=x, batch_size=1),
        "batch 7": dict(data=x, batch_size=7),
        "(x, y)": dict(data=(x, labels), batch_size=16),
        "tf.data": dict(data=tf.data.Dataset.from_tensor_slices((x, labels)).batch(11)),
        "tf.data unbatched": dict(data=tf.data.Dataset.from_tensor_slices(x), batch_size=13),
        "generator": dict(data=gen()),
        "PyDataset": dict(data=Seq()),
    }
    for what, kw in sources.items():
        p = kp.compute_patterns(model, **kw)
        assert p.n_samples == 70, what
        for key in ref:
            for name in ref[key]:
                np.testing.assert_allclose(p[key][name], ref[key][name], rtol=1e-4,
                                           atol=1e-6 * np.abs(ref[key][name]).max(), err_msg=what)


def test_batch_size_changes_float64_sums_only_at_float64_round_off():
    """With an exact forward pass (inputs on a 1/256 grid, small integer weights) the only
    effect of the batching is the order of the sums: float64 round-off with
    precision="float64", float32 round-off with the default."""
    rng = np.random.default_rng(13)
    x = (np.round(rng.normal(0.5, 1.0, size=(64, 7, 6, 2)) * 256) / 256).astype("float32")
    model = keras.Sequential([keras.Input(x.shape[1:]),
                              layers.Conv2D(4, 3, padding="same", activation="relu"),
                              layers.Flatten(), layers.Dense(3)])
    for layer in (model.layers[0], model.layers[2]):
        layer.kernel.assign(rng.integers(-2, 3, size=layer.kernel.shape).astype("float32"))
        layer.bias.assign(np.full(layer.bias.shape, 0.5, "float32"))
    for precision, rtol in (("float64", 1e-10), ("float32", 1e-5)):
        fits = [kp.compute_patterns(model, x, batch_size=b, precision=precision,
                                    negative_patterns="all") for b in (64, 7, 1)]
        for other in fits[1:]:
            for key in fits[0]:
                for name in fits[0][key]:
                    assert_close(other[key][name], fits[0][key][name], rtol=rtol)


def _pattern_oracle(model, patterns, x, attribution):
    """PatternNet / PatternAttribution by tape: the gradient of a network whose kernels are
    the patterns (or W * A) and whose rectifier and max-pool decisions are frozen at the
    original forward pass, started with the selected output value y."""
    conv, pool, flat, dense, last = model.layers

    def kernel(layer, name):
        a = patterns[layer.name][name].astype("float32")
        return layer.kernel * a if attribution else tf.constant(a)

    xt = tf.constant(x)
    pre1 = conv.convolution_op(xt, conv.kernel) + conv.bias
    z2 = dense(flat(pool(tf.nn.relu(pre1))))  # post-relu
    pre2 = tf.matmul(flat(pool(tf.nn.relu(pre1))), dense.kernel) + dense.bias
    z3 = last(z2).numpy()
    k = np.argmax(z3, axis=1)
    y = z3[np.arange(len(x)), k]
    with tf.GradientTape() as tape:
        tape.watch(xt)
        u1 = conv.convolution_op(xt, kernel(conv, "a_plus")) * tf.cast(pre1 > 0, "float32")
        # straight-through: value of the original activations, gradient along u1, so the
        # max-pool routes by the original argmax
        w1 = tf.nn.relu(pre1) + u1 - tf.stop_gradient(u1)
        h = flat(pool(w1))
        u2 = tf.matmul(h, kernel(dense, "a_plus")) * tf.cast(pre2 > 0, "float32")
        plus = tf.matmul(u2, kernel(last, "a_plus"))
        minus = tf.matmul(u2, kernel(last, "a_minus"))
        out = tf.where(z3 > 0, plus, minus)
        start = np.zeros_like(z3)
        start[np.arange(len(x)), k] = y
        objective = tf.reduce_sum(out * start)
    return tape.gradient(objective, xt).numpy()


@pytest.mark.parametrize("method", ["pattern.net", "pattern.attribution"])
def test_pattern_methods_equal_tape_oracle(method):
    model = _cnn()
    x = np.random.default_rng(6).normal(size=(40, 6, 6, 2)).astype("float32")
    analyzer = kp.create_analyzer(method, model).fit(x)
    sample = x[:6]
    expected = _pattern_oracle(model, analyzer.patterns, sample,
                               method == "pattern.attribution")
    assert_close(analyzer.analyze(sample), expected, rtol=1e-5)


def test_analyze_before_fit_is_a_clear_error():
    """The model is analyzable: missing patterns are the caller's to supply."""
    model = _cnn()
    a = kp.create_analyzer("pattern.net", model)
    with pytest.raises(kp.PatternFileError, match="fit"):
        a.analyze(np.zeros((1, 6, 6, 2), "float32"))

