"""keras_patterns.callbacks.ExplanationGrid refuses bad arguments at construction, and a model
or images it cannot explain before the first epoch, with errors that name the problem."""

import keras
import numpy as np
import pytest
from test_callbacks import CLASSES, SHAPE, WeightCopies, build

import keras_patterns as kp
from keras_patterns.callbacks import ExplanationGrid


def _generator():
    yield np.zeros((2, *SHAPE), np.float32)


X_BAD = np.zeros((2, *SHAPE), np.float32)
BAD = [
    ({"methods": "gradiant"}, "did you mean 'gradient'"),
    ({"methods": ()}, "at least one method"),
    ({"methods": ("gradient", "gradient")}, "distinct"),
    ({"methods": ("gradient", 3)}, "must be strings"),
    ({"every": 0}, "every must be a positive int"),
    ({"every": True}, "every must be a positive int"),
    ({"every": 1.5}, "every must be a positive int"),
    ({"out_dir": None}, "give out_dir"),
    ({"methods": ("pattern.net",)}, "pass fit_data"),
    ({"methods": ("pattern.net",), "fit_data": _generator()}, "iterator or generator"),
    ({"methods": ("pattern.attribution",), "fit_data": X_BAD,
      "method_kwargs": {"pattern.attribution": {"patterns": "x.patterns.h5"}}}, "refits them"),
    ({"method_kwargs": {"lrp.z": {}}}, "not in methods"),
    ({"method_kwargs": {"gradient": 3}}, "must be a dict"),
    ({"method_kwargs": [("gradient", {})]}, "method_kwargs must be a dict"),
    ({"method_kwargs": {"gradient": {"neuron_selection_mode": "all"}}}, "neuron_selection"),
    ({"labels": ["a"]}, "labels has 1 entries for 2 images"),
    ({"labels": "ab"}, "labels must be a sequence"),
    ({"neuron_selection": [1]}, "1 entries for 2 images"),
    ({"neuron_selection": -1}, "non-negative"),
    ({"neuron_selection": 1.5}, "an int or one int per image"),
    ({"images": np.zeros((2, 8), np.float32)}, r"\(N, H, W\) or \(N, H, W, C\)"),
    ({"images": np.zeros((0, *SHAPE), np.float32)}, "at least one image"),
    ({"images": np.full((2, *SHAPE), np.nan, np.float32)}, "NaN or inf"),
    ({"images": np.array([["a"]])}, "real numbers"),
    ({"grid_kwargs": {"path": "x.png"}}, "grid_kwargs must not set"),
    ({"fit_kwargs": {"data": X_BAD}}, "fit_kwargs must not set"),
    ({"grid_kwargs": 3}, "grid_kwargs must be a dict"),
    ({"grid_kwargs": {"cmap": "rainbow"}}, "grid cannot be drawn.*cmap"),
    ({"grid_kwargs": {"kinds": {"lrp.z": "heatmap"}}}, "grid cannot be drawn.*kinds"),
    ({"grid_kwargs": {"colour": "red"}}, "grid_kwargs: .*colour"),
    ({"images": np.zeros((2, 8, 8, 2), np.float32)}, "grid cannot be drawn.*channels"),
    ({"filename": "epoch_{step}.png"}, "only {epoch} fields"),
    ({"filename": "sub/epoch_{epoch}.png"}, "plain file name"),
    ({"filename": 5}, "format string"),
    ({"tag": ""}, "tag must be"),
    ({"display_images": np.zeros((2, 4, 4, 1))}, "display_images"),
    ({"display_images": np.zeros((3, *SHAPE))}, "display_images"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_are_refused_at_construction(kwargs, message, tmp_path):
    kwargs = {"images": X_BAD, "methods": ("gradient",), "out_dir": tmp_path, **kwargs}
    images = kwargs.pop("images")
    with pytest.raises(ValueError, match=message):
        ExplanationGrid(images, **kwargs)


def test_unused_fit_data_warns(tmp_path):
    with pytest.warns(UserWarning, match="fit_data is only used by the pattern methods"):
        ExplanationGrid(X_BAD, methods="gradient", out_dir=tmp_path, fit_data=X_BAD)


def test_images_of_another_shape_fail_before_the_first_epoch(tmp_path):
    grid = ExplanationGrid(np.zeros((2, 6, 6, 1), np.float32), methods="gradient",
                           out_dir=tmp_path / "png")
    copies = WeightCopies()
    model = build()
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"takes batches shaped \(None, 8, 8, 1\)"):
        model.fit(X_BAD, np.zeros((2, CLASSES)), epochs=1, verbose=0, callbacks=[grid, copies])
    assert copies.weights == []  # no epoch ran
    assert not (tmp_path / "png").exists()


def test_a_method_that_refuses_the_model_fails_before_the_first_epoch(tmp_path):
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="tanh")(flat))
    model.compile("sgd", "mse")
    grid = ExplanationGrid(np.zeros((2, 4, 4, 1), np.float32), methods="guided_backprop",
                           out_dir=tmp_path)
    copies = WeightCopies()
    with pytest.raises(kp.NotAnalyzableModelError, match="tanh|rectifier"):
        model.fit(np.zeros((2, 4, 4, 1)), np.zeros((2, 2)), epochs=1, verbose=0,
                  callbacks=[grid, copies])
    assert copies.weights == []
