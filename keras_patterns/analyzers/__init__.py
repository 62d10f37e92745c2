"""Analyzers by name: `create_analyzer`, `list_analyzers`, `register_analyzer`.

Each method is a class registered under its name (`catalog`); the modules below register
theirs when imported, in the order `list_analyzers()` shows them: the baselines, the
gradient family, the rectifier methods, the pattern methods, LRP (one analyzer per rule and
per preset of `keras_patterns.rules`, also those registered later), Deep Taylor, the
relevance methods for transformers (AttnLRP, CP-LRP), the methods that mask the input
(`perturbation`), the class activation maps (`cam`) and the linear surrogates on segments
of the input (`surrogate`).
"""

import os
from typing import Union

import keras

# The modules register their analyzers when imported, in this order.
# isort: off
from . import baselines, gradient, rectifier, pattern, lrp, deep_taylor, attention  # noqa: F401
from . import perturbation  # noqa: F401
from . import cam  # noqa: F401
from . import surrogate  # noqa: F401
# isort: on
from .base import Analyzer, UnknownParameterError
from .catalog import (
    ANALYZERS,
    analyzer_class,
    list_analyzers,
    register_analyzer,
    signal_methods,
    unregister_analyzer,
)
from .lrp import LRP
from .pattern import PatternAttribution, PatternNet
from .reverse import ReverseAnalyzer


def create_analyzer(name: str, model: Union[keras.Model, str, os.PathLike],
                    neuron_selection_mode: str = "max_activation", **kwargs) -> Analyzer:
    """Create an analyzer: the explanation method `name` for `model`.

    Args:
        name: a method name (`list_analyzers()`), e.g. "gradient", "lrp.epsilon",
            "pattern.attribution".
        model: a Keras 3 model (or the path of a saved `.keras` model); it is not modified.
        neuron_selection_mode: "max_activation" (per sample, the largest output), "index"
            (`analyze(x, neuron_selection=...)`) or "all".
        **kwargs: the method's parameters and those every analyzer takes (`output_index`,
            `batch_size`, `jit_compile`, ...; see `keras_patterns.analyzers.Analyzer`).

    Returns:
        The analyzer; `analyzer.analyze(x)` explains a batch.

    Raises:
        KeyError: an unknown name (the message suggests the closest names).
        NotAnalyzableModelError: a model or layer the method cannot explain.
        UnknownParameterError: a keyword the method does not take (a TypeError and a
            ValueError; the message names the method's parameters and the closest one).
        TypeError, ValueError: invalid parameters.
    """
    return analyzer_class(name)(model, neuron_selection_mode=neuron_selection_mode, **kwargs)


__all__ = ["ANALYZERS", "Analyzer", "LRP", "PatternAttribution", "PatternNet",
           "ReverseAnalyzer", "UnknownParameterError", "analyzer_class", "create_analyzer",
           "list_analyzers", "register_analyzer", "signal_methods", "unregister_analyzer"]
