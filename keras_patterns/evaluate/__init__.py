"""Evaluating explanations: signal quality rho(S) (`signal_quality`), image degradation
(`degradation`), a benchmark with a known signal (`ground_truth`) and sanity checks
(`class_sensitivity`, `model_randomization`)."""

from .correlation import correlation
from .degradation import DegradationResult, aopc, degradation
from .ground_truth import GroundTruthTable, ground_truth, make_dataset, train_model
from .quality import SignalQuality
from .sanity import class_sensitivity, model_randomization
from .signal_quality import signal_quality

__all__ = [
    "DegradationResult", "GroundTruthTable", "SignalQuality", "aopc", "class_sensitivity",
    "correlation", "degradation", "ground_truth", "make_dataset", "model_randomization",
    "signal_quality", "train_model",
]
