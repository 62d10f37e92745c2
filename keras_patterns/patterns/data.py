"""Batches from whatever a user passes to `fit`: numpy arrays, (x, y) tuples,
`tf.data.Dataset`, Python generators and iterators, `keras.utils.PyDataset`."""

import keras
import numpy as np
import tensorflow as tf

from ..errors import InvalidInputError


def _features(element, n_inputs):
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
            f"{where}: the model has {len(specs)} input(s), a batch has {len(xs)} array(s)."
        )
    out = []
    for x, spec in zip(xs, specs):
        shape = tuple(x.shape)
        want = tuple(spec.shape)
        if len(shape) != len(want) or any(
            w is not None and w != d for w, d in zip(want[1:], shape[1:])
        ):
            raise InvalidInputError(
                f"{where}: expected batches of shape {('batch',) + want[1:]}, got {shape}."
            )
        out.append(tf.cast(x, spec.dtype))
    return out


def batches(data, specs, batch_size=32, steps=None):
    """Yield lists of input tensors, one list per batch; `steps` limits the number."""
    n_inputs = len(specs)
    rank = len(specs[0].shape)
    if isinstance(data, tf.data.Dataset):
        first = tf.nest.flatten(_features(data.element_spec, n_inputs))[0]
        if len(first.shape) == rank - 1:  # unbatched elements
            data = data.batch(batch_size)
        source, where = iter(data), "tf.data.Dataset"
    elif isinstance(data, keras.utils.PyDataset):
        source = (data[i] for i in range(len(data)))
        where = "PyDataset"
    elif isinstance(data, (np.ndarray, tf.Tensor)) or (
        isinstance(data, (list, tuple)) and len(data) and isinstance(
            data[0], (np.ndarray, tf.Tensor, list, tuple))
    ):
        xs = [np.asarray(x) for x in _features(data, n_inputs)]
        n = len(xs[0])
        if any(len(x) != n for x in xs):
            raise InvalidInputError(
                f"fit(): the input arrays have different numbers of samples {[len(x) for x in xs]}."
            )
        source = ([x[i : i + batch_size] for x in xs] for i in range(0, n, batch_size))
        where = "array"
    elif hasattr(data, "__next__") or hasattr(data, "__iter__"):
        source, where = iter(data), "generator"
    else:
        raise InvalidInputError(
            f"fit() cannot read data of type {type(data).__name__}: pass numpy arrays, an "
            "(x, y) tuple, a tf.data.Dataset, a generator or a keras.utils.PyDataset."
        )
    for k, element in enumerate(source):
        if steps is not None and k >= steps:
            return
        yield _check(_features(element, n_inputs), specs, where)


def number_of_batches(data, batch_size, steps):
    """The number of batches when it is known (for the progress bar), else None."""
    n = None
    if isinstance(data, keras.utils.PyDataset):
        n = len(data)
    elif isinstance(data, np.ndarray):
        n = -(-len(data) // batch_size)
    elif isinstance(data, tf.data.Dataset):
        card = int(data.cardinality())
        n = card if card >= 0 else None
    if steps is not None:
        n = steps if n is None else min(n, steps)
    return n
