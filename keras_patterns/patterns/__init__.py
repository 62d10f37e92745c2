"""Patterns (paper section 4): estimators, the fitting pass and storage."""

from .estimators import PATTERN_TYPES
from .fit import Patterns, compute_patterns
from .storage import PatternFileError, load_patterns, patterns_path, save_patterns

__all__ = [
    "PATTERN_TYPES", "Patterns", "PatternFileError", "compute_patterns", "load_patterns",
    "patterns_path", "save_patterns",
]
