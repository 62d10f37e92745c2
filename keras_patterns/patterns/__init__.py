"""Patterns (paper section 4): estimators, the fitting pass and storage."""

from .estimators import ESTIMATORS, estimator, register_estimator
from .fit import compute_patterns
from .patterns import Patterns
from .storage import PatternFileError, load_patterns, patterns_path, save_patterns

__all__ = [
    "ESTIMATORS", "Patterns", "PatternFileError", "compute_patterns", "estimator",
    "load_patterns", "patterns_path", "register_estimator", "save_patterns",
]
