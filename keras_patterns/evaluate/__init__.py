"""Evaluating explanations: signal quality rho(S) (`signal_quality`), image degradation
(`degradation`), a benchmark with a known signal (`ground_truth`), sanity checks
(`class_sensitivity`, which is the random-logit test over every pair of classes, and
`model_randomization`), localisation against a mask (`localisation`: relevance mass,
relevance rank accuracy, pointing game), concentration (`complexity`: complexity,
sparseness) and robustness (`robustness`: max-sensitivity, average stability)."""

from .complexity import complexity, sparseness
from .correlation import correlation
from .degradation import DegradationResult, aopc, degradation
from .ground_truth import GroundTruthTable, ground_truth, make_dataset, train_model
from .localisation import pointing_game, relevance_mass, relevance_rank_accuracy
from .quality import SignalQuality
from .robustness import Sensitivity, average_stability, max_sensitivity, sensitivity
from .sanity import class_sensitivity, model_randomization
from .signal_quality import signal_quality

__all__ = [
    "DegradationResult", "GroundTruthTable", "SignalQuality", "aopc", "class_sensitivity",
    "correlation", "degradation", "ground_truth", "make_dataset", "model_randomization",
    "signal_quality", "train_model", "complexity", "sparseness", "pointing_game",
    "relevance_mass", "relevance_rank_accuracy", "Sensitivity", "average_stability",
    "max_sensitivity", "sensitivity",
]
