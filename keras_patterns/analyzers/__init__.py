"""Analyzers by name, and `create_analyzer` / `list_analyzers`."""

import difflib

from .base import Analyzer, ReverseAnalyzer
from .baselines import InputAnalyzer, RandomAnalyzer
from .pattern import PatternAttribution, PatternNet
from .lrp import LRP_ANALYZERS
from .gradient import Gradient, InputTimesGradient, IntegratedGradients, SmoothGrad
from .signal import Deconvnet, GuidedBackprop

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
        *LRP_ANALYZERS,
    )
}


def list_analyzers():
    """Analyzer names with a one-line description each."""
    return {name: cls.description for name, cls in ANALYZERS.items()}


def create_analyzer(name, model, neuron_selection_mode="max_activation", **kwargs):
    """Create the analyzer `name` for `model` (see `list_analyzers()` for the names)."""
    try:
        cls = ANALYZERS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), ANALYZERS, n=3, cutoff=0.6)
        hint = (f"did you mean {' or '.join(map(repr, close))}?" if close
                else "kp.list_analyzers() lists them.")
        raise KeyError(f"No analyzer named {name!r}; {hint}") from None
    return cls(model, neuron_selection_mode=neuron_selection_mode, **kwargs)


__all__ = ["ANALYZERS", "Analyzer", "ReverseAnalyzer", "create_analyzer", "list_analyzers"]
