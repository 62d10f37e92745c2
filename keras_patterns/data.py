"""Batches from whatever a user passes to an entry point that reads data (`fit`,
`signal_quality` and its splits, `analyze` on a dataset): numpy arrays, (x, y) tuples,
`tf.data.Dataset`, Python generators and iterators, `keras.utils.PyDataset`.

Every refusal is an `InvalidInputError` that names the entry point the user called (its
`caller`), the data and, where one is to blame, the batch or the sample.
"""

import itertools

import keras
import numpy as np
import tensorflow as tf

from .errors import InvalidInputError
from .inputs import check_shape, expected_shapes, positive_int


def features(element, n_inputs, names=None):
    """The model inputs of one element: drop labels and sample weights of (x, y[, w]); a
    dict keyed by the inputs' `names` (their order) gives its values in that order."""
    if isinstance(element, tuple) and element and isinstance(element[0], dict) and len(
            element) in (2, 3):
        element = element[0]
    if isinstance(element, dict):
        if names and set(names) <= set(element):
            return [element[name] for name in names]
        return list(element.values())
    if isinstance(element, tuple):
        if n_inputs == 1 and len(element) in (2, 3) or (
            n_inputs > 1 and len(element) in (2, 3) and isinstance(element[0], (list, tuple))
        ):
            element = element[0]
    return list(element) if isinstance(element, (list, tuple)) else [element]


def _names(specs):
    return [getattr(s, "name", None) for s in specs]


def is_arrays(data):
    """Whether `data` is in-memory arrays (one array, or a list or tuple of them)."""
    if isinstance(data, dict):
        return len(data) > 0 and all(isinstance(v, (np.ndarray, tf.Tensor))
                                     for v in data.values())
    return isinstance(data, (np.ndarray, tf.Tensor)) or (
        isinstance(data, (list, tuple)) and len(data) > 0 and isinstance(
            data[0], (np.ndarray, tf.Tensor, list, tuple)))


def batched(dataset, specs, batch_size):
    """`dataset` batched by `batch_size` if its elements are single samples (one rank less
    than the model's first input `specs[0]`), else as it is."""
    first = tf.nest.flatten(features(dataset.element_spec, len(specs), _names(specs)))[0]
    if len(first.shape) == len(specs[0].shape) - 1:
        return dataset.batch(batch_size)
    return dataset


def _converted(xs, specs, where):
    """The arrays of one batch as tensors of the inputs' dtypes, after checking their number
    and shapes; `where` opens the messages ("fit() on a generator")."""
    if len(xs) != len(specs):
        raise InvalidInputError(
            f"{where}: the model has {len(specs)} input(s) of shape "
            f"{expected_shapes(specs)}; a batch has {len(xs)} array(s).")
    out = []
    for x, spec in zip(xs, specs):
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        check_shape(x.shape, spec, f"{where}: the model")
        out.append(tf.cast(x, spec.dtype))
    return out


def _source(data, specs, batch_size, steps, caller):
    """(iterator over raw elements, description for messages, number of batches or None)."""
    n_inputs = len(specs)
    if isinstance(data, tf.data.Dataset):
        data = batched(data, specs, batch_size)
        card = int(data.cardinality())  # -1 infinite, -2 unknown
        if card == tf.data.INFINITE_CARDINALITY and steps is None:
            raise InvalidInputError(
                f"{caller}() on a tf.data.Dataset of infinite cardinality (.repeat() without "
                "a count) needs steps=: the number of batches to read.")
        return iter(data), "a tf.data.Dataset", card if card >= 0 else None
    if isinstance(data, keras.utils.PyDataset):
        n = data.num_batches  # None: infinite
        if n is None and steps is None:
            raise InvalidInputError(
                f"{caller}() on an infinite PyDataset (num_batches is None) needs steps=.")
        indices = range(n) if n is not None else itertools.count()
        return (data[i] for i in indices), "a PyDataset", n
    if is_arrays(data):
        xs = [np.asarray(x) for x in features(data, n_inputs, _names(specs))]
        n = len(xs[0]) if xs[0].ndim else 0
        if any((len(x) if x.ndim else 0) != n for x in xs):
            raise InvalidInputError(
                f"{caller}(): the input arrays have different numbers of samples "
                f"{[len(x) if x.ndim else 0 for x in xs]}.")
        source = ([x[i : i + batch_size] for x in xs] for i in range(0, n, batch_size))
        return source, "arrays", -(-n // batch_size)
    if hasattr(data, "__next__") or hasattr(data, "__iter__"):
        return iter(data), "a generator", None
    raise InvalidInputError(
        f"{caller}() cannot read data of type {type(data).__name__}: pass numpy arrays, an "
        "(x, y) tuple, a tf.data.Dataset, a generator or a keras.utils.PyDataset.")


class Batches:
    """The batches of `data` as lists of input tensors, at most `steps` of them.

    Args:
        data: numpy arrays (batched by `batch_size`), an (x, y[, w]) tuple, a
            tf.data.Dataset (batched by `batch_size` if its elements are single samples),
            a generator or iterator of batches, or a keras.utils.PyDataset.
        specs: the model's input specs (KerasTensors), which every batch must fit.
        batch_size: the batch size of arrays and unbatched datasets.
        steps: at most this many batches (None: all); needed for an infinite source.
        caller: the entry point the user called ("fit", "signal_quality"), named in every
            message.

    Attributes:
        known: the number of batches when it is known in advance (for a progress bar),
            else None.
        where: the data in messages ("arrays", "a generator", ...).

    Raises:
        ValueError: `batch_size` or `steps` not a positive int.
        InvalidInputError: data of an unknown type, an infinite source without `steps`,
            arrays of different lengths; while iterating, a batch that does not fit the
            model or holds NaN or inf.
    """

    def __init__(self, data, specs, batch_size=32, steps=None, *, caller):
        batch_size = positive_int(batch_size, "batch_size")
        steps = positive_int(steps, "steps", optional=True)
        self.specs = specs
        self.steps = steps
        self.caller = caller
        self._source, self.where, n = _source(data, specs, batch_size, steps, caller)
        self.known = n if steps is None else (steps if n is None else min(n, steps))
        self._batch_size = batch_size
        self._offset = 0

    def __iter__(self):
        n_inputs = len(self.specs)
        where = f"{self.caller}() on {self.where}"
        for number, element in enumerate(itertools.islice(self._source, self.steps),
                                         start=self._offset):
            xs = _converted(features(element, n_inputs, _names(self.specs)), self.specs,
                            where)
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
        """Refuse a batch holding NaN or inf: every statistic of it would be NaN."""
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
                f"{self.caller}() on {self.where}: {where}{which} holds NaN or inf; the "
                "statistics computed from it would be NaN. Remove or repair the non-finite "
                "values.")

    def empty_error(self):
        """The error for data that gave no batch."""
        return InvalidInputError(
            f"{self.caller}() got no data from {self.where}: expected at least one batch of "
            f"shape {expected_shapes(self.specs)}.")
