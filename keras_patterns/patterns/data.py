"""Batches from whatever a user passes to `fit`: numpy arrays, (x, y) tuples,
`tf.data.Dataset`, Python generators and iterators, `keras.utils.PyDataset`."""

import itertools

import keras
import numpy as np
import tensorflow as tf

from ..errors import InvalidInputError
from ..inputs import check_batch_size, check_shape, expected_shapes, positive_int


def features(element, n_inputs):
    """The model inputs of one element: drop labels and sample weights of (x, y[, w])."""
    if isinstance(element, dict):
        return list(element.values())
    if isinstance(element, tuple):
        if n_inputs == 1 and len(element) in (2, 3) or (
            n_inputs > 1 and len(element) in (2, 3) and isinstance(element[0], (list, tuple))
        ):
            element = element[0]
    return list(element) if isinstance(element, (list, tuple)) else [element]


def _check(xs, specs, where):
    if len(xs) != len(specs):
        raise InvalidInputError(
            f"fit() on {where}: the model has {len(specs)} input(s) of shape "
            f"{expected_shapes(specs)}; a batch has {len(xs)} array(s)."
        )
    out = []
    for x, spec in zip(xs, specs):
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        check_shape(x.shape, spec, f"fit() on {where}: the model")
        out.append(tf.cast(x, spec.dtype))
    return out


def is_arrays(data):
    return isinstance(data, (np.ndarray, tf.Tensor)) or (
        isinstance(data, (list, tuple)) and len(data) > 0 and isinstance(
            data[0], (np.ndarray, tf.Tensor, list, tuple)))


def _source(data, specs, batch_size, steps):
    """(iterator over raw elements, description for messages, number of batches or None)."""
    n_inputs = len(specs)
    rank = len(specs[0].shape)
    if isinstance(data, tf.data.Dataset):
        first = tf.nest.flatten(features(data.element_spec, n_inputs))[0]
        if len(first.shape) == rank - 1:  # unbatched elements
            data = data.batch(batch_size)
        card = int(data.cardinality())  # -1 infinite, -2 unknown
        if card == tf.data.INFINITE_CARDINALITY and steps is None:
            raise InvalidInputError(
                "fit() on a tf.data.Dataset of infinite cardinality (.repeat() without a "
                "count) needs steps=: the number of batches to fit on.")
        return iter(data), "a tf.data.Dataset", card if card >= 0 else None
    if isinstance(data, keras.utils.PyDataset):
        n = data.num_batches  # None: infinite
        if n is None and steps is None:
            raise InvalidInputError(
                "fit() on an infinite PyDataset (num_batches is None) needs steps=.")
        indices = range(n) if n is not None else itertools.count()
        return (data[i] for i in indices), "a PyDataset", n
    if is_arrays(data):
        xs = [np.asarray(x) for x in features(data, n_inputs)]
        n = len(xs[0]) if xs[0].ndim else 0
        if any((len(x) if x.ndim else 0) != n for x in xs):
            raise InvalidInputError(
                "fit(): the input arrays have different numbers of samples "
                f"{[len(x) if x.ndim else 0 for x in xs]}."
            )
        source = ([x[i : i + batch_size] for x in xs] for i in range(0, n, batch_size))
        return source, "arrays", -(-n // batch_size)
    if hasattr(data, "__next__") or hasattr(data, "__iter__"):
        return iter(data), "a generator", None
    raise InvalidInputError(
        f"fit() cannot read data of type {type(data).__name__}: pass numpy arrays, an "
        "(x, y) tuple, a tf.data.Dataset, a generator or a keras.utils.PyDataset."
    )


class Batches:
    """The batches of `data` as lists of input tensors, at most `steps` of them.

    `known` is the number of batches when it is known in advance (for the progress bar),
    else None; `where` describes the data in messages.
    """

    def __init__(self, data, specs, batch_size=32, steps=None):
        batch_size = check_batch_size(batch_size)
        if steps is not None and not positive_int(steps):
            raise ValueError(f"steps must be a positive int or None, got {steps!r}.")
        self.specs = specs
        self.steps = None if steps is None else int(steps)
        self._source, self.where, n = _source(data, specs, batch_size, steps)
        self.known = n if steps is None else (steps if n is None else min(n, steps))
        self._batch_size = batch_size
        self._offset = 0

    def __iter__(self):
        n_inputs = len(self.specs)
        for number, element in enumerate(itertools.islice(self._source, self.steps),
                                         start=self._offset):
            xs = _check(features(element, n_inputs), self.specs, self.where)
            self._check_finite(xs, number)
            yield xs

    def skip(self, n_batches):
        """Skip the first `n_batches` batches (a resumed fit). Their elements are drawn from
        the source but not checked or converted (slicing arrays copies nothing). Returns
        the number of batches skipped (fewer if the data ends before)."""
        skipped = sum(1 for _ in itertools.islice(self._source, n_batches))
        self._offset += skipped
        if self.steps is not None:
            self.steps = max(0, self.steps - skipped)
        return skipped

    def _check_finite(self, xs, number):
        """Refuse a batch holding NaN or inf: it would make every pattern NaN."""
        for i, x in enumerate(xs):
            if not x.dtype.is_floating:
                continue
            if bool(tf.reduce_all(tf.math.is_finite(x))):
                continue
            finite = tf.reduce_all(tf.math.is_finite(x), axis=tuple(range(1, len(x.shape))))
            row = int(tf.argmin(tf.cast(finite, tf.int32)))
            which = f" of input {i}" if len(xs) > 1 else ""
            where = (f"sample {number * self._batch_size + row} (row {row} of batch {number})"
                     if self.where == "arrays" else f"row {row} of batch {number}")
            raise InvalidInputError(
                f"fit() on {self.where}: {where}{which} holds NaN or inf; patterns fitted on it "
                "would be NaN. Remove or repair the non-finite values.")

    def empty_error(self):
        return InvalidInputError(
            f"fit() got no data from {self.where}: expected at least one batch of shape "
            f"{expected_shapes(self.specs)}."
        )
