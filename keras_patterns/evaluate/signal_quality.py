"""Signal quality rho(S): how much of a neuron's output its residual x - S(x) still
predicts linearly (paper section 4.1, Eq. (1), measured with section 5's protocol).

    quality = signal_quality(model, images)   # a SignalQuality
    quality["relu"]["dense_1"]                # rho of S_a+- in layer dense_1 (neuron mean)
    print(quality.table())

Definitions. For neuron j of a kernel layer, x is its input as the neuron sees it (the
receptive-field patch of a convolution, zeros of the padding included, one observation per
sample and output position; the whole input of a Dense layer, one observation per position
for inputs of rank > 2), y = w^T x its output without bias and m = [y + b > 0] its
pre-activation regime. A signal estimator gives S(x), the residual is d = x - S(x), and

    rho(S) = 1 - max_v corr(y, v^T d).

Estimators (the patterns of `keras_patterns.patterns.estimators`, normalised so that
w^T a = 1): "filter" S_w(x) = a y with a = w / w^T w; "random": a random direction a;
"linear" S_a: a = cov[x, y] / var[y]; "relu" (S_a+-) and "relu.eq8" (two-component):
S(x) = (m a_+ + (1 - m) a_-) y, a_- estimated for every layer. The fitted patterns are
estimated from split 1's moments (below) by the package's own estimator classes: the
patterns `compute_patterns(..., negative_patterns="all")` fits on split 1 (there from
float32 batch sums, here from float64 ones); "filter" and "random" are `compute_patterns`'s
(the same random directions for the same seed).

Note: over all observations with y = w^T x, S_a satisfies cov[d, y] = 0 by construction
(Eq. (2)), so rho(S_a) tends to 1 in every layer as the data grow; below 1 it measures the
estimation error of split 1 that the regression of split 2 finds again on split 3. The
two-component residual keeps the part of y explained by the regime itself
(cov[d, y] = pi (1 - pi) (E_+[d] - E_-[d]) (E_+[y] - E_-[y]) for within-regime patterns).

Protocol (paper section 5). The data are cut into three disjoint splits (`splits`, thirds
by default): the fitted estimators are estimated on split 1, the regression vector v on
split 2 (least squares of y on d, intercept included: v = Sigma_dd^-1 cov[d, y]), and rho
is measured on split 3, which neither saw: rho = 1 - corr_3(y, v^T d). One streaming pass
over the data gathers the same moments for each split (below); memory does not grow with
the number of samples and a generator is read once.

How `data` is split: see `evaluate.splits`.

Where each step lives. One streaming pass over the data (`patch_sums.LayerSums`: float64
sums per split and layer, around a shift fixed from the first batch's mean patch; why
these sums are not those of `compute_patterns`'s statistics pass is said there) gives each
split's moments (`layer_moments.LayerMoments`: Sigma_x, D x D, shared by all neurons of the
layer, and with a two-component estimator the moments of m y per neuron). The residual's
covariance is a low-rank update of Sigma_x, Sigma_dd = Sigma_x + U C U^T, of rank 2 for
linear-type estimators and 4 for two-component ones (`residuals.residual_terms`). On split
2, v = (Sigma_dd + eps I)^-1 cov[d, y] for all neurons of a layer from one Cholesky
factorization of Sigma_x + eps I, the Woodbury identity per neuron and iterative
refinement, with a tiny ridge eps = 1e-10 tr(Sigma_x) / D (`regression.RIDGE`; the ridge,
its effect and the direct solve of the neurons where this is not enough are described in
`regression`). On split 3, from split 3's moments and the same patterns,

    corr_3 = v^T cov_3[d, y] / sqrt(v^T Sigma3_dd v var_3[y]),    rho = 1 - corr_3,

evaluated without the terms that cancel when v has a large part along w
(`residuals.correlations`).

Nothing is clipped: a v that anti-correlates on split 3 (it overfitted split 2) gives
rho > 1. A neuron whose y or v^T d does not vary on split 3 gets rho NaN and is left out of
the layer mean, with a warning that counts them.

Large layers. A layer with D > `max_dim` (4096 by default; Sigma_x alone is then 128 MiB per
split in float64, and every batch costs a D x D product) is skipped with a warning and
listed in `SignalQuality.skipped`; raise `max_dim` where memory allows: memory
3 (D^2 + 2 D F) float64 per layer, time O(N_obs D (D + 2 F)) for the pass and D^3 / 3 for
the factorization.

Cost. One pass: the forward pass, each evaluated layer's patches (`tf.image.extract_patches`,
an exact copy) and per batch the float64 products X^T X and X^T [m, m y].

Supported: Dense (any input rank), Conv1D and Conv2D (any padding, strides and dilation,
groups=1, either data format), a BatchNormalization folded into the kernel before it
(`compute_patterns` does the same). Transposed, depthwise, separable, grouped and 3-D
convolutions raise NotAnalyzableModelError naming the layer.
"""

