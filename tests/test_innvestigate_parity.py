"""Numbers identical to iNNvestigate 2.1.2 on the same weights (fixtures made by
tools/innvestigate_fixtures.py in a separate TF 2.14 venv).

Documented differences: DeConvNet and Guided Backprop start at 1 here and at the logit y in
iNNvestigate, so its numbers are ours times y of the selected output."""

import json

import numpy as np
import pytest

import keras_patterns as kp
from innvestigate_models import load_fixture, model_without_softmax

FIXTURES = ["mlp", "mlp_softmax", "cnn_maxpool", "cnn_avgpool", "cnn_batchnorm",
            "residual_concat"]
MODES = {"max_activation": ("max_activation", None), "index_3": ("index", "fixed"),
         "index_per_sample": ("index", "per_sample"), "all": ("all", None)}
METHODS = {
    "gradient": ("gradient", {}),
    "gradient_abs": ("gradient", {"postprocess": "abs"}),
    "gradient_square": ("gradient", {"postprocess": "square"}),
    "input_t_gradient": ("input_t_gradient", {}),
    "integrated_gradients": ("integrated_gradients", {}),
    "integrated_gradients_steps8_ref": ("integrated_gradients", "ref"),
    "deconvnet": ("deconvnet", {}),
    "guided_backprop": ("guided_backprop", {}),
}


def _cases():
    for fixture in FIXTURES:
        for variant in METHODS:
            for mode in MODES:
                yield fixture, variant, mode


@pytest.fixture(scope="module")
def fixtures():
    return {}


@pytest.mark.parametrize("fixture,variant,mode", list(_cases()))
def test_parity(fixtures, fixture, variant, mode):
    if fixture not in fixtures:
        fixtures[fixture] = load_fixture(fixture)
    model, x, refs = fixtures[fixture]
    key = f"{variant}__{mode}"
    if key not in refs:
        pytest.skip(f"iNNvestigate could not compute {key} on {fixture}: "
                    f"{refs['skipped'].get(key, 'not stored')}")
    name, kwargs = METHODS[variant]
    if kwargs == "ref":
        kwargs = {"steps": 8, "reference_inputs": refs["ig_reference"]}
    explained = model_without_softmax(model) if fixture == "mlp_softmax" else model
    sel_mode, which = MODES[mode]
    analyzer = kp.create_analyzer(name, explained, neuron_selection_mode=sel_mode, **kwargs)
    sel = None
    if which == "fixed":
        sel = int(np.ravel(refs["index_fixed"])[0])
    elif which == "per_sample":
        sel = list(np.ravel(refs["index_per_sample"]))
    ours = analyzer.analyze(x, neuron_selection=sel)
    expected = refs[key]
    if name in ("deconvnet", "guided_backprop"):
        y = explained(x).numpy().reshape(len(x), -1)
        if sel_mode == "all":
            pytest.skip("with all outputs selected, iNNvestigate starts at the vector y: no "
                        "per-sample scale relates the two")
        k = np.argmax(y, axis=1) if sel is None else np.broadcast_to(np.asarray(sel), (len(x),))
        scale = y[np.arange(len(x)), k].reshape((-1,) + (1,) * (x.ndim - 1))
        if (scale < 0).any():
            # a negative start flips which signals the rectifiers pass: compare positives only
            keep = np.ravel(scale > 0)
            if not keep.any():
                pytest.skip("the selected output is negative for every sample: iNNvestigate's "
                            "start flips the rectifier decisions, no scale relates the two")
            ours, expected, scale = ours[keep], expected[keep], scale[keep]
        ours = ours * scale
    tol = 1e-4 * max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=tol)
