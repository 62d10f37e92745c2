"""The statistics pass: one streaming pass over the data that adds every kernel map's batch
sums to float64 accumulators (`statistics`), in one compiled function; memory does not grow
with the data. Under a `tf.distribute` strategy every replica forms the sums of its share of
the batch; the sums are all-reduced and added once. With a `Checkpoint`, the pass resumes
from it and writes it every k batches; a signal waits until the batch being counted is
counted (`checkpoint.Interruptions`)."""

import contextlib

import keras
import tensorflow as tf

from ..compiled import compiled
from ..data import Batches
from ..errors import InvalidInputError
from ..graph import KERNEL
from ..replicas import distribute
from .identity import layout, pattern_keys
from .statistics import KernelStatistics

# samples of the first batch whose channel means become the input shifts
CALIBRATION_SAMPLES = 4


def kernel_calls(graph, xs):
    """Replay `graph` on the inputs `xs`; yields (node, x, y, z) at each kernel map: its
    input, its output without bias and its output."""
    values = {t.index: x for t, x in zip(graph.inputs, xs)}
    for node in graph.nodes:
        outs = node.forward([values[t.index] for t in node.inputs])
        for t, v in zip(node.outputs, outs):
            values[t.index] = v
        if node.role != KERNEL:
            continue
        kmap = node.kernel_map
        x, z = values[node.inputs[0].index], values[node.outputs[0].index]
        bias = kmap.bias
        y = z if bias is None else z - kmap.broadcast(bias, len(z.shape))
        yield node, x, y, z


class StatisticsPass:
    """The statistics pass over one graph."""

    def __init__(self, graph, regimes, strategy=None, precision="float32"):
        self.graph = graph
        self.keys = pattern_keys(graph)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.stats = {}
        for node, key in self.keys.items():
            if key not in self.stats:
                self.stats[key] = KernelStatistics(node.kernel_map, regimes[key], precision)
        self._step = compiled(self._update)
        self.n_batches = self.n_samples = 0  # counted by `run`

    def _calibrate(self, xs):
        """Fix every map's input shift from the first `CALIBRATION_SAMPLES` samples of the
        first batch (the first call of a shared layer). Runs once, eagerly: cheaper than
        tracing a second function. Any shift gives the same sums in exact arithmetic; one
        near the mean keeps float32's round-off small, and a few samples give that."""
        done = set()
        xs = [x[:CALIBRATION_SAMPLES] for x in xs]
        for node, x, _, _ in kernel_calls(self.graph, xs):
            key = self.keys[node]
            if key not in done:
                self.stats[key].calibrate(x)
                done.add(key)

    def _sums(self, xs):
        """Replica function: the forward pass, and each kernel map's sums on the way."""
        sums, shifts = {}, {}
        for node, x, y, z in kernel_calls(self.graph, xs):
            key = self.keys[node]
            # calls of a shared layer take their sums around the first call's shifts
            s, shifts[key] = self.stats[key].batch_sums(x, y, z, shifts.get(key))
            sums.setdefault(key, []).append(s)
        return sums, shifts

    def _update(self, xs):
        strategy = self.strategy
        if strategy.num_replicas_in_sync > 1:
            per_replica_sums, per_replica_shifts = strategy.run(self._sums, args=(xs,))
            sums = tf.nest.map_structure(
                lambda t: strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None),
                per_replica_sums)
            # the replicas agree on the shifts (means all-reduced over the batch)
            shifts = tf.nest.map_structure(
                lambda t: strategy.experimental_local_results(t)[0], per_replica_shifts)
        else:
            sums, shifts = self._sums(xs)
        for key, per_call in sums.items():
            self.stats[key].update(per_call, shifts[key])

    def accumulators(self):
        """Stable key -> {name: accumulator variable}, for checkpoints."""
        return {stable: self.stats[key].variables()
                for stable, key, _ in layout(self.graph, self.keys)}

    def run(self, data, batch_size, steps, verbose, checkpoint=None,
            held=contextlib.nullcontext):
        """One pass over `data`; returns the number of input samples seen. With a
        `Checkpoint`, resumes from it and writes it every `checkpoint.every` batches.
        `held()` (see `checkpoint.Interruptions`) surrounds the counting of each batch, in
        which the accumulators and `n_batches`, `n_samples` change together."""
        source = Batches(data, [t.spec for t in self.graph.inputs], batch_size, steps,
                         caller="fit")
        self.n_batches = self.n_samples = 0
        if checkpoint is not None:
            self.n_batches, self.n_samples = checkpoint.restore(self.accumulators())
            skipped = source.skip(self.n_batches)
            if skipped < self.n_batches:
                raise InvalidInputError(
                    f"fit() resumed from '{checkpoint.path}', which counted {self.n_batches} "
                    f"batches, but {source.where} has only {skipped}: not the data the "
                    "checkpoint was written for.")
        bar = keras.utils.Progbar(source.known, verbose=verbose,
                                  unit_name="batch") if verbose else None
        if bar is not None and self.n_batches:
            bar.update(self.n_batches)
        for xs in source:
            with held():
                self._count(xs)
                if checkpoint is not None and checkpoint.due(self.n_batches):
                    checkpoint.write(self.accumulators(), self.n_batches, self.n_samples)
            if bar is not None:
                bar.update(self.n_batches)  # finalizes itself at a known last batch
        if self.n_samples == 0:
            raise source.empty_error()
        if bar is not None and self.n_batches != bar.target:
            bar.update(self.n_batches, finalize=True)
        return self.n_samples

    def _count(self, xs):
        """Add the sums of the batch `xs` and count it."""
        n = int(xs[0].shape[0])
        if self.n_samples == 0 and n:
            self._calibrate(xs)
        if self.strategy.num_replicas_in_sync > 1:
            xs = distribute(self.strategy, xs)
        self._step(xs)
        self.n_samples += n
        self.n_batches += 1
