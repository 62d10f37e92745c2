"""A batch split over the replicas of a `tf.distribute` strategy.

Explaining is independent per sample, so a batch of n samples is cut into contiguous
shares of ceil(n / R) samples, one per replica (the last ones may get fewer); every replica
runs the same compiled function on its share and the shares' results are concatenated in
replica order, which is the order of the samples (across machines, under a
`MultiWorkerMirroredStrategy`, every worker feeds the same batches and receives the whole
explanation). A batch with fewer samples than replicas runs on the current device alone.
The fit's statistics pass splits its batches with the same `distribute` and sums the
replicas' statistics instead (`patterns.streaming`).
"""

import tensorflow as tf

from .compiled import compiled


def current(strategy=None):
    """`strategy`, or the strategy of the current scope (the default one: one replica)."""
    return strategy if strategy is not None else tf.distribute.get_strategy()


def shares(n, replicas):
    """(start, stop) of each replica's contiguous share of n samples."""
    size = -(-n // replicas)
    return [(min(n, i * size), min(n, (i + 1) * size)) for i in range(replicas)]


def distribute(strategy, per_sample):
    """The tensors `per_sample` (sample first) cut into the replicas' contiguous shares:
    a distributed value for `strategy.run`."""
    ranges = shares(int(per_sample[0].shape[0]), strategy.num_replicas_in_sync)

    def part(ctx):
        start, stop = ranges[ctx.replica_id_in_sync_group]
        return [t[start:stop] for t in per_sample]

    return strategy.experimental_distribute_values_from_function(part)


class Split:
    """`fn(per_sample, *shared)` run on every replica's share of the batch.

    Args:
        fn: a function of a list of tensors whose first axis is the sample (cut into
            shares) and of further arguments passed whole to every replica; it returns a
            list of tensors with the sample first.
    """

    def __init__(self, fn):
        self.fn = fn
        self._steps = {}  # id(strategy) -> (strategy, compiled step)

    def __call__(self, strategy, per_sample, *shared):
        replicas = strategy.num_replicas_in_sync
        n = int(per_sample[0].shape[0])
        if replicas == 1 or n < replicas:
            return self.fn(per_sample, *shared)
        out = self._step(strategy)(distribute(strategy, per_sample), *shared)
        return [_gathered(strategy, t) for t in out]

    def _step(self, strategy):
        kept = self._steps.get(id(strategy))
        if kept is None or kept[0] is not strategy:
            fn = self.fn

            def step(distributed, *shared):
                return strategy.run(fn, args=(distributed, *shared))

            kept = (strategy, compiled(step))
            self._steps[id(strategy)] = kept
        return kept[1]


def _gathered(strategy, value):
    """Every replica's share of `value`, in replica order: the local results where this
    process holds every replica, gathered from all workers otherwise (every worker then
    holds the whole explanation)."""
    local = strategy.experimental_local_results(value)
    if len(local) == strategy.num_replicas_in_sync:
        return tf.concat(local, axis=0)
    return strategy.gather(value, axis=0)
