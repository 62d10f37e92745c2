"""Bad or unusual input gets an error that names the problem, never a silently wrong
explanation (reliability issue, points 2, 3 and 6)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp
from keras_patterns.inputs import positive_int


def _cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(4)])


def _x(n=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 6, 6, 2)).astype("float32")


# -- names of the reverse model ----------------------------------------------------------


def test_a_layer_called_twice_next_to_a_layer_named_like_its_second_call():
    """Keras names the second call's node like the layer 'dense_1': the reverse model's
    names are unique by construction, and the explanation is the tape gradient."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    shared = layers.Dense(6, activation="relu", name="dense")
    h = shared(inp)
    h = layers.Dense(6, activation="relu", name="dense_1")(h)
    out = layers.Dense(3, name="head")(shared(h))
    model = keras.Model(inp, out)
    x = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    for method in ("gradient", "lrp.epsilon", "guided_backprop", "pattern.net"):
        analyzer = kp.create_analyzer(method, model)
        if method == "pattern.net":
            analyzer.fit(np.random.default_rng(2).normal(size=(64, 6)).astype("float32"))
        names = [layer.name for layer in analyzer.reverse_model.layers]
        assert len(names) == len(set(names))
        assert np.isfinite(analyzer.analyze(x)).all()
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))


# -- non-finite values -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradient", "guided_backprop", "smoothgrad", "lrp.z",
                                    "integrated_gradients", "input_t_gradient"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_analyze_refuses_non_finite_input_naming_the_sample(method, bad):
    x = _x()
    x[3, 2, 1, 0] = bad
    kwargs = {"augment_by_n": 2} if method == "smoothgrad" else {}
    with pytest.raises(kp.InvalidInputError, match="sample 3 holds NaN or inf"):
        kp.create_analyzer(method, _cnn(), **kwargs).analyze(x)


def test_fit_refuses_non_finite_arrays_naming_the_sample_and_batch():
    x = np.random.default_rng(0).normal(size=(40, 6, 6, 2)).astype("float32")
    x[23, 0, 0, 1] = np.nan
    with pytest.raises(kp.InvalidInputError, match=r"sample 23 \(row 7 of batch 1\)"):
        kp.compute_patterns(_cnn(), x, batch_size=16)


def test_fit_refuses_non_finite_batches_of_a_dataset_and_a_generator():
    x = np.random.default_rng(0).normal(size=(40, 6, 6, 2)).astype("float32")
    x[33] = np.inf
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(10)
    with pytest.raises(kp.InvalidInputError, match="row 3 of batch 3"):
        kp.compute_patterns(_cnn(), dataset)
    with pytest.raises(kp.InvalidInputError, match="row 3 of batch 3"):
        kp.compute_patterns(_cnn(), (x[i:i + 10] for i in range(0, 40, 10)))


def test_data_errors_name_the_entry_point_the_user_called():
    """The batching is shared by fit and signal_quality; each error names the one called."""
    wrong_shape = np.zeros((40, 5, 6, 2), "float32")
    for call, name in ((kp.compute_patterns, "fit"),
                       (kp.evaluate.signal_quality, "signal_quality")):
        with pytest.raises(kp.InvalidInputError,
                           match=rf"^{name}\(\) on arrays: the model expects shape "
                                 r"\('batch', 6, 6, 2\), got an array of shape \(\d+, 5, 6, 2\)"):
            call(_cnn(), wrong_shape)
        with pytest.raises(kp.InvalidInputError, match=rf"^{name}\(\) on a generator: row 3 "
                                                         "of batch 3 holds NaN or inf"):
            x = _x(40)
            x[33] = np.nan
            call(_cnn(), (x[i:i + 10] for i in range(0, 40, 10)))
        with pytest.raises(kp.InvalidInputError, match=rf"^{name}\(\) cannot read data of "
                                                         "type int"):
            call(_cnn(), 3)
        with pytest.raises(kp.InvalidInputError, match=rf"^{name}\(\) on a tf.data.Dataset "
                                                         "of infinite cardinality"):
            call(_cnn(), tf.data.Dataset.from_tensor_slices(_x(4)).repeat())


