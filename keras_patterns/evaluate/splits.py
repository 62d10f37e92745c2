"""The three splits of the signal quality's protocol (paper section 5): patterns on split
1, the regression on split 2, the measurement on split 3 (see `signal_quality`).

- numpy arrays, (x, y) tuples, lists of arrays (several inputs): by sample index,
  contiguously: split 1 holds samples [0, n1), split 2 [n1, n12), split 3 [n12, n) with
  n1 = round(n p1), n12 = round(n (p1 + p2)); each split is batched on its own. Shuffle
  ordered data (sorted by class, say) first.
- tf.data.Dataset, generators, keras.utils.PyDataset: by batch index, interleaved (the
  number of batches need not be known): batch i goes to the split furthest behind its
  share, the largest p_k (i + 1) - (batches split k got so far), the lowest k on ties; for
  equal thirds batch i goes to split i mod 3 (split 1: batches 0, 3, 6, ...).

Each split needs two samples (arrays) or one batch (streams), and every evaluated layer two
observations per split; else InvalidInputError.
"""

import numpy as np

from ..data import Batches, features, is_arrays
from ..errors import InvalidInputError


def check_splits(splits):
    """The three split shares, normalised to sum to 1.

    Args:
        splits: three positive numbers (p1, p2, p3).

    Returns:
        (3,) float64 array summing to 1.

    Raises:
        ValueError: not three positive finite numbers.
    """
    try:
        p = np.asarray(splits, np.float64)
    except (TypeError, ValueError):
        p = None
    if p is None or p.shape != (3,) or not (np.all(np.isfinite(p)) and np.all(p > 0)):
        raise ValueError(f"splits must be three positive fractions, got {splits!r}.")
    return p / p.sum()


def stream_split(given, shares, i):
    """The split of batch i of a stream: the one furthest behind its share.

    Args:
        given: the batches each split got so far (three ints).
        shares: (3,) the normalised shares (`check_splits`).
        i: the index of the batch, from 0.

    Returns:
        0, 1 or 2: the split k with the largest p_k (i + 1) - given[k], the lowest on ties.
    """
    deficit = shares * (i + 1) - np.asarray(given)
    return int(np.flatnonzero(deficit >= deficit.max() - 1e-9)[0])


def split_batches(data, specs, batch_size, shares, steps):
    """The data split by sample index (arrays) or by batch index (streams).

    Args:
        data: what `signal_quality` accepts.
        specs: the model inputs' tensor specs.
        batch_size: batching of arrays and unbatched datasets.
        shares: (3,) the normalised shares (`check_splits`).
        steps: read at most this many batches of a stream, or None.

    Returns:
        (an iterator of (split, batch), the number of batches or None where unknown, a
        description of the data for messages).

    Raises:
        InvalidInputError: arrays too short to give each split two samples.
    """
    if is_arrays(data):
        xs = [np.asarray(x) for x in features(data, len(specs))]
        n = len(xs[0]) if xs[0].ndim else 0
        ends = [0, round(n * shares[0]), round(n * (shares[0] + shares[1])), n]
        sizes = [b - a for a, b in zip(ends, ends[1:])]
        if min(sizes) < 2:
            raise InvalidInputError(
                f"signal_quality: {n} samples give splits of {sizes} samples; each of the "
                "three splits (patterns, regression, measurement) needs at least 2.")
        parts = [Batches([x[a:b] for x in xs], specs, batch_size, caller="signal_quality")
                 for a, b in zip(ends, ends[1:])]
        source = ((k, batch) for k, part in enumerate(parts) for batch in part)
        return source, sum(p.known for p in parts), "arrays"

    batches = Batches(data, specs, batch_size, steps, caller="signal_quality")

    def stream():
        given = [0, 0, 0]
        for i, batch in enumerate(batches):
            k = stream_split(given, shares, i)
            given[k] += 1
            yield k, batch

    return stream(), batches.known, batches.where
