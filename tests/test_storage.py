"""Patterns files: round trip, refusals naming the mismatch, atomic writes."""

import os

import h5py
import keras
import numpy as np
import pytest
from keras import layers

import keras_patterns as kp


def _model(seed=0, units=5):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(units, activation="relu"),
                             layers.Dense(3)])


def _data():
    return np.random.default_rng(0).normal(size=(50, 6, 6, 2)).astype("float32")


@pytest.fixture()
def fitted(tmp_path):
    model = _model()
    patterns = kp.compute_patterns(model, _data())
    path = kp.save_patterns(patterns, tmp_path / "net.patterns.h5")
    return model, patterns, path


def test_patterns_path():
    assert kp.patterns_path("vgg16.keras") == "vgg16.patterns.h5"
    assert kp.patterns_path("a/b.weights.h5") == "a/b.patterns.h5"
    assert kp.patterns_path("model") == "model.patterns.h5"


def test_round_trip_and_analyzer_from_file(fitted):
    model, patterns, path = fitted
    loaded = kp.load_patterns(path, model)
    assert loaded.pattern_type == "relu" and loaded.n_samples == 50
    assert set(loaded) == set(patterns)
    for key in patterns:
        for name in patterns[key]:
            np.testing.assert_allclose(loaded[key][name], patterns[key][name], rtol=1e-6)
        np.testing.assert_array_equal(loaded.counts[key]["plus"], patterns.counts[key]["plus"])
    x = _data()[:4]
    direct = kp.create_analyzer("pattern.attribution", model, patterns=patterns).analyze(x)
    from_file = kp.create_analyzer("pattern.attribution", model, patterns=path).analyze(x)
    np.testing.assert_allclose(from_file, direct, rtol=1e-5, atol=1e-7)


def test_read_in_float32_and_the_analyzer_keeps_that_copy(fitted):
    """A file read as float32 holds the stored float64 values rounded once; an analyzer
    given the path keeps that copy and forms W * A from it (numpy, float64 product)."""
    model, patterns, path = fitted
    loaded = kp.load_patterns(path, model, dtype="float32")
    analyzer = kp.create_analyzer("pattern.attribution", model, patterns=path)
    for key in patterns:
        for name, a in patterns[key].items():
            assert loaded[key][name].dtype == np.float32
            np.testing.assert_array_equal(loaded[key][name], a.astype(np.float32))
            np.testing.assert_array_equal(analyzer.patterns[key][name], a.astype(np.float32))
    for _, key, kmap in analyzer._entries:
        w = np.asarray(kmap.kernel, np.float64)
        for name, a in patterns[key].items():
            want = (a.astype(np.float32).astype(np.float64) * w).astype(np.float32)
            np.testing.assert_array_equal(analyzer._kernels[key][name].numpy(), want)
    assert kp.load_patterns(path, model, dtype="float64")[key][name].dtype == np.float64
    with pytest.raises(ValueError, match="dtype must be one of"):
        kp.load_patterns(path, model, dtype="int8")


def test_keys_survive_new_layer_names(fitted, tmp_path):
    """A model rebuilt in a new session gets other automatic layer names."""
    model, _, path = fitted
    rebuilt = _model()
    rebuilt.set_weights(model.get_weights())
    assert [layer.name for layer in rebuilt.layers] != [layer.name for layer in model.layers]
    loaded = kp.load_patterns(path, rebuilt)
    assert set(loaded) == {layer.name for layer in rebuilt.layers if hasattr(layer, "kernel")}


def test_refuses_other_architecture(fitted):
    _, _, path = fitted
    with pytest.raises(kp.PatternFileError, match="another architecture") as e:
        kp.load_patterns(path, _model(units=7))
    assert str(path) in str(e.value)


def test_refuses_other_weights(fitted):
    model, _, path = fitted
    other = _model(seed=1)
    with pytest.raises(kp.PatternFileError, match="other weights"):
        kp.load_patterns(path, other)


def test_refuses_newer_format(fitted):
    model, _, path = fitted
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(kp.PatternFileError, match="format version 99"):
        kp.load_patterns(path, model)


def test_refuses_truncated_and_damaged_files(fitted, tmp_path):
    model, _, path = fitted
    data = open(path, "rb").read()
    cut = tmp_path / "cut.patterns.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(kp.PatternFileError, match="cut.patterns.h5"):
        kp.load_patterns(cut, model)
    junk = tmp_path / "junk.patterns.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(kp.PatternFileError, match="damaged"):
        kp.load_patterns(junk, model)
    with pytest.raises(kp.PatternFileError, match="does not exist"):
        kp.load_patterns(tmp_path / "missing.h5", model)


def test_atomic_write_keeps_the_old_file(fitted, monkeypatch):
    model, patterns, path = fitted
    before = open(path, "rb").read()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        kp.save_patterns(patterns, path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".patterns-")] == []
    kp.load_patterns(path, model)


def test_analyzer_refuses_patterns_of_another_model(fitted):
    _, _, path = fitted
    with pytest.raises(kp.PatternFileError):
        kp.create_analyzer("pattern.net", _model(units=7), patterns=path)
