"""Code written for iNNvestigate runs on keras-patterns with its imports changed: the script
below is written the way iNNvestigate's own examples are (create_analyzer with its
constructor keywords, model_wo_softmax, fit / fit_generator, the visualisation helpers), and
its numbers are checked against independent computations."""

import textwrap
import warnings

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close, tape_gradient

import keras_patterns as kp
import keras_patterns.utils.visualizations as ivis

SCRIPT = textwrap.dedent("""
    import numpy as np
    import keras
    import keras_patterns as innvestigate              # was: import innvestigate
    import keras_patterns.utils as iutils               # was: import innvestigate.utils
    import keras_patterns.utils.visualizations as ivis  # was: ...utils.visualizations

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    x_train = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype("float32")
    x = x_train[:4]

    model_wo_sm = innvestigate.model_wo_softmax(model)
    results = {}
    for method, kwargs in [
        ("gradient", {"postprocess": "abs"}),
        ("input_t_gradient", {}),
        ("lrp.epsilon", {"epsilon": 1, "reverse_verbose": False}),
        ("lrp.alpha_2_beta_1", {"reverse_check_min_max_values": True}),
        ("deep_taylor.bounded", {"low": 0.0, "high": 1.0, "reverse_check_finite": True}),
        ("guided_backprop", {"reverse_reapply_on_copied_layers": True}),
        ("integrated_gradients", {"steps": 8, "disable_model_checks": True}),
    ]:
        analyzer = innvestigate.create_analyzer(method, model_wo_sm,
                                                allow_lambda_layers=False, **kwargs)
        analyzer.fit(x_train, batch_size=32, disable_no_training_warning=True)
        results[method] = analyzer.analyze(x)

    analyzer = innvestigate.create_analyzer("pattern.net", model_wo_sm, pattern_type="relu")
    analyzer.fit(x_train, batch_size=32, verbose=0)
    results["pattern.net"] = analyzer.analyze(x)
    analyzer = innvestigate.create_analyzer("pattern.attribution", model_wo_sm)
    analyzer.fit_generator((x_train[i:i + 16] for i in range(0, 64, 16)), steps_per_epoch=4)
    results["pattern.attribution"] = analyzer.analyze(x)
    analyzer = innvestigate.create_analyzer("gradient", model_wo_sm,
                                            neuron_selection_mode="index")
    results["gradient_index"] = analyzer.analyze(x, 3)

    pictures = {
        "heatmap": ivis.heatmap(results["lrp.epsilon"]),
        "graymap": ivis.graymap(np.abs(results["gradient"])),
        "project": ivis.project(results["pattern.net"], absmax=None),
        "gamma": ivis.gamma(results["gradient"], minamp=0, gamma=0.5),
        "clip": ivis.clip_quantile(results["lrp.epsilon"], 1),
    }
""")


@pytest.fixture(scope="module")
def script():
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(SCRIPT, "innvestigate_style_script.py", "exec"), namespace)
    return namespace


def test_the_script_runs_and_its_numbers_are_right(script):
    model, x, results = script["model_wo_sm"], script["x"], script["results"]
    assert model.layers[-1].get_config()["activation"] == "linear"
    assert_close(results["gradient"], np.abs(tape_gradient(model, x)))
    assert_close(results["input_t_gradient"], x * tape_gradient(model, x))
    assert_close(results["gradient_index"], tape_gradient(model, x, "index", [3] * 4))
    for name, e in results.items():
        assert e.shape == x.shape and np.isfinite(e).all(), name


def test_model_wo_softmax_computes_the_logits_with_shared_weights(script):
    original, stripped, x = script["model"], script["model_wo_sm"], script["x"]
    last = original.layers[-1]
    pre = original.layers[-2](original.layers[-3](original.layers[-4](x)))
    want = pre.numpy() @ last.kernel.numpy() + last.bias.numpy()
    assert_close(stripped(x), want)
    assert_close(keras.ops.softmax(stripped(x)), original(x))
    assert stripped.layers[0] is original.layers[0]  # shared, not copied


