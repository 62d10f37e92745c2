"""Extending the package from outside it: an analyzer that needs no data, one that must be
fitted, an LRP rule and a signal estimator are registered here, through the public
`register_*` functions only, and each is found by every listing and command: the
registry's listing, the command line's `list`, `check`, `fit` and `explain`, the grid (in
the style of what the method returns) and the ExplanationGrid callback (which fits what
needs fitting). Every number is checked against a formula written out here."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close
from PIL import Image

import keras_patterns as kp
from keras_patterns.analyzers import Analyzer, unregister_analyzer
from keras_patterns.callbacks import ExplanationGrid
from keras_patterns.cli import main
from keras_patterns.patterns import ESTIMATORS, register_estimator
from keras_patterns.patterns.estimators import Estimator, normalise
from keras_patterns.rules import RULES, Rule, register_rule

SHAPE = (4, 4, 1)


class Twice(Analyzer):
    """Twice the input: a signal, no data needed."""

    description = "twice the input (a method written outside the package)"
    returns = "signal"

    def _analyze_batch(self, xs, index, strategy):
        return [2.0 * np.asarray(x, np.float32) for x in xs]


class Centred(Analyzer):
    """The input minus the mean of the data it was fitted on: an attribution that needs
    data."""

    description = "the input minus the mean input of the fitted data"
    needs_fit = True

    def __init__(self, model, **kwargs):
        self.mean = None
        super().__init__(model, **kwargs)

    def fit(self, data, **kwargs):
        self.mean = np.mean(np.asarray(data, np.float64), axis=0)
        return self

    @property
    def is_fitted(self):
        return self.mean is not None

    def _analyze_batch(self, xs, index, strategy):
        return [(np.asarray(xs[0], np.float64) - self.mean).astype(np.float32)]


class AbsWeights(Rule):
    """|w|-rule: relevance along |w|, whatever the input."""

    def relevance(self, layer, r):
        w = tf.abs(layer.kernel)
        return layer.backward(w, r / layer.forward(layer.constant(1.0), w))


class MeanInput(Estimator):
    """a = E[x] / (w^T E[x]): the mean input as every neuron's signal direction."""

    needs_mean_x = True

    def estimate(self, kmap, w, stats=None, rng=None):
        both = stats["all"]
        a, ok = normalise(kmap, w, both["mean_x"], both["n"] > 0)
        return {"a": a}, int((~ok).sum())


@pytest.fixture(scope="module")
def registered():
    kp.register_analyzer("toy.twice", Twice)
    kp.register_analyzer("toy.centred", Centred)
    register_rule("abs_weights", AbsWeights)
    register_estimator("mean_input", MeanInput)
    yield
    unregister_analyzer("toy.twice")
    unregister_analyzer("toy.centred")
    RULES.unregister("abs_weights")
    ESTIMATORS.unregister("mean_input")


@pytest.fixture(scope="module")
def setting():
    """A dense model y = W^T x on 4x4 images (no bias), images and data to fit on."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE), layers.Flatten(),
                              layers.Dense(3, use_bias=False)])
    rng = np.random.default_rng(0)
    images = rng.uniform(0.1, 1.0, size=(3, *SHAPE)).astype("float32")
    fit_data = rng.uniform(0.1, 1.0, size=(50, *SHAPE)).astype("float32")
    return model, images, fit_data


def oracles(model, images, fit_data):
    """Each method's explanation of `images`, written out (the largest output explained)."""
    w = model.layers[-1].kernel.numpy().astype(np.float64)
    x = images.reshape(len(images), -1).astype(np.float64)
    y = x @ w
    j = np.argmax(y, axis=1)
    share = np.abs(w) / np.abs(w).sum(axis=0)  # the |w|-rule on one dense layer
    mean = fit_data.reshape(len(fit_data), -1).astype(np.float64).mean(axis=0)
    pattern = mean[:, None] / (mean @ w)  # E[x] / (w^T E[x]) per neuron
    rows = range(len(images))
    return {
        "toy.twice": 2.0 * images,
        "toy.centred": images - fit_data.astype(np.float64).mean(axis=0),
        "lrp.abs_weights": np.stack([share[:, j[i]] * y[i, j[i]] for i in rows]).reshape(
            images.shape),
        "pattern.net": np.stack([pattern[:, j[i]] * y[i, j[i]] for i in rows]).reshape(
            images.shape),
    }, pattern


def explain(name, model, images, fit_data, **kwargs):
    analyzer = kp.create_analyzer(name, model, **kwargs)
    if analyzer.needs_fit:
        analyzer.fit(fit_data)
    return analyzer.analyze(images)


def test_each_extension_is_listed_and_computes_its_formula(registered, setting):
    model, images, fit_data = setting
    names = kp.list_analyzers()
    for name in ("toy.twice", "toy.centred", "lrp.abs_weights"):
        assert name in names
    assert names["lrp.abs_weights"] == "|w|-rule: relevance along |w|, whatever the input."
    want, pattern = oracles(model, images, fit_data)
    for name in ("toy.twice", "toy.centred", "lrp.abs_weights"):
        assert_close(explain(name, model, images, fit_data), want[name])
    got = explain("pattern.net", model, images, fit_data, pattern_type="mean_input")
    assert_close(got, want["pattern.net"])
    patterns = kp.compute_patterns(model, fit_data, pattern_type="mean_input")
    assert_close(patterns[model.layers[-1].name]["a"], pattern)
    # a method that needs data refuses to explain before it is fitted
    with pytest.raises(kp.InvalidInputError, match="'toy.centred' learns from data"):
        kp.create_analyzer("toy.centred", model).analyze(images)
    # the estimator is named where a pattern type is asked for
    with pytest.raises(ValueError, match="'mean_input'"):
        kp.compute_patterns(model, fit_data, pattern_type="mean_inputs")


