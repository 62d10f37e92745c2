"""Faithfulness correlation, μ-fidelity (Bhatt, Weller and Moura, "Evaluating and
Aggregating Feature-based Model Explanations", IJCAI 2020, Eq. 2):

    μF(f, g; x) = corr over S ⊂ features, |S| = m ( Σ_{j ∈ S} g_j , f(x) - f(x_{S ← x̄}) )

the Pearson correlation, over random subsets S of the features of a fixed size, between
the attribution summed over S and the drop of the explained score when the features of S
are set to the baseline x̄. An attribution that is exact for a linear model scores 1; one
unrelated to the model scores about 0.

Subset k = 1..n_subsets of sample i holds ``m = max(1, round(subset_fraction * F))`` of the
F features (see `features`), drawn without replacement by
``np.random.default_rng([seed, i, k]).choice(F, m, replace=False)``: each copy has its own
stream, so no subset is stored and the subsets do not depend on `batch_size`.
"""

import dataclasses
from typing import Optional, Sequence, Union

import keras
import numpy as np

from ..inputs import check_batch_size, positive_int
from .features import baseline_values, features
from .scoring import chunked_scores, explained_classes, score_function


@dataclasses.dataclass
class MuFidelityResult:
    """The outcome of `mu_fidelity`.

    Attributes:
        mu_fidelity: the mean of `per_sample`.
        per_sample: (N,) the correlation of each sample (0 where `constant`).
        subset_sums: (N, n_subsets) the attribution summed over each subset.
        drops: (N, n_subsets) ``f(x) - f(x with the subset set to the baseline)``.
        constant: (N,) where the subset sums or the drops do not vary, so that no
            correlation exists: such a sample counts as 0.
        subset_size: m, the features per subset.
        classes: (N,) the output unit scored for each sample.
        seed: the seed of the subsets (drawn when None was passed).
        forward_passes: the number of model calls made.
    """

    mu_fidelity: float
    per_sample: np.ndarray
    subset_sums: np.ndarray
    drops: np.ndarray
    constant: np.ndarray
    subset_size: int
    classes: np.ndarray
    seed: int
    forward_passes: int


def pearson(a: np.ndarray, b: np.ndarray) -> tuple:
    """Row-wise Pearson correlation of (N, K) arrays: (correlations, constant), a row in
    which `a` or `b` takes one value only getting 0 and ``constant=True``."""
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    corr = np.where(constant, 0.0, (a * b).sum(axis=1) / np.where(constant, 1.0, norm))
    return corr, constant


def mu_fidelity(model: keras.Model, x: np.ndarray, attributions: np.ndarray,
                subset_fraction: float = 0.2, n_subsets: int = 128,
                baseline: Union[None, str, float, np.ndarray] = None,
                granularity: str = "pixel", patch_size: Optional[int] = None,
                neuron_selection: Optional[Union[int, Sequence[int]]] = None,
                batch_size: int = 64, score: str = "probability",
                seed: Optional[int] = 0) -> MuFidelityResult:
    """μ-fidelity (Bhatt et al. 2020): correlation of subset attributions and output drops.

    Args:
        model: a Keras model with one input and one output.
        x: (N, H, W, C) or (N, H, W) images, (N, D) vectors, or (N, T) integer token ids
            (with ``granularity="token"``).
        attributions: the explanation, shaped like `x` (images: or (N, H, W); tokens: or
            (N, T, D)).
        subset_fraction: the fraction of the features in each subset, in (0, 1).
        n_subsets: the number of random subsets per sample (at least 2).
        baseline: what the features of a subset become: None for 0 (tokens: the baseline
            token 0), "zero", "mean", "blur", a number (for tokens the baseline token id),
            or an array shaped like one sample or like `x` (see `features.baseline_values`).
        granularity: "pixel" (all channels of a pixel together), "patch" or "token".
        patch_size: the patch side for ``granularity="patch"``.
        neuron_selection: the class scored: None for the argmax of the unperturbed output,
            one int, or one int per sample.
        batch_size: perturbed copies per forward pass.
        score: "probability" or "logit" (see `scoring.score_function`).
        seed: seeds the subsets (see the module docstring); None draws one.

    Returns:
        MuFidelityResult: `mu_fidelity`, `per_sample`, `subset_sums`, `drops`, ...

    Raises:
        ValueError: bad shapes or parameters, naming the argument.
    """
    if not 0.0 < float(subset_fraction) < 1.0:
        raise ValueError(f"subset_fraction must lie in (0, 1), got {subset_fraction!r}.")
    n_subsets = positive_int(n_subsets, "n_subsets")
    if n_subsets < 2:
        raise ValueError(f"n_subsets must be at least 2 for a correlation, got {n_subsets}.")
    batch_size = check_batch_size(batch_size)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 63))
    seed = int(seed)
    f = features(x, granularity, patch_size)
    relevance = f.sums(attributions)
    base = baseline_values(f, 0 if baseline is None else baseline)
    n, n_features = relevance.shape
    m = max(1, int(round(float(subset_fraction) * n_features)))
    sums = np.zeros((n, n_subsets + 1))

    def build(i, k):
        removed = np.zeros((len(i), n_features), bool)
        for j, (sample, copy) in enumerate(zip(i, k)):
            if copy > 0:
                subset = np.random.default_rng([seed, int(sample), int(copy)]).choice(
                    n_features, m, replace=False)
                removed[j, subset] = True
                sums[sample, copy] = relevance[sample, subset].sum()
        return f.copies(i, removed, base)

    classes = explained_classes(neuron_selection, n)
    forward = score_function(model, score, "mu_fidelity()")
    scores, passes = chunked_scores(forward, classes, n_subsets + 1, batch_size, build)
    drops = scores[:, :1] - scores[:, 1:]
    corr, constant = pearson(sums[:, 1:], drops)
    return MuFidelityResult(
        mu_fidelity=float(corr.mean()), per_sample=corr, subset_sums=sums[:, 1:], drops=drops,
        constant=constant, subset_size=m, classes=classes, seed=seed, forward_passes=passes)


__all__ = ["MuFidelityResult", "mu_fidelity", "pearson"]