from typing import Any, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from .._warn import warn
from ..compiled import compiled
from ..errors import InvalidInputError, NotAnalyzableModelError
from ..inputs import check_batch_size, positive_int
from ..kernels import ConvMap, DenseMap
from ..patterns.estimators import ESTIMATORS, estimator
from ..patterns.fit import estimate_all, prepare_graph
from ..patterns.identity import layout, pattern_keys
from ..patterns.streaming import kernel_calls
from .patch_sums import LayerSums, kernel_dim
from .quality import SignalQuality
from .regression import regression_vectors
from .residuals import correlations, residual_terms
from .splits import check_splits, split_batches

DEFAULT_ESTIMATORS = ("random", "filter", "linear", "relu")
# the largest input dimension D evaluated by default
MAX_DIM = 4096


def _unsupported(key, kmap):
    """Why signal_quality cannot evaluate this kernel map, or None."""
    base = kmap.unfolded
    layer = base.layer
    if type(base) is DenseMap:
        return None
    if (type(base) is ConvMap and len(base.kernel.shape) in (3, 4)
            and getattr(layer, "groups", 1) == 1):
        return None
    return (f"layer '{key}' ({type(layer).__name__}) is not a kind signal_quality "
            "evaluates: Dense, Conv1D and Conv2D with groups=1")


def _select(graph, keys, layers, max_dim):
    """{key: kernel map} to evaluate, in model order, and {key: why} of those skipped."""
    entries = [(key, kmap) for _, key, kmap in layout(graph, keys)]
    names = {}
    for node, key in keys.items():
        names.setdefault(node.op.name, []).append(key)
        names.setdefault(key, []).append(key)
    if layers is None:
        wanted = [key for key, _ in entries]
    else:
        if isinstance(layers, str):
            layers = [layers]
        wanted = []
        for name in layers:
            if name not in names:
                raise ValueError(
                    f"signal_quality: the model has no kernel layer named {name!r}; its kernel "
                    f"layers: {', '.join(key for key, _ in entries)}.")
            wanted += names[name]
    chosen, skipped = {}, {}
    for key, kmap in entries:
        if key not in wanted:
            continue
        why = _unsupported(key, kmap)
        if why is not None:
            hint = "" if layers is not None else "; pass layers= to evaluate the others"
            raise NotAnalyzableModelError(f"signal_quality: {why}{hint}.")
        d = kernel_dim(kmap)
        if d > max_dim:
            skipped[key] = (f"input dimension D = {d} > max_dim = {max_dim} (a D x D "
                            f"covariance of {8 * d * d / 2**20:.0f} MiB per split)")
        else:
            chosen[key] = kmap
    if skipped:
        warn("signal_quality skips " + "; ".join(f"'{k}': {v}" for k, v in skipped.items())
             + ". Raise max_dim to evaluate them.")
    return chosen, skipped


