"""AttnLRP and CP-LRP on a two-block encoder against a direct numpy evaluation in relevance
form (`attnlrp_numpy`: float64, no gradient, one function per rule), for Keras' fused
attention and for the traced one (einsums and a Softmax layer)."""

import numpy as np
import pytest
from attnlrp_numpy import relevance, two_block_encoder
from oracles import assert_close

import keras_patterns as kp

METHODS = {"attnlrp": "attnlrp", "cp_lrp": "cp"}


def _x(n=3, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 5, 8)).astype("float32")


@pytest.fixture(scope="module")
def fused():
    return two_block_encoder(seed=0)


@pytest.fixture(scope="module")
def traced():
    return two_block_encoder(seed=0, dropout=0.1)


def test_the_numpy_forward_pass_is_the_model_s(fused):
    x = _x()
    _, logits = relevance(fused, x, 0)
    assert_close(fused(x), logits, rtol=1e-5)


def test_the_numpy_cp_relevance_conserves_the_logit_without_biases():
    # a check of the oracle itself: with no bias and no β nothing absorbs relevance under
    # CP, so the input's relevance sums to the explained logit
    model = two_block_encoder(seed=2)
    for w in model.weights:
        if w.path.endswith("bias") or w.path.endswith("beta"):
            w.assign(np.zeros(w.shape, w.dtype))
    r, logits = relevance(model, _x(), 1, "cp")
    assert np.allclose(r.reshape(3, -1).sum(1), logits[:, 1], rtol=1e-10)
    r, _ = relevance(model, _x(), 1, "attnlrp")
    assert not np.allclose(r.reshape(3, -1).sum(1), logits[:, 1], rtol=1e-3)  # the softmax


@pytest.mark.parametrize("method", sorted(METHODS))
def test_relevance_equals_the_numpy_evaluation(fused, method):
    x = _x()
    analyzer = kp.create_analyzer(method, fused, neuron_selection_mode="index")
    for j in (0, 1, 2):
        expected, _ = relevance(fused, x, j, METHODS[method])
        assert_close(analyzer.analyze(x, neuron_selection=j), expected, rtol=1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_traced_attention_gives_the_numpy_numbers(traced, method):
    analyzer = kp.create_analyzer(method, traced, neuron_selection_mode="index")
    classes = {n.layer_class for n in analyzer.graph.nodes}
    assert "Einsum" in classes and "DotProductAttention" not in classes
    x = _x(seed=3)
    for j in (0, 2):
        expected, _ = relevance(traced, x, j, METHODS[method])
        assert_close(analyzer.analyze(x, neuron_selection=j), expected, rtol=1e-4)
