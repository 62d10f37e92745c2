"""Deletion and insertion curves (Petsiuk et al., "RISE: Randomized Input Sampling for
Explanation of Black-box Models", BMVC 2018) and the AOPC of most-relevant-first removal
(Samek et al., "Evaluating the visualization of what a deep neural network has learned",
IEEE TNNLS 28(11), 2017; online 2016, the paper `degradation` cites as 2016).

    result = deletion(model, images, heatmaps, steps=20)
    result.curve, result.auc, result.aopc

The vocabulary of the perturbation metrics of this package, one idea in each:

- *MoRF* (most relevant first) and *LeRF* (least relevant first) are the `order` in which
  features are perturbed; "random" is the baseline order.
- `degradation` is Samek's *pixel flipping / region perturbation* as the PatternNet paper
  runs it: one patch more per step, replaced by its own mean (or zero, blur, noise); its
  score is the AOPC.
- `deletion` is the same MoRF removal with the steps measured as the *fraction* of the
  features removed (0 to 1 in `steps` equal steps), a removed feature set to a baseline;
  its score is the area under the curve (lower is better), and its `aopc` is Samek's AOPC
  of that curve (higher is better). ``order="least_relevant_first"`` gives the LeRF curve.
- `insertion` starts from the baseline and puts the features of the input back, most
  relevant first; its score is the area under the curve (higher is better).
- `road` removes as `deletion` does but fills the removed pixels by noisy linear
  imputation (Rong et al. 2022), and `mu_fidelity` draws random subsets instead of an order.

Step k = 0..steps removes (inserts) the first ``n_k = floor(k * F / steps)`` features of
the order, F the number of features (pixels, patches or tokens: see `features`); the curve
is the score of the explained class at each step, and the AUC is the trapezoid rule over
the fractions ``n_k / F`` (from 0 to 1).

Baselines: a removed pixel becomes 0 by default (deletion) and insertion starts from the
image blurred by a Gaussian of standard deviation `blur_sigma` (5 pixels), as Petsiuk et
al. do; a removed token becomes the baseline token id (0 unless given: pass the [PAD] or
[MASK] id of the vocabulary), for a model whose integer input feeds an Embedding.
"""

import dataclasses
from typing import Optional, Sequence, Union

import keras
import numpy as np

from ..inputs import check_batch_size, positive_int
from .degradation import aopc
from .features import baseline_values, features
from .perturbation import ORDERS, patch_order
from .scoring import chunked_scores, explained_classes, ranks, score_function


@dataclasses.dataclass
class CurveResult:
    """The outcome of `deletion` or `insertion`.

    Attributes:
        curve: (steps + 1,) the mean over samples of `curves`.
        curves: (N, steps + 1) the score of each sample after step k = 0..steps.
        fractions: (steps + 1,) the fraction of the features removed (inserted) at step k.
        auc: the area under `curve` over `fractions` (trapezoid rule on [0, 1]).
        auc_per_sample: (N,) the same area for each sample.
        aopc: for deletion, Samek's AOPC of the curves (``mean_k (f(x) - f(x_k))``, the mean
            of `aopc_per_sample`); None for insertion.
        aopc_per_sample: (N,) for deletion, else None.
        kind: "deletion" or "insertion".
        order: "most_relevant_first", "least_relevant_first" or "random".
        granularity: "pixel", "patch" or "token".
        classes: (N,) the output unit scored for each sample.
        feature_order: (N, F) each sample's feature ids in the order perturbed.
        forward_passes: the number of model calls made.
    """

    curve: np.ndarray
    curves: np.ndarray
    fractions: np.ndarray
    auc: float
    auc_per_sample: np.ndarray
    aopc: Optional[float]
    aopc_per_sample: Optional[np.ndarray]
    kind: str
    order: str
    granularity: str
    classes: np.ndarray
    feature_order: np.ndarray
    forward_passes: int


