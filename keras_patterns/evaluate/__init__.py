"""Evaluating explanations: signal quality rho(S) (`signal_quality`), perturbation metrics
(`degradation`: pixel flipping / region perturbation and its AOPC; `deletion`, `insertion`;
`mu_fidelity`; `road`; see `deletion`'s docstring for how they relate), a benchmark with a
known signal (`ground_truth`) and sanity checks (`class_sensitivity`,
`model_randomization`)."""

from .correlation import correlation
from .degradation import DegradationResult, aopc, degradation
from .deletion import CurveResult, deletion, insertion
from .ground_truth import GroundTruthTable, ground_truth, make_dataset, train_model
from .mu_fidelity import MuFidelityResult, mu_fidelity
from .quality import SignalQuality
from .road import RoadResult, road
from .sanity import class_sensitivity, model_randomization
from .signal_quality import signal_quality

__all__ = [
    "CurveResult", "DegradationResult", "GroundTruthTable", "SignalQuality", "aopc",
    "class_sensitivity", "correlation", "degradation", "deletion", "ground_truth", "insertion",
    "make_dataset", "model_randomization", "MuFidelityResult", "mu_fidelity",
    "RoadResult", "road", "signal_quality", "train_model",
]