def _run(graph, sums, keys, source, known, verbose):
    """The pass: every batch's sums into its split's slots. Returns the samples and the
    batches per split."""

    def update(xs, split):
        shifts = {}
        for node, x, _, z in kernel_calls(graph, xs):
            key = keys[node]
            if key in sums:
                shifts[key] = sums[key].add(split, x, z, shifts.get(key))

    step = compiled(update)
    bar = keras.utils.Progbar(known, verbose=verbose, unit_name="batch") if verbose else None
    samples, batches = [0, 0, 0], [0, 0, 0]
    for k, xs in source:
        step(xs, tf.constant(k, tf.int32))
        samples[k] += int(xs[0].shape[0])
        batches[k] += 1
        if bar is not None:
            bar.update(sum(batches))
    return samples, batches


def _patterns(graph, name, chosen, moments, seed):
    """{key: (a or a_-, delta or None)} as (D, F) arrays: the estimator fitted on split 1
    (the unfitted ones as `compute_patterns` gives them, the same random directions)."""
    est = estimator(name)
    if not est.needs_fit:
        fitted = estimate_all(graph, est, seed=seed)
    else:
        fitted, dead, rng = {}, {}, np.random.default_rng(seed)
        for key, kmap in chosen.items():
            w = np.asarray(kmap.kernel, np.float64)
            stats = moments[key][0].estimator_statistics(w.shape)
            fitted[key], dead[key] = est.estimate(kmap, w, stats, rng)
        if sum(dead.values()):
            warn(f"signal_quality: {name}: {sum(dead.values())} neuron(s) got a zero pattern "
                 "(never active, or an output that did not vary, on split 1): "
                 + ", ".join(f"{k}: {v}" for k, v in dead.items() if v))
    out = {}
    for key, kmap in chosen.items():
        d, f = kernel_dim(kmap), int(kmap.kernel.shape[-1])
        arrays = {k: np.asarray(v, np.float64).reshape(d, f) for k, v in fitted[key].items()}
        if est.two_component:
            out[key] = (arrays["a_minus"], arrays["a_plus"] - arrays["a_minus"])
        else:
            out[key] = (arrays["a"], None)
    return out


