"""One way to load a saved Keras model, for the analyzers, the command line and the zoo."""

import os

import keras

from .errors import ModelFileError


def load_model(model, compile=False):
    """The model to explain: a `keras.Model` as it is, or loaded from a saved `.keras` file.

    Args:
        model: a `keras.Model`, or the path (str or os.PathLike) of a saved model.
        compile: whether to restore the training configuration (not needed to explain).

    Returns:
        keras.Model.

    Raises:
        ModelFileError: no file at the path, a file that is not a Keras model, or an
            argument that is neither a model nor a path (the message names it).
    """
    if isinstance(model, keras.Model):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ModelFileError(
            f"Expected a keras.Model (or the path of a saved .keras model), got "
            f"{type(model).__name__}.")
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ModelFileError(f"'{path}' is not a file: the model file does not exist.")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as e:  # noqa: BLE001 - every loading failure is the same user error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(
            f"'{path}' could not be loaded: it is not a Keras model file "
            f"({type(e).__name__}: {first}).") from None
