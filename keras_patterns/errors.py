"""Errors raised by keras-patterns. Each message names the offending layer, shape or file."""


class NotAnalyzableModelError(ValueError):
    """The model contains a layer or operation that the chosen method cannot explain."""


class SubclassedModelError(NotAnalyzableModelError):
    """A subclassed model: no functional graph to walk (the gradient methods need none)."""


class InvalidInputError(ValueError):
    """Data passed to `analyze` or `fit` does not match the model."""


class PatternFileError(InvalidInputError):
    """A patterns file (or fit checkpoint) that cannot be used with this model."""


class NumericalError(ArithmeticError):
    """An explanation came out NaN or inf (float32 overflow inside a method): raised, naming
    the method and the sample, instead of returning it."""


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra and the pip command that installs it."""


class ModelFileError(NotAnalyzableModelError, InvalidInputError):
    """A model argument that is neither a keras.Model nor the path of a saved model file."""
