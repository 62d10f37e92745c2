"""Fitting patterns: one streaming pass over the data, then the estimator.

`compute_patterns(model, data)` flattens and canonizes the model (BatchNormalization folded
into the kernel map before it), gathers the sufficient statistics of every kernel map in one
pass (`streaming`, `statistics`) and turns them into patterns with the chosen estimator
(`estimators`). The analyzers call `fit_patterns` on their own graph.
"""

import contextlib
import os
from typing import Any, Optional, Union

import keras
import numpy as np

from .._warn import warn
from ..canonize import prepare
from ..errors import InvalidInputError
from ..graph import OPAQUE
from ..roles import unsupported_error
from .checkpoint import Checkpoint, Interruptions
from .estimators import estimator
from .identity import fingerprints, layout, pattern_keys
from .patterns import Patterns, all_finite
from .streaming import StatisticsPass

NEGATIVE_PATTERNS = ("used", "all")
PRECISIONS = ("float32", "float64")


def prepare_graph(model, output_index=None):
    """The graph patterns are fitted on: BatchNormalization folded into the kernel before it.
    Layers without a pattern rule are refused, naming them."""
    graph = prepare(model, output_index, fold=True)
    for node in graph.nodes:
        if node.role == OPAQUE:
            raise unsupported_error(node, "patterns")
    return graph


def kernel_regimes(graph, signal_estimator, negative_patterns="used"):
    """Key -> the regimes whose kernel-shaped statistics the estimator needs: its own
    regimes; for a two-component estimator "minus" only where the negative regime passes a
    signal (no rectifier alone follows; everywhere with negative_patterns="all")."""
    if negative_patterns not in NEGATIVE_PATTERNS:
        raise ValueError(f"negative_patterns must be one of {NEGATIVE_PATTERNS}, got "
                         f"{negative_patterns!r}.")
    regimes = {}
    for node, key in pattern_keys(graph).items():
        if not signal_estimator.two_component:
            regimes[key] = signal_estimator.regimes
            continue
        minus = negative_patterns == "all" or not graph.only_rectifiers_consume(node)
        if minus or key not in regimes:
            regimes[key] = ("plus", "minus") if minus else ("plus",)
    return regimes


def estimate_all(graph, signal_estimator, statistics=None, n_samples=0, seed=0):
    """Patterns for every kernel map of `graph` from `statistics` (key -> regime stats)."""
    rng = np.random.default_rng(seed)
    arrays, counts, dead, names = {}, {}, {}, {}
    for node, key in pattern_keys(graph).items():
        if key in arrays:
            continue
        kmap = node.kernel_map
        stats = None if statistics is None else statistics[key]
        # the kernel as stored: the estimator forms its products in float64
        arrays[key], dead[key] = signal_estimator.estimate(kmap, np.asarray(kmap.kernel),
                                                           stats, rng)
        bad = [name for name, a in arrays[key].items() if not all_finite(a)]
        if bad:
            raise InvalidInputError(
                f"The {' and '.join(bad)} pattern(s) of layer '{key}' came out non-finite: "
                "its activations are too large for the statistics (float64 overflow). "
                "Rescale the model's inputs.")
        names[key] = node.op.name
        if stats is not None:
            counts[key] = {r: stats[r]["n"] for r in ("plus", "minus")}
    entries = layout(graph)
    patterns = Patterns(signal_estimator.name, arrays, n_samples, counts, dead, names,
                        {stable: key for stable, key, _ in entries}, fingerprints(entries))
    total = sum(dead.values())
    if total:
        worst = sorted(((k, v) for k, v in dead.items() if v), key=lambda kv: -kv[1])[:3]
        more = ", ..." if sum(1 for v in dead.values() if v) > 3 else ""
        warn(f"{total} neuron(s) got a zero pattern because they were never active (or their "
             "output did not vary) in the fitted data: "
             + ", ".join(f"{k}: {v}" for k, v in worst) + more)
    return patterns


