"""Analyzers by name, and `create_analyzer` / `list_analyzers`."""

import difflib
import os
from typing import Union

import keras

from .base import Analyzer, ReverseAnalyzer
from .baselines import InputAnalyzer, RandomAnalyzer
from .deep_taylor import BoundedDeepTaylor, DeepTaylor
from .gradient import Gradient, InputTimesGradient, IntegratedGradients, SmoothGrad
from .lrp import LRP, lrp_analyzer, lrp_analyzers
from .pattern import PatternAttribution, PatternNet
from .rectifier import Deconvnet, GuidedBackprop

#: name -> analyzer class (rules registered later are found by `analyzer_class`)
ANALYZERS = {
    cls.name: cls
    for cls in (
        InputAnalyzer,
        RandomAnalyzer,
        Gradient,
        InputTimesGradient,
        SmoothGrad,
        IntegratedGradients,
        Deconvnet,
        GuidedBackprop,
        PatternNet,
        PatternAttribution,
        *lrp_analyzers(),
        DeepTaylor,
        BoundedDeepTaylor,
    )
}


def analyzer_class(name):
    """The analyzer class of a method name (an LRP rule registered after import included)."""
    cls = ANALYZERS.get(name) or lrp_analyzer(str(name))
    if cls is None:
        close = difflib.get_close_matches(str(name), ANALYZERS, n=3, cutoff=0.6)
        hint = (f"did you mean {' or '.join(map(repr, close))}?" if close
                else "kp.list_analyzers() lists them.")
        raise KeyError(f"No analyzer named {name!r}; {hint}")
    ANALYZERS.setdefault(cls.name, cls)
    return cls


def list_analyzers() -> dict:
    """The analyzers' names, each with a one-line description.

    Returns:
        dict: method name -> description, in a fixed order (rules registered with
        `keras_patterns.rules.register` appear once used by name).
    """
    return {name: cls.description for name, cls in ANALYZERS.items()}


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
        TypeError, ValueError: unknown or invalid parameters.
    """
    return analyzer_class(name)(model, neuron_selection_mode=neuron_selection_mode, **kwargs)


__all__ = ["ANALYZERS", "Analyzer", "ReverseAnalyzer", "LRP", "analyzer_class",
           "create_analyzer", "list_analyzers"]
