"""keras-hub backbones (tiny configurations: BERT, ViT, GPT-2, Gemma, Llama) explained end
to end by the transformer methods.

Oracles: the AttnLRP books balance (what the inputs receive plus what every node keeps is
the explained logit); the gradient form of attnlrp and cp_lrp (one modified gradient, times
the input) equals their relevance form (relevance carried rule by rule) on every operation
these models are made of: rotary embeddings, RMS norms, gated MLPs, causal and padding
masks, class tokens, grouped-query attention."""

import numpy as np
import pytest
from oracles import assert_close
from test_keras_hub_graphs import NAMES, _build, _feed

import keras_patterns as kp
from keras_patterns.canonize import prepare
from keras_patterns.graph import OPAQUE

pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def models():
    return {}


def _model(models, name):
    if name not in models:
        models[name] = _build(name)
    return models[name]


def _arrays(out):
    """The explanations of one analysis as a list (an array, a list, or a dict by input)."""
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return list(out) if isinstance(out, list) else [out]


def _inputs(model, name):
    return _feed(model, 3, 16 if name == "vit" else 5, seed=4)


@pytest.mark.parametrize("name", NAMES)
def test_every_operation_has_a_rule(models, name):
    model = _model(models, name)
    opaque = [n.name for n in prepare(model).nodes if n.role == OPAQUE]
    assert opaque == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp"])
def test_gradient_form_equals_relevance_form_and_the_books_balance(models, name, method):
    model = _model(models, name)
    x = _inputs(model, name)
    fast = kp.create_analyzer(method, model, neuron_selection_mode="index")
    slow = kp.create_analyzer(method, model, neuron_selection_mode="index")
    slow._gradient_form = False
    got, expected = fast.analyze(x, neuron_selection=1), slow.analyze(x, neuron_selection=1)
    for g, e in zip(_arrays(got), _arrays(expected)):
        assert np.all(np.isfinite(g))
        assert_close(g, e, rtol=2e-3)
    books = fast.relevance_budget(x, neuron_selection=1)
    logits = np.asarray(model(x)).reshape(3, -1)[:, 1]
    assert_close(books["explained"], logits, rtol=1e-5)
    assert_close(sum(v for k, v in books.items() if k != "explained"), logits, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_the_signal_and_relevance_methods_run_and_are_finite(models, name):
    model = _model(models, name)
    x = _inputs(model, name)
    for method in ("lrp.epsilon", "lrp.alpha_1_beta_0", "pattern.attribution",
                   "pattern.net", "input_t_gradient"):
        analyzer = kp.create_analyzer(method, model)
        if analyzer.needs_fit:
            analyzer.fit(_feed(model, 16, 16 if name == "vit" else 5, seed=5), batch_size=8)
        out = analyzer.analyze(x)
        for e in _arrays(out):
            assert np.all(np.isfinite(e)), method


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet", "deep_taylor"])
def test_rectifier_methods_refuse_gelu_transformers(models, method):
    with pytest.raises(kp.NotAnalyzableModelError, match="gelu"):
        kp.create_analyzer(method, _model(models, "vit"))


RECTIFIER_ONLY = {"deconvnet", "guided_backprop", "deep_taylor", "deep_taylor.bounded"}
# methods that mask or upsample onto one float image or sequence input
MASKING = {"occlusion", "rise", "grad_cam", "grad_cam_plus_plus", "layer_cam", "score_cam",
           "kernel_shap", "lime"}


@pytest.mark.slow  # every method on five backbones: about 6 minutes on 2 cores
@pytest.mark.parametrize("name", NAMES)
def test_every_method_runs_and_is_finite(models, name):
    from keras_patterns.analyzers import analyzer_class

    model = _model(models, name)
    x = _inputs(model, name)
    fit = _feed(model, 16, 16 if name == "vit" else 5, seed=5)
    refused = set()
    for method in kp.list_analyzers():
        try:
            analyzer = kp.create_analyzer(method, model, **analyzer_class(method).example)
        except kp.NotAnalyzableModelError:
            refused.add(method)
            continue
        if analyzer.needs_fit and not analyzer.is_fitted:
            analyzer.fit(fit, batch_size=8)
        for e in _arrays(analyzer.analyze(x)):
            assert np.all(np.isfinite(e)), method
    assert refused == RECTIFIER_ONLY | (set() if name == "vit" else MASKING)
