"""Composite LRP rules (which rule at which layer) against the closed-form walk of
`lrp_reference`."""

import warnings

import keras
import lrp_reference as ref
import pytest
from lrp_cases import (
    assert_close,
    inputs,
    model,
)

import keras_patterns as kp

# -- composite rules ------------------------------------------------------------------------


def _rule_by(choice):
    """rule_for(step) from a function of the step's layer / position."""
    return lambda step: ref.RULES[choice(step)]


COMPOSITES = [
    (
        "conv",
        [("dense_*", "epsilon"), (keras.layers.Conv2D, "alpha_1_beta_0")],
        lambda s: "epsilon" if s["layer"].name == "dense_out" else "alpha_1_beta_0",
    ),
    (
        "conv",
        # positions count every layer of the model (the Flatten is position 2)
        [(0, "flat"), (1, "z_plus"), (3, "w_square")],
        lambda s: ["flat", "z_plus", "w_square"][s["position"]],
    ),
    (
        "conv",  # first match wins
        [("conv_1", "gamma"), ("conv*", "z"), ("*", "alpha_2_beta_1")],
        lambda s: {"conv_1": "gamma", "conv_2": "z"}.get(s["layer"].name, "alpha_2_beta_1"),
    ),
    (
        "dense",
        [(keras.layers.Dense, "z_plus"), ("*", "flat")],
        lambda s: "z_plus",
    ),
    (
        "dense",
        [(2, "epsilon"), ("dense_a*", "z_plus_fast")],
        lambda s: "epsilon" if s["position"] == 2 else "z_plus_fast",
    ),
]


@pytest.mark.parametrize("case", range(len(COMPOSITES)))
def test_composite_rule_selection(case):
    key, rule, choice = COMPOSITES[case]
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule=rule)
    expected = ref.walk(model(key), x, _rule_by(choice))
    assert_close(a.analyze(x), expected)


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("rule", ["z", "epsilon", "alpha_1_beta_0", "w_square", "flat",
                                  "z_plus", "gamma"])
def test_generic_rule_name(rule, key):
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule=rule)
    assert_close(a.analyze(x), ref.walk(model(key), x, _rule_by(lambda s: rule)))


@pytest.mark.parametrize("key", ["dense", "conv"])
@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (-3.0, 0.5)])
def test_input_layer_rule_bounded(bounds, key):
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule="z", input_layer_rule=bounds)
    low, high = bounds

    def rule_for(step):
        if step["is_input"]:
            return ref.P(ref.rule_bounded, low=low, high=high)
        return ref.RULES["z"]

    assert_close(a.analyze(x), ref.walk(model(key), x, rule_for))


def test_input_layer_rule_name():
    key = "conv"
    x = inputs(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kp.create_analyzer("lrp", model(key), rule="alpha_2_beta_1", input_layer_rule="flat")
    expected = ref.walk(model(key), x, _rule_by(
        lambda s: "flat" if s["is_input"] else "alpha_2_beta_1"))
    assert_close(a.analyze(x), expected)

