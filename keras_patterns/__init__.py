"""keras-patterns: PatternNet, PatternAttribution and the methods they are compared with,
for Keras 3 models."""

from . import utils, visualize  # noqa: E402
from .analyzers import create_analyzer, list_analyzers  # noqa: E402
from .errors import (  # noqa: E402
    InvalidInputError,
    NotAnalyzableModelError,
    NumericalError,
    PatternFileError,
)
from .patterns import (  # noqa: E402
    Patterns,
    compute_patterns,
    load_patterns,
    patterns_path,
    save_patterns,
)
from .utils import model_wo_output_activation, model_wo_softmax  # noqa: E402
from .version import __version__  # noqa: E402

#: iNNvestigate's name of `NotAnalyzableModelError`
NotAnalyzeableModelException = NotAnalyzableModelError

__all__ = [
    "__version__",
    "create_analyzer",
    "list_analyzers",
    "NotAnalyzableModelError",
    "InvalidInputError",
    "NumericalError",
    "Patterns",
    "PatternFileError",
    "compute_patterns",
    "save_patterns",
    "load_patterns",
    "patterns_path",
    "model_wo_softmax",
    "model_wo_output_activation",
    "utils",
    "visualize",
    "NotAnalyzeableModelException",
]