def trapezoid(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The trapezoid rule of `curves` (..., K) over `fractions` (K,)."""
    c = np.asarray(curves, np.float64)
    dx = np.diff(np.asarray(fractions, np.float64))
    return np.sum(dx * (c[..., 1:] + c[..., :-1]) / 2.0, axis=-1)


def feature_ranks(sums: np.ndarray, order: str, seed: Optional[int]) -> tuple:
    """(order (N, F), rank (N, F)): the features in perturbation order (`patch_order`) and
    each feature's position in it."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
    ordered = patch_order(sums, order, np.random.default_rng(seed))
    return ordered, ranks(sums, ordered)


def _curves(kind, model, x, attributions, steps, baseline, granularity, patch_size,
            neuron_selection, batch_size, order, score, blur_sigma, seed):
    steps = positive_int(steps, "steps")
    batch_size = check_batch_size(batch_size)
    f = features(x, granularity, patch_size)
    if attributions is None:
        if order != "random":
            raise ValueError(f"order={order!r} needs attributions (None only for 'random').")
        sums = np.zeros((f.x.shape[0], f.n_features))
    else:
        sums = f.sums(attributions)
    if baseline is None:
        baseline = 0 if granularity == "token" else (
            "blur" if kind == "insertion" and f.image is not None else "zero")
    base = baseline_values(f, baseline, blur_sigma)
    ordered, rank = feature_ranks(sums, order, seed)
    counts = (np.arange(steps + 1) * f.n_features) // steps
    classes = explained_classes(neuron_selection, f.x.shape[0])

    def build(i, k):
        chosen = rank[i] < counts[k][:, None]
        if kind == "deletion":
            return f.copies(i, chosen, base)
        # insertion: the chosen features come from the input, the rest from the baseline
        return f.copies(i, ~chosen, base)

    forward = score_function(model, score, f"{kind}()")
    if kind == "insertion" and (classes < 0).any():
        # the explained class is the one of the unperturbed input, not of the baseline
        first, _ = chunked_scores(forward, classes, 1, batch_size,
                                  lambda i, k: f.x[i].reshape((len(i),) + f.shape[1:]))
        extra = int(np.ceil(len(classes) / batch_size))
    else:
        extra = 0
    curves, passes = chunked_scores(forward, classes, steps + 1, batch_size, build)
    fractions = counts / f.n_features
    area = trapezoid(curves, fractions)
    drop = aopc(curves) if kind == "deletion" else None
    return CurveResult(
        curve=curves.mean(axis=0), curves=curves, fractions=fractions,
        auc=float(area.mean()), auc_per_sample=area,
        aopc=None if drop is None else float(np.mean(drop)), aopc_per_sample=drop,
        kind=kind, order=order, granularity=granularity, classes=classes,
        feature_order=ordered, forward_passes=passes + extra)




def deletion(model: keras.Model, x: np.ndarray, attributions: Optional[np.ndarray],
             steps: int = 20, baseline: Union[None, str, float, np.ndarray] = None,
             granularity: str = "pixel", patch_size: Optional[int] = None,
             neuron_selection: Optional[Union[int, Sequence[int]]] = None,
             batch_size: int = 64, order: str = "most_relevant_first",
             score: str = "probability", blur_sigma: float = 5.0,
             seed: Optional[int] = 0) -> CurveResult:
    """Deletion curve (Petsiuk et al. 2018) and AOPC (Samek et al. 2017).

    Step k = 0..steps sets the first ``floor(k * F / steps)`` features of the order to the
    baseline (default 0) and scores the class explained; `auc` is the area under the mean
    curve over the fraction removed (lower is better for ``most_relevant_first``) and
    `aopc` the mean over the steps of ``f(x) - f(x_k)`` (higher is better).

    Args:
        model: a Keras model with one input and one output.
        x: (N, H, W, C) or (N, H, W) images, (N, D) vectors, or (N, T) integer token ids
            (with ``granularity="token"``).
        attributions: the explanation, shaped like `x` (images: or (N, H, W); tokens: or
            (N, T, D)); None only for ``order="random"``.
        steps: the number of steps; the curve has steps + 1 points.
        baseline: what a removed feature becomes: None for the default (see the module
            docstring), "zero", "mean", "blur", a number (for tokens the baseline token id),
            or an array shaped like one sample or like `x`.
        granularity: "pixel" (all channels of a pixel together), "patch" or "token".
        patch_size: the patch side for ``granularity="patch"``.
        neuron_selection: the class scored: None for the argmax of the unperturbed output,
            one int, or one int per sample.
        batch_size: perturbed copies per forward pass.
        order: "most_relevant_first" (decreasing summed attribution, ties in feature
            order), "least_relevant_first" or "random" (seeded).
        score: "probability" or "logit" (see `scoring.score_function`).
        blur_sigma: the standard deviation of the "blur" baseline, in pixels.
        seed: seeds the "random" order.

    Returns:
        CurveResult: `curve`, `curves`, `fractions`, `auc`, ...

    Raises:
        ValueError: bad shapes or parameters, naming the argument.
    """
    return _curves("deletion", model, x, attributions, steps, baseline, granularity,
                   patch_size, neuron_selection, batch_size, order, score, blur_sigma, seed)


def insertion(model: keras.Model, x: np.ndarray, attributions: Optional[np.ndarray],
              steps: int = 20, baseline: Union[None, str, float, np.ndarray] = None,
              granularity: str = "pixel", patch_size: Optional[int] = None,
              neuron_selection: Optional[Union[int, Sequence[int]]] = None,
              batch_size: int = 64, order: str = "most_relevant_first",
              score: str = "probability", blur_sigma: float = 5.0,
              seed: Optional[int] = 0) -> CurveResult:
    """Insertion curve (Petsiuk et al. 2018).

    Step k = 0..steps starts from the baseline (default: the image blurred, tokens all
    the baseline token) and puts back the first ``floor(k * F / steps)`` features of the
    order from `x`; `auc` is the area under the mean curve over the fraction inserted
    (higher is better). The class explained is chosen on `x`, not on the baseline.

    Args:
        model: as for `deletion`.
        x: as for `deletion`.
        attributions: as for `deletion`.
        steps: as for `deletion`.
        baseline: where insertion starts (None: the image blurred with `blur_sigma`,
            vectors 0, tokens the baseline token 0); else as for `deletion`.
        granularity: as for `deletion`.
        patch_size: as for `deletion`.
        neuron_selection: as for `deletion` (chosen on `x`).
        batch_size: as for `deletion`.
        order: the order features are inserted in, as for `deletion`.
        score: as for `deletion`.
        blur_sigma: as for `deletion`.
        seed: as for `deletion`.

    Returns:
        CurveResult: the insertion curve and its area (`aopc` is None).

    Raises:
        ValueError: as for `deletion`.
    """
    return _curves("insertion", model, x, attributions, steps, baseline, granularity,
                   patch_size, neuron_selection, batch_size, order, score, blur_sigma, seed)


__all__ = ["CurveResult", "deletion", "insertion", "trapezoid", "feature_ranks"]
