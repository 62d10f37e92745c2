"""Reproducible noise: the same seed gives the same noise for the same sample, whatever the
call, the batch it is in or its position there.

Each sample gets a key: a hash of its values (all model inputs) and the seed. The noise of
copy k of input i of a sample is drawn from a counter-based generator seeded with
(key, k * n_inputs + i), so it depends on nothing else. Without a seed the keys are fresh
random numbers at every call.
"""

import hashlib

import numpy as np
import tensorflow as tf


def sample_keys(xs, seed):
    """One int64 key per sample of the input arrays `xs` (fresh random keys if seed is
    None)."""
    n = len(xs[0])
    if seed is None:
        return np.random.default_rng().integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    salt = str(int(seed)).encode()
    keys = np.empty(n, np.int64)
    for j in range(n):
        h = hashlib.blake2b(digest_size=8, key=salt)
        for x in xs:
            row = np.ascontiguousarray(x[j])
            h.update(str((row.dtype.str, row.shape)).encode())
            h.update(row.tobytes())
        keys[j] = np.frombuffer(h.digest(), np.int64)[0]
    return keys


def normal_copies(x, keys, copies, stream, n_streams, stddev):
    """Gaussian noise N(0, stddev^2) for the copies `copies` (an int vector) of every sample
    of input `stream` (of `n_streams`) `x`, from the samples' `keys`: shape
    (len(copies), batch, ...). Runs inside a compiled function."""
    batch = tf.shape(x)[0]
    group = tf.shape(copies)[0]
    counter = tf.cast(copies, tf.int64) * n_streams + stream
    seeds = tf.stack([tf.broadcast_to(keys[None, :], [group, batch]),
                      tf.broadcast_to(counter[:, None], [group, batch])], axis=-1)
    noise = tf.map_fn(
        lambda s: tf.random.stateless_normal(tf.shape(x)[1:], seed=s, stddev=stddev,
                                             dtype=x.dtype),
        tf.reshape(seeds, [-1, 2]), fn_output_signature=tf.TensorSpec(x.shape[1:], x.dtype),
        parallel_iterations=32)
    return tf.reshape(noise, tf.concat([[group, batch], tf.shape(x)[1:]], 0))


def normal_like(x, key, stream, stddev):
    """numpy noise N(0, stddev^2) shaped like one sample `x` of input `stream`, from the
    sample's key."""
    rng = np.random.default_rng([int(np.int64(key).view(np.uint64)), int(stream)])
    return rng.normal(0.0, stddev, size=np.shape(x))
