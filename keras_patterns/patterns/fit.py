"""Fitting patterns: one streaming pass over the data, then the estimator.

`compute_patterns(model, data)` flattens and canonizes the model, replays it batch by batch
in one compiled function that adds each kernel map's batch sums to float64 accumulators
(memory independent of the amount of data; see `statistics`), and turns the statistics into
patterns with the chosen estimator. Under a `tf.distribute` strategy every replica forms
the sums of its share of the batch; the sums are all-reduced and added once.
"""

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from .._warn import warn
from ..compiled import compiled
from ..canonize import prepare
from ..kinds import unsupported_error
from . import estimators
from ..errors import InvalidInputError
from .checkpoint import Checkpoint
from .data import Batches
from .identity import fingerprints, layout
from .statistics import KernelStatistics


class Patterns(Mapping):
    """Patterns of a model: layer key -> {"a_plus", "a_minus"} or {"a"} (kernel-shaped arrays;
    "a_minus" where it was estimated, see `compute_patterns`).

    Attributes: `pattern_type`, `n_samples` (input samples seen while fitting, 0 for the
    unfitted types), `counts` (key -> {"plus": observations per neuron, "minus": ...}),
    `dead` (key -> number of neurons with a zero pattern), `layer_names` (key -> name of the
    Keras layer), `stable_keys` and `fingerprint` (see `storage`).
    """

    def __init__(self, pattern_type, arrays, n_samples=0, counts=None, dead=None,
                 layer_names=None, stable_keys=None, fingerprint=None):
        self.pattern_type = pattern_type
        self._arrays = dict(arrays)
        self.n_samples = int(n_samples)
        self.counts = counts or {}
        self.dead = dead or {}
        self.layer_names = layer_names or {k: k for k in arrays}
        #: stable key (position and class, used in files) -> key
        self.stable_keys = stable_keys or {}
        #: (architecture, weights) fingerprints of the model the patterns were fitted for
        self.fingerprint = fingerprint

    def __getitem__(self, key):
        return self._arrays[key]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __repr__(self):
        return (f"Patterns(type={self.pattern_type!r}, layers={len(self)}, "
                f"samples={self.n_samples})")


def kernel_nodes(graph):
    return [n for n in graph.nodes if n.role == "kernel"]


def pattern_keys(graph):
    """A key per kernel node: the layer name (plus the kernel attribute for the two halves of a
    separable convolution). Calls of one shared layer share the key and the pattern."""
    keys, owner = {}, {}
    for node in kernel_nodes(graph):
        kmap = node.info["kernel_map"]
        base = node.op.name
        # a shared layer folded with different BatchNormalizations maps differently per call
        who = (id(node.op), id(getattr(kmap, "batchnorm", None)))
        if owner.setdefault(base, who) != who:
            base = node.info["layer_name"].split("/")[:-1]
            base = "/".join(base + [node.op.name])
            if getattr(kmap, "batchnorm", None) is not None:
                base = f"{base}+{kmap.batchnorm.name}"
        key = base if kmap.attr == "kernel" else f"{base}.{kmap.attr}"
        keys[node] = key
    return keys


def prepare_graph(model, output_index=None):
    """The graph patterns are fitted on: BatchNormalization folded into the kernel before it.
    Layers without a pattern rule are refused, naming them."""
    graph = prepare(model, output_index, fold=True)
    for node in graph.nodes:
        if node.role == "opaque":
            raise unsupported_error(node, "patterns")
    return graph


def rectified(graph, node):
    """True if only rectifiers consume the node's output: its negative regime is blocked, so
    that regime's pattern is never used."""
    out = node.outputs[0]
    consumers = [n for n in graph.nodes if any(t is out for t in n.inputs)]
    return bool(consumers) and all(
        n.role == "activation" and n.info.get("family") == "relu" for n in consumers)


NEGATIVE_PATTERNS = ("used", "all")
PRECISIONS = ("float32", "float64")


def kernel_regimes(graph, pattern_type, negative_patterns="used"):
    """Key -> the regimes whose kernel-shaped statistics `pattern_type` needs: "all" for
    "linear"; "plus", and "minus" where the negative regime passes a signal (or everywhere
    with negative_patterns="all"), for the relu types."""
    if negative_patterns not in NEGATIVE_PATTERNS:
        raise ValueError(f"negative_patterns must be one of {NEGATIVE_PATTERNS}, got "
                         f"{negative_patterns!r}.")
    regimes = {}
    for node, key in pattern_keys(graph).items():
        if pattern_type not in estimators.RELU_TYPES:
            regimes[key] = ("all",)
            continue
        minus = negative_patterns == "all" or not rectified(graph, node)
        if minus or key not in regimes:
            regimes[key] = ("plus", "minus") if minus else ("plus",)
    return regimes


