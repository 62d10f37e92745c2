"""The public API: names, descriptions, errors."""

import keras
import numpy as np
import pytest
from keras import layers

import keras_patterns as kp

ENGINE_METHODS = {"gradient", "input_t_gradient", "smoothgrad", "integrated_gradients",
                  "deconvnet", "guided_backprop", "input", "random"}


def test_public_names():
    assert isinstance(kp.__version__, str) and kp.__version__.count(".") == 2
    assert issubclass(kp.NotAnalyzableModelError, ValueError)
    names = kp.list_analyzers()
    assert ENGINE_METHODS <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())


def test_unknown_analyzer_lists_the_names():
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(KeyError, match="gradient"):
        kp.create_analyzer("gradiant", m)


def test_unknown_parameter_is_an_error():
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(TypeError):
        kp.create_analyzer("gradient", m, noise=1)
    with pytest.raises(ValueError, match="postprocess"):
        kp.create_analyzer("gradient", m, postprocess="cube")


def test_input_and_random_baselines():
    m = keras.Sequential([keras.Input((3, 2)), layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(500, 3, 2)).astype("float32")
    assert np.array_equal(kp.create_analyzer("input", m).analyze(x), x)
    r = kp.create_analyzer("random", m, stddev=2.0, seed=3).analyze(x)
    assert r.shape == x.shape
    assert abs(r.std() - 2.0) < 0.1 and abs(r.mean()) < 0.1
    r2 = kp.create_analyzer("random", m, stddev=2.0, seed=3).analyze(x)
    assert np.array_equal(r, r2)


def test_no_output_on_stdout(capfd):
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    kp.create_analyzer("gradient", m).analyze(np.ones((2, 3), "float32"))
    out, _ = capfd.readouterr()
    assert out == ""


@pytest.mark.parametrize("labels", [False, True])
def test_a_subclassed_model_explains_a_dataset_as_its_first_call(labels):
    """The graph of a subclassed model is built from the first batch, also when that batch
    comes out of a tf.data.Dataset (of x, or of (x, y) pairs)."""
    import tensorflow as tf
    from oracles import assert_close, tape_gradient
    from test_any_layer import Subclassed

    keras.utils.set_random_seed(0)
    model = Subclassed()
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    model(x[:1])
    data = (x, np.zeros(6, "int32")) if labels else x
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(4)
    got = kp.create_analyzer("gradient", model).analyze(dataset)
    assert_close(got, tape_gradient(model, x))


def test_an_unknown_keyword_names_the_method_its_parameters_and_the_closest():
    m = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(TypeError) as caught:
        kp.create_analyzer("gradient", m, epsilonn=0.1)
    message = str(caught.value)
    assert "'gradient'" in message and "'epsilonn'" in message
    assert "postprocess" in message and "batch_size" in message
    assert "did you mean" not in message  # gradient has nothing close to it
    with pytest.raises(ValueError, match=r"'lrp.epsilon' has no parameter 'epsilonn'; did you "
                                         r"mean 'epsilon'\? Its parameters are epsilon, bias"):
        kp.create_analyzer("lrp.epsilon", m, epsilonn=0.1)
    with pytest.raises(TypeError, match="did you mean 'augment_by_n'"):
        kp.create_analyzer("smoothgrad", m, augment_by=4)
    # iNNvestigate's keywords are not unknown
    kp.create_analyzer("gradient", m, reverse_verbose=True, disable_model_checks=True)


def test_every_method_describes_itself():
    """Each registered class says what it returns, whether it needs data, how to run it on
    a small CNN with inputs in [0, 1], and the paper; the lists read these facts."""
    from keras_patterns.analyzers import analyzer_class, signal_methods

    for name in kp.list_analyzers():
        cls = analyzer_class(name)
        assert cls.name == name and cls.returns in ("signal", "attribution"), name
        assert isinstance(cls.needs_fit, bool) and isinstance(cls.example, dict), name
    assert signal_methods() == {"input", "gradient", "smoothgrad", "deconvnet",
                                "guided_backprop", "pattern.net"}
    assert {n for n in kp.list_analyzers() if analyzer_class(n).needs_fit} == {
        "pattern.net", "pattern.attribution"}
    assert analyzer_class("pattern.net").needs_fit_with(pattern_type="filter") is False
    assert analyzer_class("lrp.alpha_beta").example == {"alpha": 2.0, "beta": 1.0}
    assert analyzer_class("lrp.alpha_2_beta_1").example == {}
    assert "Kindermans" in analyzer_class("pattern.attribution").citation
    assert "Bach" in analyzer_class("lrp.epsilon").citation
