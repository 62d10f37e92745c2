"""keras-patterns: PatternNet, PatternAttribution and the methods they are compared with,
for Keras 3 models.

    import keras_patterns as kp
    analyzer = kp.create_analyzer("pattern.attribution", model)
    analyzer.fit(images)
    heatmaps = analyzer.analyze(images)

The names below are imported on first use, so that `import keras_patterns` (and the
`keras-patterns` command's `--help`) does not start TensorFlow.
"""

import importlib

from .version import __version__

# public name -> (module, attribute)
_EXPORTS = {
    "create_analyzer": ("analyzers", "create_analyzer"),
    "list_analyzers": ("analyzers", "list_analyzers"),
    "register_analyzer": ("analyzers", "register_analyzer"),
    "InvalidInputError": ("errors", "InvalidInputError"),
    "NotAnalyzableModelError": ("errors", "NotAnalyzableModelError"),
    "NumericalError": ("errors", "NumericalError"),
    "PatternFileError": ("errors", "PatternFileError"),
    "NotAnalyzeableModelException": ("innvestigate", "NotAnalyzeableModelException"),
    "Patterns": ("patterns", "Patterns"),
    "compute_patterns": ("patterns", "compute_patterns"),
    "load_patterns": ("patterns", "load_patterns"),
    "patterns_path": ("patterns", "patterns_path"),
    "save_patterns": ("patterns", "save_patterns"),
    "model_wo_softmax": ("utils", "model_wo_softmax"),
    "model_wo_output_activation": ("utils", "model_wo_output_activation"),
}

__all__ = ["__version__", *_EXPORTS, "callbacks", "evaluate", "utils", "visualize"]


def __getattr__(name):
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
