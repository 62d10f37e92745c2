"""What users pass to `analyze` and `fit`, checked against the model's inputs.

Every refusal is an `InvalidInputError` that names the input, the shape or the sample.
"""

import numbers

import numpy as np

from .errors import InvalidInputError
from .graph import is_floating


def positive_int(value, name, optional=False):
    """`value` as an int if it is a positive integer (numpy integers count; `True` does not).

    Args:
        value: what the user passed.
        name: the parameter's name, for the message.
        optional: whether None is accepted too (and returned as it is).

    Returns:
        `int(value)`, or None for None when `optional`.

    Raises:
        ValueError: naming the parameter and the value.
    """
    if value is None and optional:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    alternative = " or None" if optional else ""
    raise ValueError(f"{name} must be a positive int{alternative}, got {value!r}.")


def check_batch_size(value):
    """`positive_int(value, "batch_size")`."""
    return positive_int(value, "batch_size")


def expected_shapes(specs):
    """The batch shapes the model takes, for messages: (batch, 32, 32, 3), ..."""
    return ", ".join(str(("batch",) + tuple(spec.shape)[1:]) for spec in specs)


def check_shape(shape, spec, what):
    """Refuse an array of `shape` for an input of KerasTensor `spec`."""
    want = tuple(spec.shape)
    shape = tuple(shape)
    if len(shape) != len(want) or any(
            w is not None and w != d for w, d in zip(want[1:], shape[1:])):
        raise InvalidInputError(
            f"{what} expects shape {('batch',) + want[1:]}, got an array of shape {shape}.")


def _first_bad_sample(bad):
    return int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))


def check_values(x, spec, what, vocabulary=None):
    """The numpy array `x` as `spec`'s dtype: floats must be finite, token ids (integer
    inputs) whole numbers in range(vocabulary) when the vocabulary size is known."""
    floating = is_floating(spec.dtype)
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        sample = _first_bad_sample(~np.isfinite(x))
        raise InvalidInputError(
            f"{what}: sample {sample} holds NaN or inf; an explanation of it would be "
            "meaningless.")
    if not floating:
        if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
            sample = _first_bad_sample(x != np.round(x))
            raise InvalidInputError(
                f"{what} takes integer token ids ({spec.dtype}); sample {sample} holds "
                "non-integer values, which would be truncated silently.")
        if x.dtype.kind not in "iubf":
            raise InvalidInputError(f"{what} takes integer token ids, got dtype {x.dtype}.")
        if vocabulary is not None and x.size and (x.min() < 0 or x.max() >= vocabulary):
            bad = (x < 0) | (x >= vocabulary)
            raise InvalidInputError(
                f"{what}: sample {_first_bad_sample(bad)} holds the token id "
                f"{x[bad].flat[0]:g}, outside the embedding's vocabulary 0..{vocabulary - 1}.")
    return x.astype(spec.dtype, copy=False)


def as_input_list(X, tensors):
    """The user's `X` as one array-like per model input (graph input `tensors`), and its
    form: "single" (one array), "list" (a list or tuple with one array per input) or "dict"
    (keyed by input name); results are returned in the same form."""
    names = [t.name for t in tensors]
    if isinstance(X, dict):
        if set(X) != set(names):
            raise InvalidInputError(
                f"A dict input must be keyed by the model's input names {names}; got keys "
                f"{sorted(map(str, X))}.")
        return [X[n] for n in names], "dict"
    if isinstance(X, (list, tuple)):
        arrays = all(hasattr(x, "shape") and hasattr(x, "dtype") for x in X)
        if len(X) != len(tensors) or not arrays:
            if len(tensors) == 1:
                raise InvalidInputError(
                    f"The model has one input ('{names[0]}'); got a {type(X).__name__} of "
                    f"{len(X)} items. Pass one array of shape (batch, ...) "
                    "(np.asarray(...) turns a nested list into one).")
            raise InvalidInputError(
                f"The model has {len(tensors)} inputs ({', '.join(names)}); got a "
                f"{type(X).__name__} of {len(X)} items"
                + ("" if arrays else " that are not all arrays") + ": pass one array per input.")
        return list(X), "list"
    if not hasattr(X, "shape"):
        raise InvalidInputError(
            f"Cannot explain an input of type {type(X).__name__}: pass a numpy array (or a "
            "list with one array per model input, or a tf.data.Dataset).")
    if len(tensors) != 1:
        raise InvalidInputError(
            f"The model has {len(tensors)} inputs ({', '.join(names)}); got one array: pass "
            "a list with one array per input.")
    return [X], "single"


def in_form(arrays, form, tensors):
    """Results, one per model input, in the form the input was given (see
    `as_input_list`)."""
    if form == "single":
        return arrays[0]
    if form == "dict":
        return {t.name: a for t, a in zip(tensors, arrays)}
    return arrays


def standardize(X, tensors, vocabularies=None):
    """Checked numpy arrays, one per model input, and the form X was given in.
    vocabularies: input index -> vocabulary size of the embedding it feeds."""
    xs, form = as_input_list(X, tensors)
    out = []
    for i, (x, t) in enumerate(zip(xs, tensors)):
        x = np.asarray(x)
        what = f"Input '{t.name}'"
        if x.dtype == object:
            raise InvalidInputError(f"{what} is not a numeric array (dtype object).")
        check_shape(x.shape, t.spec, what)
        out.append(check_values(x, t.spec, what, (vocabularies or {}).get(i)))
    n = {len(x) for x in out}
    if len(n) != 1:
        raise InvalidInputError(
            f"The input arrays have different numbers of samples: {[len(x) for x in out]}.")
    if n == {0}:
        raise InvalidInputError("analyze() got an empty batch.")
    return out, form