def test_the_grid_draws_each_in_the_style_of_what_it_returns(registered, setting):
    model, images, fit_data = setting
    want, _ = oracles(model, images, fit_data)
    picture = np.asarray(kp.visualize.grid(images, want, col_labels=False, cell=SHAPE[:2],
                                           pad=2))
    check_cells(picture, want, images)


def check_cells(picture, explanations, images):
    """Signals (toy.twice, pattern.net) projected, attributions as heat maps."""
    h, w = SHAPE[:2]
    for c, (name, e) in enumerate(explanations.items(), start=1):
        signal = kp.analyzers.analyzer_class(name).returns == "signal"
        drawn = (np.repeat(kp.visualize.project(e), 3, axis=-1) if signal
                 else kp.visualize.heatmap(e))
        assert signal == (name in ("toy.twice", "pattern.net")), name
        for r in range(len(images)):
            x0, y0 = 2 + c * (w + 2), 2 + r * (h + 2)
            np.testing.assert_array_equal(picture[y0:y0 + h, x0:x0 + w], drawn[r],
                                          err_msg=name)


def test_the_callback_fits_what_needs_fitting_and_draws_each(registered, setting, tmp_path):
    model, images, fit_data = setting
    want, _ = oracles(model, images, fit_data)
    callback = ExplanationGrid(
        images, methods=tuple(want), out_dir=tmp_path, fit_data=fit_data,
        method_kwargs={"pattern.net": {"pattern_type": "mean_input"}},
        grid_kwargs={"col_labels": False, "cell": SHAPE[:2]})
    callback.set_model(model)
    check_cells(np.asarray(callback.draw(1)), want, images)
    # without fit_data the callback refuses the method that needs it, naming it
    with pytest.raises(ValueError, match="toy.centred learn"):
        ExplanationGrid(images, methods=("toy.twice", "toy.centred"), out_dir=tmp_path)


def test_the_command_line_lists_and_checks_each(registered, capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("toy.twice", "toy.centred", "lrp.abs_weights"):
        assert any(line.startswith(name + " ") for line in lines), name
    assert main(["check"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    # the check's images and fitting data, as the command draws them
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    fit_data = rng.uniform(size=(64, 16, 16, 3)).astype("float32")
    for name, e in (("toy.twice", 2.0 * images),
                    ("toy.centred", images - fit_data.astype(np.float64).mean(axis=0))):
        fields = lines[name].split()
        assert fields[1:5] == ["(4,", "16,", "16,", "3)"], lines[name]
        assert fields[6] == f"{float(np.abs(e.astype(np.float32)).mean()):.4g}", lines[name]
    assert "failed" not in lines["lrp.abs_weights"]


def test_the_command_line_fits_and_explains_with_the_estimator(registered, setting, tmp_path,
                                                                capsys):
    model, _, _ = setting
    pixels = np.random.default_rng(3).integers(0, 256, size=(30, 4, 4), dtype=np.uint8)
    x = pixels[..., None].astype(np.float32) * (1 / 255.0)  # as the command scales
    np.save(tmp_path / "x.npy", x)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):  # the first three, as PNG files
        Image.fromarray(pixels[i], mode="L").save(folder / f"img{i}.png")
    path = tmp_path / "dense.keras"
    model.save(path)
    patterns = tmp_path / "dense.patterns.h5"
    assert main(["fit", str(path), str(tmp_path / "x.npy"), "--pattern-type", "mean_input",
                 "--out", str(patterns)]) == 0
    out = tmp_path / "out"
    assert main(["explain", str(path), str(folder), "--method", "pattern.net", "--param",
                 "pattern_type=mean_input", "--patterns", str(patterns), "--out", str(out),
                 "--npy"]) == 0
    capsys.readouterr()
    want, _ = oracles(model, x[:3], x)
    got = np.stack([np.load(out / f"img{i}.pattern.net.npy") for i in range(3)])
    assert_close(got, want["pattern.net"])


def test_unregistering_removes_them_from_every_listing(setting):
    """Registered and removed again here: the rule's analyzer goes with the rule."""
    model, images, fit_data = setting
    register_rule("abs_weights_again", AbsWeights)
    assert "lrp.abs_weights_again" in kp.list_analyzers()
    RULES.unregister("abs_weights_again")
    assert "lrp.abs_weights_again" not in kp.list_analyzers()
    register_estimator("mean_input_again", type("MeanInputAgain", (MeanInput,), {}))
    ESTIMATORS.unregister("mean_input_again")
    with pytest.raises(ValueError, match="pattern_type='mean_input_again' is not one of"):
        kp.compute_patterns(model, fit_data, pattern_type="mean_input_again")
