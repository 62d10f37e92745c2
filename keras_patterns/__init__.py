"""keras-patterns: PatternNet, PatternAttribution and the methods they are compared with,
for Keras 3 models."""

__version__ = "0.1.0"

from .analyzers import create_analyzer, list_analyzers  # noqa: E402
from .errors import InvalidInputError, NotAnalyzableModelError  # noqa: E402
from .patterns import (  # noqa: E402
    PatternFileError,
    Patterns,
    compute_patterns,
    load_patterns,
    patterns_path,
    save_patterns,
)

__all__ = [
    "__version__",
    "create_analyzer",
    "list_analyzers",
    "NotAnalyzableModelError",
    "InvalidInputError",
    "Patterns",
    "PatternFileError",
    "compute_patterns",
    "save_patterns",
    "load_patterns",
    "patterns_path",
]