def fit_patterns(graph, data=None, pattern_type="relu", batch_size=32, steps=None,
                 verbose=0, output_index=None, strategy=None, seed=0,
                 negative_patterns="used", precision="float32", checkpoint=None,
                 checkpoint_every=100):
    """`compute_patterns` on a prepared graph (see there)."""
    signal_estimator = estimator(pattern_type)
    if not signal_estimator.needs_fit:
        return estimate_all(graph, signal_estimator, seed=seed)
    if data is None:
        raise ValueError(f"pattern_type={pattern_type!r} is fitted: pass data.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    regimes = kernel_regimes(graph, signal_estimator, negative_patterns)
    statistics_pass = StatisticsPass(graph, regimes, strategy, precision)

    def fit(held=contextlib.nullcontext):
        n_samples = statistics_pass.run(data, batch_size, steps, verbose, checkpoint, held)
        statistics = {key: s.moments(mean_x=signal_estimator.needs_mean_x)
                      for key, s in statistics_pass.stats.items()}
        return estimate_all(graph, signal_estimator, statistics, n_samples, seed)

    if checkpoint is None:
        return fit()
    entries = layout(graph, statistics_pass.keys)
    settings = {"pattern_type": pattern_type, "precision": precision,
                "batch_size": int(batch_size), "output_index": output_index,
                "regimes": {stable: list(regimes[key]) for stable, key, _ in entries}}
    checkpoint = Checkpoint(checkpoint, checkpoint_every, settings, fingerprints(entries))
    # Ctrl-C or SIGTERM, in the pass or in the estimation after it: the counted batches
    # are written first
    with Interruptions(lambda: checkpoint.keep(statistics_pass)) as interruptions:
        patterns = fit(interruptions.held)
    checkpoint.remove()
    return patterns


def compute_patterns(model: keras.Model, data: Any = None, pattern_type: str = "relu",
                     batch_size: int = 32, steps: Optional[int] = None, verbose: int = 0,
                     output_index: Optional[int] = None, strategy: Any = None, seed: int = 0,
                     negative_patterns: str = "used", precision: str = "float32",
                     checkpoint: Optional[Union[str, os.PathLike]] = None,
                     checkpoint_every: int = 100) -> Patterns:
    """Fit the patterns of every kernel layer of `model` on `data`.

    Args:
        model: a Keras 3 model (BatchNormalization after a kernel layer is folded into it).
        data: numpy array(s), an (x, y) tuple, a tf.data.Dataset, a generator or a
            keras.utils.PyDataset (labels are ignored). Not needed for "filter" and
            "random". A batch holding NaN or inf is refused, naming it. A dataset of infinite
            cardinality (`.repeat()`) needs `steps`; a generator is read until it ends (or
            for `steps` batches): an endless generator without `steps` runs forever, with
            the progress bar counting its batches.
        pattern_type: the estimator: "relu" (S_a+-, default), "relu.eq8", "linear" (S_a),
            "filter" (S_w) or "random" (`estimators`).
        batch_size: batching of arrays and unbatched datasets.
        steps: at most this many batches.
        verbose: 1 shows a progress bar.
        output_index: which output of a model with several.
        strategy: a tf.distribute strategy (default: the current one).
        seed: seed of the "random" estimator.
        negative_patterns: for the two-component estimators, "used" (default) estimates
            a_minus only for the layers whose negative regime passes a signal (no rectifier
            follows); behind a rectifier a_minus is never used, and leaving it out saves two
            of the four kernel gradients per layer and batch. "all" estimates it everywhere.
        precision: "float32" (default) forms each batch's sums in float32 around the data's
            means and adds them up in float64; "float64" forms them in float64 (exact to
            float64 round-off, about 2.5 times slower on CPU). See `statistics`.
        checkpoint: path of a checkpoint file (`checkpoint`): every `checkpoint_every`
            batches the running statistics are written to it atomically; a fit started
            again with the same data, settings and checkpoint after a crash or Ctrl-C skips
            the batches already counted and returns the same patterns as an uninterrupted
            fit. Ctrl-C, SIGTERM and SIGHUP write it (every batch counted so far) before
            they stop the fit. The data must yield the same batches in the same order (no
            reshuffling). The file is removed when the fit completes.
        checkpoint_every: batches between two checkpoint writes.

    Returns:
        `Patterns`: layer key -> pattern arrays (float64), with counts and fingerprints.

    Raises:
        InvalidInputError: data that does not fit the model (shape, NaN or inf, none).
        NotAnalyzableModelError: a layer patterns cannot be fitted for.
        PatternFileError: a checkpoint of another model, other weights or settings.
    """
    return fit_patterns(prepare_graph(model, output_index), data, pattern_type, batch_size,
                        steps, verbose, output_index, strategy, seed, negative_patterns,
                        precision, checkpoint, checkpoint_every)
