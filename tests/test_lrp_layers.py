"""LRP on every layer kind of the engine: an identity of the z-rule as oracle.

On a network that is positively homogeneous (rectifiers, max-pooling, linear maps without
bias), LRP-0 started with y at the selected output equals input x gradient (Euler's theorem
applied layer by layer): r_in = x * dy/dx, with the gradient from `tf.GradientTape`. Each
case of the engine's layer matrix (`test_layers.py`) is made homogeneous by zeroing its
biases, BatchNormalization shifts and Normalization means; cases that cannot be (other
activations, clipped rectifiers, products, LayerNormalization, an offset in Rescaling,
token inputs) are not in this matrix; their LRP rules are covered in test_lrp_rules.py.
"""

import numpy as np
import pytest
from oracles import assert_close, logits_model, tape_gradient
from test_layers import CASES, get_case

import keras_patterns as kp

NOT_HOMOGENEOUS = {
    "relu_max_value_6", "activation_relu6", "multiply", "layernorm", "layernorm_conv",
    "rescaling",
}
HOMOGENEOUS = [
    name for name in CASES
    if name not in NOT_HOMOGENEOUS and "embedding" not in name
    and CASES[name]().refused is None
] + ["cf_batchnorm", "cf_avg_pool2d", "cf_global_avg_pool2d", "cf_depthwise2d"]

_SHIFTS = ("bias", "beta", "moving_mean", "mean")


def _homogeneous(case):
    for w in case.model.weights:
        if w.name in _SHIFTS:
            w.assign(np.zeros(tuple(w.shape), w.dtype))
    return case


@pytest.mark.parametrize("name", HOMOGENEOUS)
def test_lrp_z_equals_input_times_gradient(name):
    case = _homogeneous(get_case(name))
    x = np.abs(case.x) if name.startswith("cf_") else case.x
    expected = x * tape_gradient(logits_model(case.reference), x)
    analyzer = kp.create_analyzer("lrp.z", case.model)
    assert_close(analyzer.analyze(x), expected, rtol=1e-4)


@pytest.mark.parametrize("name", ["dense_rank3", "conv1d_causal", "conv2d_strides_same",
                                  "conv2d_groups", "separable2d", "depthwise2d",
                                  "conv2d_transpose_same", "conv3d_strides_same",
                                  "batchnorm_conv", "max_pool2d", "concatenate"])
def test_conserving_rules_conserve_on_every_kernel_kind(name):
    """w² and flat ignore x and biases: the input relevance sums to the selected output.
    (Proportional sums - Add, average pooling - lose the relevance of all-zero windows.)"""
    case = get_case(name)
    y = logits_model(case.reference)(case.x).numpy().reshape(len(case.x), -1).max(axis=1)
    for method in ("lrp.w_square", "lrp.flat"):
        r = kp.create_analyzer(method, case.model).analyze(case.x)
        totals = r.reshape(len(r), -1).sum(axis=1)
        np.testing.assert_allclose(totals, y, rtol=1e-4, atol=1e-5 * np.abs(y).max())