def kernel_calls(graph, xs):
    """Replay `graph` on the inputs `xs`; yields (node, x, y, z) at each kernel map: its
    input, its output without bias and its output."""
    values = {t.index: x for t, x in zip(graph.inputs, xs)}
    for node in graph.nodes:
        outs = node.forward([values[t.index] for t in node.inputs])
        for t, v in zip(node.outputs, outs):
            values[t.index] = v
        if node.role != "kernel":
            continue
        kmap = node.info["kernel_map"]
        x, z = values[node.inputs[0].index], values[node.outputs[0].index]
        bias = kmap.bias
        y = z if bias is None else z - kmap.broadcast(bias, len(z.shape))
        yield node, x, y, z


class _Pass:
    """The statistics pass over one graph."""

    def __init__(self, graph, regimes, strategy=None, precision="float32"):
        self.graph = graph
        self.keys = pattern_keys(graph)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.stats = {}
        for node, key in self.keys.items():
            if key not in self.stats:
                self.stats[key] = KernelStatistics(node.info["kernel_map"], regimes[key],
                                                   precision)
        self._step = compiled(self._update)

    def _calibrate(self, xs):
        """Fix every map's input shift from one batch (the first call of a shared layer).
        Runs once, eagerly: cheaper than tracing a second function."""
        done = set()
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

    def run(self, data, batch_size, steps, verbose, checkpoint=None):
        """One pass over `data`; returns the number of input samples seen. With a
        `Checkpoint`, resumes from it and writes it every `checkpoint.every` batches."""
        source = Batches(data, [t.spec for t in self.graph.inputs], batch_size, steps)
        n_batches = n_samples = 0
        if checkpoint is not None:
            n_batches, n_samples = checkpoint.restore(self.accumulators())
            skipped = source.skip(n_batches)
            if skipped < n_batches:
                raise InvalidInputError(
                    f"fit() resumed from '{checkpoint.path}', which counted {n_batches} "
                    f"batches, but {source.where} has only {skipped}: not the data the "
                    "checkpoint was written for.")
        bar = keras.utils.Progbar(source.known, verbose=verbose,
                                  unit_name="batch") if verbose else None
        if bar is not None and n_batches:
            bar.update(n_batches)
        replicas = self.strategy.num_replicas_in_sync
        for xs in source:
            n = int(xs[0].shape[0])
            if n_samples == 0 and n:
                self._calibrate(xs)
            if replicas > 1:
                xs = self._distribute(xs)
            self._step(xs)
            n_samples += n
            n_batches += 1
            if bar is not None:
                bar.update(n_batches)  # finalizes itself at a known last batch
            if checkpoint is not None and checkpoint.due(n_batches):
                checkpoint.write(self.accumulators(), n_batches, n_samples)
        if n_samples == 0:
            raise source.empty_error()
        if bar is not None and n_batches != bar.target:
            bar.update(n_batches, finalize=True)
        return n_samples

    def _distribute(self, xs):
        """Split a batch evenly over the replicas (the last ones may get fewer samples)."""
        replicas = self.strategy.num_replicas_in_sync

        def part(ctx):
            i = ctx.replica_id_in_sync_group
            n = int(xs[0].shape[0])
            size = -(-n // replicas)
            return [x[i * size : min(n, (i + 1) * size)] for x in xs]

        return self.strategy.experimental_distribute_values_from_function(part)


def estimate_all(graph, pattern_type, statistics=None, n_samples=0, seed=0):
    """Patterns for every kernel map of `graph` from `statistics` (key -> regime stats)."""
    if pattern_type not in estimators.PATTERN_TYPES:
        raise ValueError(
            f"pattern_type={pattern_type!r} is not one of "
            f"{', '.join(map(repr, estimators.PATTERN_TYPES))}."
        )
    rng = np.random.default_rng(seed)
    arrays, counts, dead, names = {}, {}, {}, {}
    for node, key in pattern_keys(graph).items():
        if key in arrays:
            continue
        kmap = node.info["kernel_map"]
        stats = None if statistics is None else statistics[key]
        arrays[key], dead[key] = estimators.estimate(
            pattern_type, kmap, kmap.kernel.numpy(), stats, rng)
        bad = [name for name, a in arrays[key].items() if not np.all(np.isfinite(a))]
        if bad:
            raise InvalidInputError(
                f"The {' and '.join(bad)} pattern(s) of layer '{key}' came out non-finite: "
                "its activations are too large for the statistics (float64 overflow). "
                "Rescale the model's inputs.")
        names[key] = node.op.name
        if stats is not None:
            counts[key] = {r: stats[r]["n"] for r in ("plus", "minus")}
    entries = layout(graph, pattern_keys(graph))
    patterns = Patterns(pattern_type, arrays, n_samples, counts, dead, names,
                        {stable: key for stable, key, _ in entries}, fingerprints(entries))
    total = sum(dead.values())
    if total:
        worst = sorted(((k, v) for k, v in dead.items() if v), key=lambda kv: -kv[1])[:3]
        more = ", ..." if sum(1 for v in dead.values() if v) > 3 else ""
        warn(f"{total} neuron(s) got a zero pattern because they were never active (or their "
             "output did not vary) in the fitted data: "
             + ", ".join(f"{k}: {v}" for k, v in worst) + more)
    return patterns


def compute_patterns(model, data=None, pattern_type="relu", batch_size=32, steps=None,
                     verbose=0, output_index=None, strategy=None, seed=0, graph=None,
                     negative_patterns="used", precision="float32", checkpoint=None,
                     checkpoint_every=100):
    """Fit the patterns of every kernel layer of `model` on `data` (see `Patterns`).

    data: numpy array(s), an (x, y) tuple, a tf.data.Dataset, a generator or a
        keras.utils.PyDataset (labels are ignored). Not needed for "filter" and "random".
        A batch holding NaN or inf is refused, naming it. A dataset of infinite
        cardinality (`.repeat()`) needs `steps`; a generator is read until it ends (or for
        `steps` batches): an endless generator without `steps` runs forever, with the
        progress bar counting its batches.
    pattern_type: "relu" (default), "relu.eq8", "linear", "filter" or "random".
    batch_size, steps: batching of arrays and unbatched datasets; at most `steps` batches.
    verbose: 1 shows a progress bar.
    strategy: a tf.distribute strategy (default: the current one).
    seed: seed of the "random" estimator.
    negative_patterns: for the relu types, "used" (default) estimates a_minus only for the
        layers whose negative regime passes a signal (no rectifier follows); behind a
        rectifier a_minus is never used, and leaving it out saves two of the four kernel
        gradients per layer and batch. "all" estimates it for every layer.
    precision: "float32" (default) forms each batch's sums in float32 around the data's
        means and adds them up in float64; "float64" forms them in float64 (exact to
        float64 round-off, about 2.5 times slower on CPU). See `statistics`.
    checkpoint: path of a checkpoint file (see `checkpoint`): every `checkpoint_every`
        batches the running statistics are written to it atomically; a fit started again
        with the same data, settings and checkpoint after a crash or Ctrl-C skips the
        batches already counted and returns the same patterns as an uninterrupted fit.
        The data must yield the same batches in the same order (no reshuffling). The file
        is removed when the fit completes.
    checkpoint_every: batches between two checkpoint writes.
    """
    graph = graph if graph is not None else prepare_graph(model, output_index)
    if pattern_type not in estimators.FITTED_TYPES:
        return estimate_all(graph, pattern_type, seed=seed)
    if data is None:
        raise ValueError(f"pattern_type={pattern_type!r} is fitted: pass data.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    regimes = kernel_regimes(graph, pattern_type, negative_patterns)
    fit_pass = _Pass(graph, regimes, strategy, precision)
    if checkpoint is not None:
        entries = layout(graph, fit_pass.keys)
        settings = {"pattern_type": pattern_type, "precision": precision,
                    "batch_size": int(batch_size), "output_index": output_index,
                    "regimes": {stable: list(regimes[key]) for stable, key, _ in entries}}
        checkpoint = Checkpoint(checkpoint, checkpoint_every, settings, fingerprints(entries))
    n_samples = fit_pass.run(data, batch_size, steps, verbose, checkpoint)
    statistics = {key: s.moments(mean_x=pattern_type == "relu.eq8")
                  for key, s in fit_pass.stats.items()}
    patterns = estimate_all(graph, pattern_type, statistics, n_samples, seed)
    if checkpoint is not None:
        checkpoint.remove()
    return patterns
