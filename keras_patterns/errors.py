"""Errors raised by keras-patterns. Each message names the offending layer, shape or file."""


class NotAnalyzableModelError(ValueError):
    """The model contains a layer or operation that the chosen method cannot explain."""


class InvalidInputError(ValueError):
    """Data passed to `analyze` or `fit` does not match the model."""