@pytest.mark.parametrize("value", [0, -3, 2.0, 1.5, True, False, "4"])
def test_positive_int_refuses_what_is_not_a_positive_integer(value):
    with pytest.raises(ValueError, match=f"^steps must be a positive int, got {value!r}.$"):
        positive_int(value, "steps")
    with pytest.raises(ValueError, match="^steps must be a positive int or None, got "):
        positive_int(value, "steps", optional=True)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        kp.compute_patterns(_cnn(), _x(), checkpoint="unused.h5", checkpoint_every=value)


def test_positive_int_takes_numpy_integers_and_optionally_none():
    for value in (1, 7, np.int64(7), np.uint8(3)):
        assert positive_int(value, "n") == int(value)
        assert type(positive_int(value, "n")) is int
    assert positive_int(None, "steps", optional=True) is None
    with pytest.raises(ValueError, match="^steps must be a positive int, got None.$"):
        positive_int(None, "steps")


def test_patterns_that_overflow_float64_are_refused_naming_the_layer():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, activation="relu")])
    model.layers[0].kernel.assign(np.full((3, 2), 1e200, "float32").clip(-3e38, 3e38))
    x = np.random.default_rng(0).uniform(1e30, 3e30, size=(20, 3)).astype("float32")
    with pytest.raises(kp.InvalidInputError, match="non-finite"):
        kp.compute_patterns(model, x, precision="float64")


# -- wrong values ------------------------------------------------------------------------


def _embedding_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), dtype="int32")
    h = layers.Flatten()(layers.Embedding(10, 3)(inp))
    return keras.Model(inp, layers.Dense(2)(h))


def test_float_token_ids_must_be_whole_numbers():
    model = _embedding_model()
    analyzer = kp.create_analyzer("gradient", model)
    whole = np.array([[1, 2, 3, 4, 5]], "float32")
    assert_close(analyzer.analyze(whole), analyzer.analyze(whole.astype("int32")))
    with pytest.raises(kp.InvalidInputError, match="sample 1 holds non-integer"):
        analyzer.analyze(np.array([[1, 2, 3, 4, 5], [1, 2.5, 3, 4, 5]], "float32"))
    with pytest.raises(kp.InvalidInputError, match="token id 12.*vocabulary 0..9"):
        analyzer.analyze(np.array([[1, 2, 3, 4, 12]]))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "4"])
