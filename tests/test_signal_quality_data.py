"""The signal quality's data sources, split protocol, layer selection and refusals."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from signal_quality_oracle import assert_matches, conv_model, dense_model, oracle

import keras_patterns as kp
from keras_patterns.evaluate.signal_quality import signal_quality
from keras_patterns.evaluate.splits import stream_split

# ---------------------------------------------------------------------------------------
# data sources and the split protocol


def test_stream_split_rule():
    order = []
    given = [0, 0, 0]
    for i in range(9):
        order.append(stream_split(given, np.full(3, 1 / 3), i))
        given[order[-1]] += 1
    assert order == [0, 1, 2] * 3
    order, given = [], [0, 0, 0]
    for i in range(8):
        order.append(stream_split(given, np.array([0.5, 0.25, 0.25]), i))
        given[order[-1]] += 1
    assert order == [0, 1, 2, 0, 0, 1, 2, 0]


class ArrayBatches(keras.utils.PyDataset):
    def __init__(self, x, batch):
        super().__init__()
        self.x, self.batch = x, batch

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        return self.x[i * self.batch:(i + 1) * self.batch], np.zeros(self.batch)


def test_streams_split_by_batch_index():
    """Streams send batch i to split i mod 3: the same rho as arrays holding batches
    0, 3, 6, ... first, then 1, 4, 7, ..., then 2, 5, 8, ..."""
    model = dense_model()
    x = np.random.default_rng(12).normal(size=(270, 8)).astype("float32")
    batches = np.split(x, 9)
    reordered = np.concatenate([batches[i] for k in range(3) for i in range(k, 9, 3)])
    names = ("filter", "relu")
    expected = signal_quality(model, reordered, estimators=names, batch_size=30,
                              per_neuron=True)
    sources = {
        "dataset": tf.data.Dataset.from_tensor_slices((x, np.zeros(270))).batch(30),
        "unbatched dataset": tf.data.Dataset.from_tensor_slices(x),
        "generator": (b for b in batches),
        "pydataset": ArrayBatches(x, 30),
        "endless dataset with steps": tf.data.Dataset.from_tensor_slices(x).batch(30).repeat(),
    }
    for what, data in sources.items():
        got = signal_quality(model, data, estimators=names, batch_size=30, per_neuron=True,
                             steps=9 if "steps" in what else None, verbose=what == "generator")
        assert got.samples == (90, 90, 90), what
        for name in names:
            for layer in ("dense", "dense_1"):
                np.testing.assert_allclose(got.per_neuron[name][layer],
                                           expected.per_neuron[name][layer], atol=1e-9,
                                           err_msg=what)


def test_unequal_splits_and_tuples():
    model = dense_model()
    x = np.random.default_rng(13).normal(size=(400, 8)).astype("float32")
    shares = (0.5, 0.25, 0.25)
    result = signal_quality(model, (x, np.zeros(400)), estimators=("linear",), splits=shares,
                            per_neuron=True)
    assert result.samples == (200, 100, 100)
    assert_matches(result, oracle(model, x, ("linear",), shares=shares))


def test_layer_selection_and_result_shape():
    model = conv_model()
    x = np.random.default_rng(14).normal(size=(90, 7, 6, 2)).astype("float32")
    full = signal_quality(model, x, estimators=("filter", "linear"))
    assert full.per_neuron is None
    assert list(full) == ["filter", "linear"]
    assert full.layers == ("conv2d", "conv2d_1", "conv2d_2", "dense")
    one = signal_quality(model, x, estimators="linear", layers=["conv2d_1"], per_neuron=True)
    assert list(one["linear"]) == ["conv2d_1"]
    assert one["linear"]["conv2d_1"] == pytest.approx(full["linear"]["conv2d_1"], abs=1e-12)
    assert one.per_neuron["linear"]["conv2d_1"].shape == (3,)
    assert "conv2d_1" in one.table()


def test_large_layers_are_skipped_with_a_warning():
    model = keras.Sequential([keras.Input((20,)),
                              keras.layers.Dense(3, activation="relu", name="dense"),
                              keras.layers.Dense(2, name="dense_1")])
    x = np.random.default_rng(15).normal(size=(300, 20)).astype("float32")
    with pytest.warns(UserWarning, match="'dense'.*D = 20 > max_dim = 10"):
        small = signal_quality(model, x, estimators=("filter", "relu"), max_dim=10)
    assert "dense" in small.skipped and small.layers == ("dense_1",)
    assert "dense" not in small["relu"]
    full = signal_quality(model, x, estimators=("filter", "relu"))
    assert small["relu"]["dense_1"] == pytest.approx(full["relu"]["dense_1"], abs=1e-12)


# ---------------------------------------------------------------------------------------
# bad input


def test_bad_input_is_refused_clearly():
    model = dense_model()
    x = np.random.default_rng(16).normal(size=(60, 8)).astype("float32")
    with pytest.raises(ValueError, match="unknown estimator 'gradient'"):
        signal_quality(model, x, estimators=("relu", "gradient"))
    with pytest.raises(ValueError, match="no kernel layer named 'conv'.*dense, dense_1"):
        signal_quality(model, x, layers=["conv"])
    with pytest.raises(kp.InvalidInputError, match="splits of \\[2, 1, 2\\] samples"):
        signal_quality(model, x[:5])
    with pytest.raises(kp.InvalidInputError, match="2 batch\\(es\\), split \\[1, 1, 0\\]"):
        signal_quality(model, tf.data.Dataset.from_tensor_slices(x).batch(30))
    with pytest.raises(ValueError, match="splits must be three positive"):
        signal_quality(model, x, splits=(0.5, 0.5))
    with pytest.raises(ValueError, match="splits must be three positive"):
        signal_quality(model, x, splits=(0.5, 0.5, 0.0))


@pytest.mark.parametrize("layer", [keras.layers.DepthwiseConv2D(3),
                                   keras.layers.Conv2DTranspose(2, 3),
                                   keras.layers.SeparableConv2D(2, 3)])
def test_unsupported_kernel_kinds_are_refused(layer):
    model = keras.Sequential([keras.Input((6, 6, 2)), layer, keras.layers.Flatten(),
                              keras.layers.Dense(2, name="dense")])
    x = np.random.default_rng(17).normal(size=(30, 6, 6, 2)).astype("float32")
    with pytest.raises(kp.NotAnalyzableModelError, match=f"'{layer.name}.*"
                       f"{type(layer).__name__}.*pass layers="):
        signal_quality(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few observations for D
        result = signal_quality(model, x, estimators=("filter",), layers=["dense"])
    assert list(result["filter"]) == ["dense"]

