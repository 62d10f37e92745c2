"""Linear surrogates of the output over segments of the input: KernelSHAP and LIME.

Each sample is cut into M segments (`segments`); a coalition z ∈ {0, 1}^M keeps the
segments with z_j = 1 and sets the others to the fill value: the masked copy of
`perturbation.MaskedCopies` with the mask z spread over each segment's positions and
channels. The explained output f is evaluated on the copies of a set of coalitions (drawn
in numpy from the seed, the same for every sample with the same M, so for any batch size)
and a weighted linear fit of f(z) on z gives one coefficient φ_j per segment; every
position and channel of segment j gets φ_j. The fit is solved per sample in numpy
(float64 least squares): M is small, the evaluations are what cost.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

from ..errors import InvalidInputError
from ..inputs import positive_int
from .catalog import register_analyzer
from .perturbation import MaskedCopies, over_channels
from .segments import Segments


def _finite(value, name, low=None):
    """`value` as a float if it is a finite number (above `low` where given), else a
    ValueError naming the parameter."""
    if not (isinstance(value, numbers.Real) and np.isfinite(value)) or (
            low is not None and not value > low):
        bound = "" if low is None else f" > {low}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}.")
    return float(value)


def weighted_least_squares(a, b, weights, ridge=0.0):
    """argmin_β sum_s w_s (a_s·β − b_s)² + ridge |β|² (the smallest β where several fit).

    Args:
        a: the design matrix (S, K).
        b: the targets (S,).
        weights: the weights w_s >= 0 (S,).
        ridge: the penalty on |β|².

    Returns:
        β (K,).
    """
    root = np.sqrt(weights)[:, None]
    a = np.concatenate([root * a, math.sqrt(ridge) * np.eye(a.shape[1])])
    b = np.concatenate([root[:, 0] * b, np.zeros(a.shape[1])])
    return np.linalg.lstsq(a, b, rcond=None)[0]


class SegmentSurrogate(MaskedCopies):
    """A linear fit of the output on coalitions of segments (see the module).

    A subclass draws the coalitions and their weights for M segments (`_coalitions`) and
    fits the coefficients of one sample (`_fit`).
    """

    _concatenate = True

    def __init__(self, model, segments="grid", grid_size=8, slic_options=None,
                 n_samples=1000, fill=0.0, seed=None, **kwargs):
        self._segments = Segments(segments, grid_size, slic_options)
        self.segments = segments
        self.grid_size = grid_size
        self.slic_options = slic_options
        self.n_samples = positive_int(n_samples, "n_samples")
        self.fill = _finite(fill, "fill")
        if seed is not None and not (isinstance(seed, numbers.Integral) and seed >= 0):
            raise ValueError(f"seed must be None or an int >= 0, got {seed!r}.")
        self.seed = seed
        # where the next chunk starts among the samples of the current `analyze` call
        self._start = None
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        super()._check_model(graph)
        self._segments.check(graph.inputs[0].shape, self.name)

    def analyze(self, X, neuron_selection=None, batch_size=None, *, strategy=None):
        """As `Analyzer.analyze`; with one segment map per sample, X has as many samples.

        Args:
            X: the input, as `Analyzer.analyze` takes it.
            neuron_selection: as `Analyzer.analyze`.
            batch_size: as `Analyzer.analyze`.
            strategy: as `Analyzer.analyze`.

        Returns:
            The explanation, shaped like X.
        """
        if self._start is not None:  # a dataset's batches, within the outer call
            return super().analyze(X, neuron_selection, batch_size, strategy=strategy)
        self._start = 0
        try:
            out = super().analyze(X, neuron_selection, batch_size, strategy=strategy)
            maps = self._segments.per_sample
            if maps is not None and self._start != maps:
                raise InvalidInputError(f"segments holds {maps} maps, one per sample, but "
                                        f"analyze got {self._start} samples.")
            return out
        finally:
            self._start = None

    def _explain(self, x, index, base, state, strategy):
        """The samples with the same number of segments explained together."""
        ids, counts = self._segments.maps(x.numpy(), self._start or 0)
        self._start = (self._start or 0) + len(ids)
        out = np.zeros(x.shape, np.float32)
        for m in np.unique(counts):
            rows = np.flatnonzero(counts == m)
            part = [tf.gather(t, rows) for t in (x, index, base)]
            out[rows] = super()._explain(*part, tf.constant(ids[rows]), strategy)
        return out

    def _layout(self, x, state):
        m = int(tf.reduce_max(state)) + 1
        z, weights = self._coalitions(m, np.random.default_rng(self.seed))
        return [z.astype(np.float32), weights]

    def _coalitions(self, m, rng):
        """The coalitions (S, m) of 0 and 1 to evaluate and their weights (S,)."""
        raise NotImplementedError

    def _masks(self, layout, x, state):
        return tf.gather(layout[0], state, axis=1)  # (group, batch, *spatial)

    def _collect(self, scores, masks, base):
        return [tf.transpose(scores)]

    def _fit(self, z, weights, scores, full):
        """The coefficients (m,) of one sample from its scores on the coalitions and the
        score `full` of the unmodified input."""
        raise NotImplementedError

    def _from_scores(self, x, totals, base, state, layout):
        z, weights = np.asarray(layout[0], np.float64), np.asarray(layout[1], np.float64)
        scores = np.asarray(totals[0], np.float64)
        full = np.asarray(base, np.float64)
        phi = np.stack([self._fit(z, weights, s, f) for s, f in zip(scores, full)])
        ids = np.asarray(state)
        spread = np.take_along_axis(phi, ids.reshape(len(ids), -1), axis=1)
        return over_channels(spread.reshape(ids.shape).astype(np.float32), x)


def shapley_kernel(m, size):
    """The Shapley kernel π(z) = (m − 1) / (C(m, |z|) |z| (m − |z|)) of coalitions of
    `size` (an array of sizes between 1 and m − 1) among m segments."""
    combinations = np.asarray([float(math.comb(m, s)) for s in range(m + 1)])[size]
    size = np.asarray(size, np.float64)
    return (m - 1) / (combinations * size * (m - size))


@register_analyzer("kernel_shap")
class KernelSHAP(SegmentSurrogate):
    """Shapley values of the segments, the fill value as the absent one, by the Shapley
    kernel's weighted least squares (Lundberg and Lee, section 4.1).

    φ minimises sum_z π(z) (f(z) − f(∅) − z·φ)² over the coalitions z with 0 < |z| < M,
    π(z) = (M − 1) / (C(M, |z|) |z| (M − |z|)), under sum_j φ_j = f(x) − f(∅) (the empty
    and full coalitions, whose weight is infinite: efficiency), solved by eliminating the
    last φ. With `n_samples` >= 2^M − 2 every coalition is evaluated once and φ are the
    exact Shapley values of the game v(S) = f(x with the segments outside S at `fill`);
    else `n_samples` coalitions are drawn: a size s with probability proportional to
    the kernel's total weight at s, (M − 1) / (s (M − s)), then s segments uniformly, each
    weighted 1. f(∅) is evaluated once more, f(x) comes from the reference pass.

    Args:
        segments: "grid", "slic" or an integer array of segment ids, one map (*spatial)
            for all samples or one per sample (N, *spatial) (`analyzers.segments`).
        grid_size: with "grid", the cells along each spatial axis (an int for all).
        slic_options: with "slic", keyword arguments of `skimage.segmentation.slic`.
        n_samples: the coalitions evaluated (per sample) when not all of them are.
        fill: the value of the absent segments' positions.
        seed: seed of the drawn coalitions: the same seed gives the same explanation, in
            every call and for any batch size; None: fresh coalitions for each chunk.
    """

    description = "Shapley values of segments by the Shapley kernel's weighted least squares"
    citation = ("Lundberg and Lee, A unified approach to interpreting model predictions, "
                "NeurIPS 2017")
    example = {"grid_size": 4, "n_samples": 128, "seed": 0}

    def __init__(self, model, segments="grid", grid_size=8, slic_options=None,
                 n_samples=2048, fill=0.0, seed=None, **kwargs):
        super().__init__(model, segments=segments, grid_size=grid_size,
                         slic_options=slic_options, n_samples=n_samples, fill=fill,
                         seed=seed, **kwargs)

    def _coalitions(self, m, rng):
        if m == 1:
            z = np.zeros((0, 1))
        elif self.n_samples >= 2**m - 2:  # every coalition once
            codes = np.arange(1, 2**m - 1)
            z = (codes[:, None] >> np.arange(m)) & 1
        else:
            if self.n_samples < m:
                raise InvalidInputError(
                    f"'{self.name}' fits {m - 1} free values for {m} segments, so it needs "
                    f"n_samples >= {m} coalitions (or fewer segments); got n_samples="
                    f"{self.n_samples}.")
            sizes = np.arange(1, m)
            total = (m - 1) / (sizes * (m - sizes))
            size = rng.choice(sizes, size=self.n_samples, p=total / total.sum())
            ranks = np.argsort(np.argsort(rng.random((self.n_samples, m)), axis=1), axis=1)
            z = (ranks < size[:, None]).astype(np.int64)
        weights = np.ones(len(z))
        if m > 1 and self.n_samples >= 2**m - 2:
            weights = shapley_kernel(m, z.sum(axis=1))
        # the first row: the empty coalition, f(∅)
        return np.concatenate([np.zeros((1, m)), z]), np.concatenate([[0.0], weights])

    def _fit(self, z, weights, scores, full):
        empty, z, weights, scores = scores[0], z[1:], weights[1:], scores[1:]
        total = full - empty
        if z.shape[1] == 1:
            return np.asarray([total])
        last = z[:, -1:]
        a = z[:, :-1] - last
        b = scores - empty - last[:, 0] * total
        phi = weighted_least_squares(a, b, weights)
        return np.append(phi, total - phi.sum())


@register_analyzer("lime")
class LIME(SegmentSurrogate):
    """The coefficients of a weighted ridge regression of the output on random coalitions
    of segments (Ribeiro, Singh and Guestrin, section 3.3).

    The coalitions: the full one (the unmodified input, as the reference implementation
    for images does), then `n_samples` − 1 drawn uniformly from {0, 1}^M. Coalition z has
    weight exp(−d(z)² / kernel_width²), d the cosine distance between z and the full
    coalition, 1 − sqrt(|z| / M) (1 for the empty one). The fit: f(z) ≈ β_0 + z·β by ridge
    regression with intercept (alpha |β|², β_0 not penalised, as scikit-learn's Ridge
    with sample weights); the attribution of segment j is β_j. The kernel is the paper's;
    the reference implementation weighs by its square root, exp(−d² / (2 kernel_width²)),
    which is this method with kernel_width √2 times larger.

    Args:
        segments: "grid", "slic" or an integer array of segment ids, one map (*spatial)
            for all samples or one per sample (N, *spatial) (`analyzers.segments`).
        grid_size: with "grid", the cells along each spatial axis (an int for all).
        slic_options: with "slic", keyword arguments of `skimage.segmentation.slic`.
        n_samples: the coalitions evaluated per sample, the full one included.
        kernel_width: the width of the exponential kernel on the cosine distance.
        alpha: the ridge penalty (0: least squares).
        fill: the value of the absent segments' positions.
        seed: seed of the coalitions: the same seed gives the same explanation, in every
            call and for any batch size; None: fresh coalitions for each chunk.
    """

    description = "coefficients of a weighted ridge fit of the output on random segments"
    citation = ("Ribeiro, Singh and Guestrin, \"Why should I trust you?\": explaining the "
                "predictions of any classifier, KDD 2016")
    example = {"grid_size": 4, "n_samples": 128, "seed": 0}

    def __init__(self, model, segments="grid", grid_size=8, slic_options=None,
                 n_samples=1000, kernel_width=0.25, alpha=1.0, fill=0.0, seed=None,
                 **kwargs):
        self.kernel_width = _finite(kernel_width, "kernel_width", low=0)
        self.alpha = _finite(alpha, "alpha")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}.")
        super().__init__(model, segments=segments, grid_size=grid_size,
                         slic_options=slic_options, n_samples=n_samples, fill=fill,
                         seed=seed, **kwargs)

    def _coalitions(self, m, rng):
        if self.alpha == 0 and self.n_samples <= m:
            raise InvalidInputError(
                f"'{self.name}' with alpha=0 fits {m + 1} values for {m} segments, so it "
                f"needs n_samples > {m} coalitions (or alpha > 0, or fewer segments); got "
                f"n_samples={self.n_samples}.")
        z = rng.integers(0, 2, size=(self.n_samples, m))
        z[0] = 1
        distance = 1.0 - np.sqrt(z.sum(axis=1) / m)
        return z, np.exp(-(distance**2) / self.kernel_width**2)

    def _fit(self, z, weights, scores, full):
        mean_z = weights @ z / weights.sum()
        mean_f = weights @ scores / weights.sum()
        return weighted_least_squares(z - mean_z, scores - mean_f, weights, self.alpha)