def test_analyze_batch_size_is_validated_like_the_constructors(batch_size):
    analyzer = kp.create_analyzer("gradient", _cnn())
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        analyzer.analyze(_x(), batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        kp.create_analyzer("gradient", _cnn(), batch_size=batch_size)


def test_neuron_selection_out_of_range_with_an_output_of_dynamic_size():
    """A fully convolutional model: the explained output's size depends on the input's."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, None, 2)),
                              layers.Conv2D(3, 3, activation="relu"), layers.Conv2D(2, 1)])
    analyzer = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 2)).astype("float32")  # 3x3x2 = 18
    assert_close(analyzer.analyze(x, neuron_selection=17),
                 tape_gradient(model, x, "index", [17, 17]))
    with pytest.raises(kp.InvalidInputError, match="out of range.*18 units"):
        analyzer.analyze(x, neuron_selection=18)
    bigger = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")  # 32
    assert np.abs(analyzer.analyze(bigger, neuron_selection=31)).max() > 0


# -- data sources --------------------------------------------------------------------------


def test_fit_refuses_an_infinite_dataset_without_steps():
    dataset = tf.data.Dataset.from_tensor_slices(_x(20)).batch(5).repeat()
    with pytest.raises(kp.InvalidInputError, match="infinite cardinality.*steps="):
        kp.compute_patterns(_cnn(), dataset)
    assert kp.compute_patterns(_cnn(), dataset, steps=3).n_samples == 15


def test_analyze_streams_a_dataset():
    model = _cnn()
    x = _x(13)
    analyzer = kp.create_analyzer("gradient", model, neuron_selection_mode="index")
    index = np.arange(13) % 4
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(13))).batch(5)
    assert_close(analyzer.analyze(dataset, neuron_selection=index),
                 tape_gradient(model, x, "index", index))
    assert_close(kp.create_analyzer("gradient", model).analyze(
        tf.data.Dataset.from_tensor_slices(x)), tape_gradient(model, x))
    with pytest.raises(kp.InvalidInputError, match="infinite"):
        analyzer.analyze(dataset.repeat(), neuron_selection=0)


def test_input_containers_get_named_errors():
    model = _cnn()
    analyzer = kp.create_analyzer("gradient", model)
    x = _x(2)
    with pytest.raises(kp.InvalidInputError, match="one input .*np.asarray"):
        analyzer.analyze(x.tolist())
    name = model.inputs[0].name
    assert_close(analyzer.analyze({name: x})[name], analyzer.analyze(x))
    with pytest.raises(kp.InvalidInputError, match="keyed by the model's input names"):
        analyzer.analyze({"pixels": x})
    with pytest.raises(kp.InvalidInputError, match="type str"):
        analyzer.analyze("images.npy")
    with pytest.raises(kp.InvalidInputError, match="dtype object"):
        analyzer.analyze(np.array([None, None], dtype=object))


def test_integrated_gradients_reference_of_the_wrong_shape():
    with pytest.raises(kp.InvalidInputError, match=r"reference_inputs .*shape \(5, 6, 2\)"):
        kp.create_analyzer("integrated_gradients", _cnn(), reference_inputs=np.zeros((5, 6, 2)))
    ok = kp.create_analyzer("integrated_gradients", _cnn(), steps=4,
                            reference_inputs=np.zeros((1, 2)))
    assert ok.analyze(_x(2)).shape == (2, 6, 6, 2)


def test_a_model_path_is_loaded_and_a_bad_one_named(tmp_path):
    model = _cnn()
    path = tmp_path / "cnn.keras"
    model.save(path)
    x = _x(3)
    assert_close(kp.create_analyzer("gradient", str(path)).analyze(x), tape_gradient(model, x))
    with pytest.raises(kp.NotAnalyzableModelError, match="is not a file"):
        kp.create_analyzer("gradient", str(tmp_path / "missing.keras"))
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    with pytest.raises(kp.NotAnalyzableModelError, match="could not be loaded"):
        kp.create_analyzer("gradient", str(junk))
    with pytest.raises(kp.NotAnalyzableModelError, match="got int"):
        kp.create_analyzer("gradient", 3)


def test_hard_swish_is_reported_by_its_own_name():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="hard_swish"),
                              layers.Dense(2)])
    with pytest.raises(kp.NotAnalyzableModelError,
                       match="'hard_s(wish|ilu)' \\(swish family\\) activation"):
        kp.create_analyzer("guided_backprop", model)


# -- patterns and weights ------------------------------------------------------------------


def test_patterns_of_changed_weights_are_refused_saying_refit():
    model = _cnn()
    data = _x(40)
    patterns = kp.compute_patterns(model, data)
    analyzer = kp.create_analyzer("pattern.attribution", model).fit(data)
    analyzer.analyze(_x(2))
    kernel = model.layers[0].kernel
    kernel.assign(kernel.numpy() * 1.01)  # as one training step would
    with pytest.raises(kp.PatternFileError, match="changed since the patterns were fitted.*"
                                                  "refit"):
        analyzer.analyze(_x(2))
    with pytest.raises(kp.PatternFileError, match="other weights.*refit"):
        kp.create_analyzer("pattern.net", model, patterns=patterns)
    analyzer.fit(data)
    assert np.isfinite(analyzer.analyze(_x(2))).all()


def test_unfitted_pattern_types_follow_weight_changes():
    """filter and random patterns need no data: they are recomputed from the new weights,
    and equal the patterns of a fresh analyzer."""
    model = _cnn()
    analyzer = kp.create_analyzer("pattern.net", model, pattern_type="filter")
    analyzer.analyze(_x(2))
    model.layers[2].kernel.assign(model.layers[2].kernel.numpy() * -2.0)
    fresh = kp.create_analyzer("pattern.net", model, pattern_type="filter")
    assert_close(analyzer.analyze(_x(2)), fresh.analyze(_x(2)))


def test_a_generator_of_unknown_length_shows_the_count_so_far(capsys):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    rng = np.random.default_rng(0)
    batches = (rng.normal(size=(4, 3)).astype("float32") for _ in range(5))
    kp.compute_patterns(model, batches, verbose=1)
    out = capsys.readouterr().out
    assert "5/Unknown" in out