def test_visualisation_helpers_match_their_formulas_for_a_batch(script):
    pictures, results = script["pictures"], script["results"]
    e = results["pattern.net"]
    want = (e / np.abs(e).reshape(4, -1).max(axis=1)[:, None, None, None] + 1) / 2
    assert_close(pictures["project"], want)  # per sample, also for batch > 1
    heat = pictures["heatmap"]
    assert heat.shape == (4, 8, 8, 3) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    # per sample, the value of largest magnitude takes an end of the "seismic" table
    lrp = results["lrp.epsilon"][..., 0]
    for i in range(4):
        j = np.unravel_index(np.argmax(np.abs(lrp[i])), lrp[i].shape)
        end = [128, 0, 0] if lrp[i][j] > 0 else [0, 0, 77]
        assert_close(heat[i][j], np.array(end) / 255.0)
    gray = pictures["graymap"]
    assert gray.shape == (4, 8, 8, 3) and np.allclose(gray[..., 0], gray[..., 2])


def test_visualisation_helpers_on_known_arrays():
    x = np.array([[[[-2.0], [0.0]], [[1.0], [2.0]]], [[[0.0], [0.5]], [[0.0], [-0.25]]]])
    want = np.array([[[[0.0], [0.5]], [[0.75], [1.0]]], [[[0.5], [1.0]], [[0.5], [0.25]]]])
    assert_close(ivis.project(x), want)
    assert_close(ivis.project(x, output_range=(0, 255)), 255 * want)
    assert_close(ivis.gamma(np.array([-4.0, 1.0, 4.0]), gamma=0.5), [-4.0, 2.0, 4.0])
    assert_close(ivis.clip_quantile(np.arange(101.0), 10), np.clip(np.arange(101.0), 10, 90))
    heat = ivis.heatmap(x, cmap_type="bwr")
    assert_close(heat[0, 0, 0], [0, 0, 1])     # -1: blue
    assert_close(heat[0, 0, 1], [1, 1, 1])     # 0: white
    assert_close(heat[0, 1, 1], [1, 0, 0])     # +1: red


def test_innvestigate_1x_pattern_lists_are_accepted():
    """iNNvestigate 1.x stored one pattern per kernel layer, in model order, used for every
    regime: with those arrays the analyzer equals ours with a = a_plus = a_minus."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu"),
                              layers.Dense(4, activation="tanh"), layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")
    fitted = kp.compute_patterns(model, x, pattern_type="linear")
    as_list = [fitted[layer.name]["a"] for layer in model.layers]
    for method in ("pattern.net", "pattern.attribution"):
        from_list = kp.create_analyzer(method, model, patterns=as_list).analyze(x[:5])
        ours = kp.create_analyzer(method, model, pattern_type="linear",
                                  patterns=fitted).analyze(x[:5])
        assert_close(from_list, ours)
    with pytest.raises(kp.PatternFileError, match="2 patterns for the 3 kernel layers"):
        kp.create_analyzer("pattern.net", model, patterns=as_list[:2])
    with pytest.raises(kp.PatternFileError, match=r"shape \(4, 5\).*kernel \(5, 4\)"):
        kp.create_analyzer("pattern.net", model, patterns=[as_list[0], as_list[1].T, as_list[2]])


def test_a_wrong_method_name_suggests_the_closest():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(KeyError, match="did you mean 'pattern.attribution'"):
        kp.create_analyzer("pattern_attribution", model)
    with pytest.raises(KeyError, match="did you mean 'lrp.epsilon'"):
        kp.create_analyzer("lrp.epsilson", model)


def test_fit_on_an_analyzer_without_state_warns_like_innvestigate():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    analyzer = kp.create_analyzer("gradient", model)
    with pytest.warns(RuntimeWarning, match="does not need to be trained"):
        assert analyzer.fit(np.ones((4, 3), "float32")) is analyzer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyzer.fit_generator(iter([]), steps=3, disable_no_training_warning=True)


def test_keywords_without_a_meaning_here_are_refused_when_they_would_change_numbers():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="reverse_clip_values"):
        kp.create_analyzer("gradient", model, reverse_clip_values=(-1, 1))
    kp.create_analyzer("gradient", model, reverse_clip_values=False,
                       reverse_project_bottleneck_layers=False, reverse_keep_tensors=True)
