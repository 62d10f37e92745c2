"""The bases of the methods that average gradients over modified copies of the input:
`AveragedGradient` (Integrated Gradients) and `NoisyGradient` (SmoothGrad, VarGrad,
SquareGrad)."""

import keras
import numpy as np
import tensorflow as tf

from .. import replicas
from ..compiled import compiled
from ..errors import NotAnalyzableModelError
from ..graph import OPAQUE
from ..inputs import positive_int
from ..noise import normal_copies, sample_keys
from ..reverse import EmbeddingCut
from .reverse import ReverseAnalyzer


class AveragedGradient(ReverseAnalyzer):
    """Statistics of gradients over `n_copies` modified copies of each input (by default
    their mean).

    The copies are made of the reverse model's inputs: a token input's embedding outputs
    (`reverse.EmbeddingCut`) are modified, as float inputs are; integer inputs that feed no
    Embedding directly (masks, segment ids used otherwise) are held as they are and get no
    explanation (zeros). The copies of a chunk of samples are processed in groups, so that
    one reverse pass never sees more than about `batch_size` samples: memory stays bounded
    for any number of copies.
    """

    n_copies = 1
    explains_any_layer = True
    # the compiled functions, built on first use
    _group_function = None
    _index_function = None

    def _check_model(self, graph):
        uncut = EmbeddingCut(graph).uncut
        if uncut:
            raise NotAnalyzableModelError(
                f"Layer '{uncut[0].name}' (Embedding) is fed by a computed tensor, not by a "
                f"model input: '{self.name}' modifies the outputs of Embeddings of token "
                "inputs only.")
        for t in graph.inputs:
            hidden = [n for n in graph.consumers(t)
                      if n.role == OPAQUE and isinstance(n.op, keras.Model)]
            if not t.is_floating and hidden:
                raise NotAnalyzableModelError(
                    f"The integer input '{t.name}' goes into '{hidden[0].name}' "
                    f"({hidden[0].why or 'a model without a functional graph'}), whose "
                    f"embeddings '{self.name}' cannot see: make it functional, e.g. "
                    "keras.Model(inputs, model.call(inputs)).")

    def _reverse_mode(self):
        # The neuron is chosen once, on the unmodified input; the copies use its index.
        return "all" if self.neuron_selection_mode == "all" else "index"

    def _forward_index(self, xs):
        (y,) = self.graph.evaluate(xs)  # the explained output (any input structure)
        flat = tf.reshape(y, (tf.shape(y)[0], -1))
        return tf.argmax(flat, axis=1, output_type=tf.int32)

    def _copies(self, x, k, i, keys):
        """Copies number `k` (a vector) of the reverse model's float input `i` (value `x`),
        shaped (len(k), batch, ...); `keys` identify the samples (see `noise`)."""
        raise NotImplementedError

    def _keys(self, xs):
        """Per-sample keys of the copies' randomness (see `noise`); none by default."""
        return np.zeros(len(xs[0]), np.int64)

    def _per_copy(self, gradient):
        return gradient

    def _statistics(self, gradients, weight):
        """What `_merge` accumulates over the groups of copies, from one group's gradients
        (group, batch, ...) of one input (`weight` is 0 for the copies past `n_copies`):
        by default the sum of `_per_copy(gradient)`."""
        return [tf.reduce_sum(self._per_copy(gradients) * weight, axis=0)]

    def _merge(self, total, part, n_total, n_part):
        """The statistics of n_total + n_part copies from those of both parts."""
        return [t + p for t, p in zip(total, part)]

    def _average(self, total, n):
        """The explanation (per dimension) from the statistics of all n copies."""
        return total[0] / n

    def _combine(self, xs, averages):
        return averages

    def _group_statistics(self, xs, index, first, group, keys):
        """The statistics of copies first..first+group-1 of the reverse model's inputs `xs`,
        flat: those of input 0, then of input 1..."""
        k = first + tf.range(group)
        weight = tf.cast(k < self.n_copies, tf.float32)
        batch = tf.shape(xs[0])[0]
        stacked = []
        for i, x in enumerate(xs):
            if x.dtype.is_floating:
                c = self._copies(x, k, i, keys)
            else:  # held as it is
                c = tf.tile(x[None], tf.concat([[group], tf.ones_like(tf.shape(x))], 0))
            stacked.append(tf.reshape(c, tf.concat([[group * batch], tf.shape(x)[1:]], 0)))
        inputs = stacked + ([tf.tile(index, [group])] if self._reverse_mode() == "index" else [])
        out = self._reverse(inputs)
        flat = []
        for o, x in zip(out, xs):
            o = tf.reshape(o, tf.concat([[group], tf.shape(x)], 0))
            w = tf.reshape(tf.cast(weight, o.dtype),
                           tf.concat([[group], tf.ones_like(tf.shape(x))], 0))
            flat.extend(self._statistics(o, w))
        return flat

    def _group_statistics_split(self, per_sample, first, group):
        n_inputs = len(per_sample) - 2
        return self._group_statistics(per_sample[:n_inputs], per_sample[n_inputs], first,
                                      group, per_sample[n_inputs + 1])

    def _analyze_batch(self, xs, index, strategy):
        if self._group_function is None:
            self._group_function = replicas.Split(
                compiled(self._group_statistics_split, self.jit_compile))
            self._index_function = compiled(self._forward_index)
        keys = tf.constant(self._keys(xs))
        xs = [tf.convert_to_tensor(x) for x in xs]
        values = [tf.convert_to_tensor(v) for v in self.cut.embed(xs)]
        n = len(xs[0])
        if self.neuron_selection_mode == "max_activation":
            index = self._index_function(xs)
        elif index is None:
            index = tf.zeros((n,), tf.int32)
        index = tf.convert_to_tensor(index, tf.int32)
        group = max(1, min(self.n_copies, self.batch_size // n))
        totals, seen, dtypes = None, 0, None
        for first in range(0, self.n_copies, group):
            flat = self._group_function(strategy, [*values, index, keys], tf.constant(first),
                                        group)
            size = len(flat) // len(values)
            parts = [flat[j * size:(j + 1) * size] for j in range(len(values))]
            count = min(group, self.n_copies - first)
            if totals is None:
                totals, dtypes = parts, [p[0].dtype for p in parts]
            else:
                totals = [self._merge(t, p, seen, count) for t, p in zip(totals, parts)]
            seen += count
        averages = [tf.cast(self._average(t, self.n_copies), d) for t, d in zip(totals, dtypes)]
        out = self.cut.per_input(self._combine(values, averages), self.per_dimension)
        return [e.numpy() for e in out]


def embedding_range(layer):
    """max - min of the values of an Embedding's table: the unit of the noise on its
    outputs."""
    table = tf.convert_to_tensor(layer.embeddings)
    return tf.reduce_max(table) - tf.reduce_min(table)


class NoisyGradient(AveragedGradient):
    """Statistics of gradients at `augment_by_n` noisy copies x + N(0, noise_scale^2) of
    the input; for a token input, of its embedding output e + N(0, (noise_scale r)^2),
    where r is the range (max - min) of the embedding's table.

    Args:
        augment_by_n: the number of noisy copies of each sample.
        noise_scale: standard deviation of the Gaussian noise, in input units; for a token
            input, relative to the range of the embedding's values (as for an input in
            [0, 1]).
        seed: seed of the noise. With a seed, the same sample gets the same noise (and the
            same explanation) in every call, whatever the batch it is in or its position
            there; None: a fresh draw each call.
    """

    def __init__(self, model, augment_by_n=64, noise_scale=1.0, seed=None, **kwargs):
        augment_by_n = positive_int(augment_by_n, "augment_by_n")
        self.augment_by_n = augment_by_n
        self.noise_scale = float(noise_scale)
        self.seed = seed
        self.n_copies = augment_by_n
        super().__init__(model, **kwargs)

    def _keys(self, xs):
        return sample_keys(xs, self.seed)

    def noise_stddev(self, i):
        """The noise's standard deviation at the reverse model's input `i`."""
        lookup = self.cut.lookup_of(i)
        if lookup is None:
            return self.noise_scale
        return self.noise_scale * embedding_range(lookup.op)

    def _copies(self, x, k, i, keys):
        n_inputs = len(self.cut.body.inputs)
        stddev = tf.cast(self.noise_stddev(i), x.dtype)
        if self.seed is None:  # fresh noise: one draw for the whole group
            seed = tf.stack([keys[0], tf.cast(k[0], tf.int64) * n_inputs + i])
            shape = tf.concat([tf.shape(k), tf.shape(x)], 0)
            noise = tf.random.stateless_normal(shape, seed, stddev=stddev, dtype=x.dtype)
        else:  # per sample, from its key: the same noise whatever the batch
            noise = normal_copies(x, keys, k, i, n_inputs, stddev)
        return x[None] + noise