def signal_quality(model: keras.Model, data: Any,
                   estimators: Sequence[str] = DEFAULT_ESTIMATORS,
                   layers: Optional[Sequence[str]] = None, batch_size: int = 32,
                   splits: Sequence[float] = (1 / 3, 1 / 3, 1 / 3), per_neuron: bool = False,
                   verbose: int = 0, seed: int = 0, steps: Optional[int] = None,
                   output_index: Optional[int] = None,
                   max_dim: int = MAX_DIM) -> SignalQuality:
    """The signal quality rho(S) of Eq. (1) for every estimator and kernel layer.

    The estimators are fitted on split 1 of `data`, the regression vector v on split 2 and
    rho is measured on split 3 (see the module docstring for the split and where each
    formula and numerical choice is made). One streaming pass over the data.

    Args:
        model: a Keras 3 model (BatchNormalization after a kernel layer is folded into it).
        data: what `keras_patterns.compute_patterns` accepts: numpy arrays, an (x, y) tuple,
            a list of arrays (several inputs), a tf.data.Dataset, a generator or a
            keras.utils.PyDataset; labels are ignored. Arrays are split by sample index
            (contiguous parts), streams by batch index (interleaved).
        estimators: names among "random", "filter", "linear", "relu", "relu.eq8" (one name
            or several; any estimator in `patterns.estimators.ESTIMATORS`).
        layers: names of the kernel layers to evaluate (default: all of them).
        batch_size: batching of arrays and unbatched datasets.
        splits: the shares (p1, p2, p3) of the three splits (normalised to sum to 1).
        per_neuron: also return each neuron's rho (`SignalQuality.per_neuron`).
        verbose: 1 shows a progress bar over the batches.
        seed: seed of the "random" estimator (the directions of `compute_patterns(model,
            pattern_type="random", seed=seed)`).
        steps: read at most this many batches of a stream (needed for an endless one).
        output_index: which output of a model with several.
        max_dim: layers whose input dimension D (patch size) exceeds it are skipped with a
            warning (`SignalQuality.skipped`).

    Returns:
        A `SignalQuality`: `result[estimator][layer]` is rho averaged over the layer's
        neurons; `result.per_neuron[estimator][layer]` the (F,) array with per_neuron=True.

    Raises:
        ValueError: an unknown estimator or layer name, bad `splits`, `batch_size`, `steps`.
        InvalidInputError: too little data for three splits, data that does not fit the
            model (shape, NaN or inf).
        NotAnalyzableModelError: a layer of a kind it does not evaluate (transposed,
            depthwise, separable, grouped or 3-D convolutions) or without a pattern rule.
    """
    names = (estimators,) if isinstance(estimators, str) else tuple(estimators)
    if not names:
        raise ValueError("signal_quality: pass at least one estimator.")
    for name in names:
        if name not in ESTIMATORS:  # the registry: estimators added to it count too
            raise ValueError(f"signal_quality: unknown estimator {name!r}; choose from "
                             f"{', '.join(map(repr, ESTIMATORS))}.")
    names = tuple(dict.fromkeys(names))
    shares = check_splits(splits)
    batch_size = check_batch_size(batch_size)
    steps = positive_int(steps, "steps", optional=True)
    max_dim = positive_int(max_dim, "max_dim")
    if data is None:
        raise InvalidInputError("signal_quality needs data: numpy arrays, a tf.data.Dataset, "
                                "a generator or a keras.utils.PyDataset.")

    graph = prepare_graph(model, output_index)
    keys = pattern_keys(graph)
    chosen, skipped = _select(graph, keys, layers, max_dim)
    regimes = any(estimator(n).two_component for n in names)
    sums = {key: LayerSums(kmap, regimes) for key, kmap in chosen.items()}
    specs = [t.spec for t in graph.inputs]
    source, known, where = split_batches(data, specs, batch_size, shares, steps)
    samples, batches = _run(graph, sums, keys, source, known, verbose)
    if min(batches) == 0:
        raise InvalidInputError(
            f"signal_quality: {where} gave {sum(batches)} batch(es), split {batches} "
            "between the three splits (patterns, regression, measurement); each needs at "
            "least one: pass more data or a smaller batch_size.")
    moments = {key: [s.moments(k) for k in range(3)] for key, s in sums.items()}
    observations = {key: tuple(int(m.count) for m in ms) for key, ms in moments.items()}
    few = [key for key, obs in observations.items() if min(obs) < 2]
    if few:
        raise InvalidInputError(
            "signal_quality: too little data: " + ", ".join(
                f"layer '{k}' has {observations[k]} observations per split" for k in few)
            + "; each split needs at least 2.")
    loose = [f"'{k}' ({observations[k][1]} for D = {sums[k].dim})"
             for k in chosen if observations[k][1] <= sums[k].dim]
    if loose:
        warn("signal_quality: split 2 holds no more observations than the regression vector "
             "has entries in " + ", ".join(loose) + ": v overfits split 2 and rho on split 3 "
             "is unreliable. Pass more data.")

    mean, neurons, undefined = {}, {}, {}
    for name in names:
        mean[name], neurons[name] = {}, {}
        for key, (a, delta) in _patterns(graph, name, chosen, moments, seed).items():
            fit, test = moments[key][1], moments[key][2]
            v = regression_vectors(fit.sigma, residual_terms(fit, a, delta))
            rho = 1.0 - correlations(v, test, a, delta)
            neurons[name][key] = rho
            ok = np.isfinite(rho)
            mean[name][key] = float(rho[ok].mean()) if ok.any() else float("nan")
            if not ok.all():
                undefined[(name, key)] = int((~ok).sum())
    if undefined:
        warn("signal_quality: rho is undefined (y or v^T d constant on split 3) for "
             + ", ".join(f"{n} neuron(s) of '{k}' with {e}" for (e, k), n in undefined.items())
             + "; the layer means leave them out.")
    return SignalQuality(mean, neurons if per_neuron else None, observations, tuple(samples),
                         skipped)
