"""Fitting from every kind of data source: identical batches give the same statistics (the
same sums in the same order), `steps` limits the samples seen,
`verbose=1` shows a Keras progress bar, and bad data is an error naming the shape."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import keras_patterns as kp

N, BATCH = 70, 10
# the small model has a unit that is rarely active; its warning is tested elsewhere
pytestmark = pytest.mark.filterwarnings("ignore:.*zero pattern:UserWarning")


def _model():
    keras.utils.set_random_seed(9)
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(), layers.Flatten(),
                             layers.Dense(6, activation="relu"), layers.Dense(3)])


def _data():
    rng = np.random.default_rng(2)
    return (rng.normal(size=(N, 6, 6, 2)).astype("float32"),
            rng.integers(0, 3, N).astype("float32"))


class _Batches(keras.utils.PyDataset):
    """Batches of BATCH samples, as (x, y)."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return -(-len(self.x) // BATCH)

    def __getitem__(self, i):
        return self.x[i * BATCH:(i + 1) * BATCH], self.y[i * BATCH:(i + 1) * BATCH]


class _Endless(keras.utils.PyDataset):
    """An infinite PyDataset (num_batches None) cycling over the data."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    @property
    def num_batches(self):
        return None

    def __getitem__(self, i):
        i = i % (len(self.x) // BATCH)
        return self.x[i * BATCH:(i + 1) * BATCH]


def _assert_same(p, ref, what, rtol=1e-12):
    assert set(p) == set(ref), what
    for key in ref:
        for name in ref[key]:
            np.testing.assert_allclose(p[key][name], ref[key][name], rtol=rtol,
                                       atol=rtol * np.abs(ref[key][name]).max(), err_msg=what)


def test_every_source_with_the_same_batches_gives_the_same_patterns():
    model = _model()
    x, y = _data()
    ref = kp.compute_patterns(model, x, batch_size=BATCH)
    assert ref.n_samples == N

    def generator():
        for i in range(0, N, BATCH):
            yield x[i:i + BATCH], y[i:i + BATCH]

    sources = {
        "(x, y)": dict(data=(x, y), batch_size=BATCH),
        "(x, y, weights)": dict(data=(x, y, np.ones(N)), batch_size=BATCH),
        "tf.Tensor": dict(data=tf.constant(x), batch_size=BATCH),
        "tf.data (x, y) batched": dict(
            data=tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)),
        "tf.data unbatched": dict(data=tf.data.Dataset.from_tensor_slices(x),
                                  batch_size=BATCH),
        "generator": dict(data=generator()),
        "PyDataset": dict(data=_Batches(x, y)),
    }
    for what, kw in sources.items():
        p = kp.compute_patterns(model, **kw)
        assert p.n_samples == N, what
        _assert_same(p, ref, what)
    for method in ("pattern.net", "pattern.attribution"):
        analyzer = kp.create_analyzer(method, model).fit(_Batches(x, y))
        _assert_same(analyzer.patterns, ref, method)
    linear = kp.compute_patterns(model, _Batches(x, y), pattern_type="linear")
    _assert_same(linear, kp.compute_patterns(model, x, pattern_type="linear",
                                             batch_size=BATCH), "linear")


def test_steps_limits_the_samples_seen():
    model = _model()
    x, _ = _data()
    first30 = kp.compute_patterns(model, x[:30], batch_size=BATCH)

    def endless():
        while True:
            yield x[:BATCH]

    p = kp.compute_patterns(model, x, batch_size=BATCH, steps=3)
    assert p.n_samples == 30
    _assert_same(p, first30, "arrays, steps=3")
    analyzer = kp.create_analyzer("pattern.net", model).fit(x, batch_size=BATCH, steps=3)
    assert analyzer.patterns.n_samples == 30
    _assert_same(analyzer.patterns, first30, "analyzer.fit, steps=3")
    assert kp.compute_patterns(model, endless(), steps=4).n_samples == 40
    repeated = tf.data.Dataset.from_tensor_slices(x).batch(BATCH).repeat()
    assert kp.compute_patterns(model, repeated, steps=2).n_samples == 20
    assert kp.compute_patterns(model, _Endless(x), steps=5).n_samples == 50
    # more steps than batches: all of the data, once
    assert kp.compute_patterns(model, x, batch_size=32, steps=10).n_samples == N


def test_verbose_shows_a_progress_bar(capsys):
    model = _model()
    x, y = _data()
    kp.compute_patterns(model, x, batch_size=BATCH)
    assert capsys.readouterr().out == ""
    kp.create_analyzer("pattern.attribution", model).fit((x, y), batch_size=BATCH, verbose=1)
    out = capsys.readouterr().out
    assert f"{-(-N // BATCH)}/{-(-N // BATCH)}" in out and "batch" in out

    def generator():
        yield x[:BATCH]
        yield x[BATCH:2 * BATCH]

    kp.compute_patterns(model, generator(), verbose=1)
    assert "2/Unknown" in capsys.readouterr().out


def test_bad_data_is_an_error_naming_the_shape():
    model = _model()
    x, _ = _data()
    with pytest.raises(kp.InvalidInputError, match=r"\('batch', 6, 6, 2\).*\(10, 5, 6, 2\)"):
        kp.compute_patterns(model, x[:, :5], batch_size=BATCH)

    def wrong():
        yield x[:BATCH, :, :, :1]

    with pytest.raises(kp.InvalidInputError, match=r"generator.*\(10, 6, 6, 1\)"):
        kp.compute_patterns(model, wrong())
    with pytest.raises(kp.InvalidInputError, match=r"no data.*\('batch', 6, 6, 2\)"):
        kp.compute_patterns(model, iter([]), verbose=1)
    with pytest.raises(kp.InvalidInputError, match=r"no data.*\('batch', 6, 6, 2\)"):
        kp.create_analyzer("pattern.net", model).fit(x[:0])
    with pytest.raises(kp.InvalidInputError, match=r"no data.*\('batch', 6, 6, 2\)"):
        kp.compute_patterns(model, tf.data.Dataset.from_tensor_slices(x[:0]).batch(4))
    with pytest.raises(kp.InvalidInputError, match=r"shape \('batch', 6, 6, 2\).*\(\)"):
        kp.compute_patterns(model, ["not an image"])
    with pytest.raises(kp.InvalidInputError, match="needs steps"):
        kp.compute_patterns(model, _Endless(x))
    with pytest.raises(kp.InvalidInputError, match="cannot read data of type int"):
        kp.compute_patterns(model, 3)
    with pytest.raises(ValueError, match="pattern_type"):
        kp.compute_patterns(model, x, pattern_type="relu+")
