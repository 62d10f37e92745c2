"""Image degradation: how fast the classifier's score falls as the patches an explanation
ranks first are destroyed (paper section 5, after Samek et al. 2016).

    result = degradation(model, images, heatmaps, patch_size=9, steps=100)
    result.curve        # mean score after n = 0..steps patches are replaced
    result.aopc         # area over the perturbation curve

The image is cut into non-overlapping ``patch_size x patch_size`` patches on a grid that
starts at the top-left pixel. Where the height or width is not a multiple of
``patch_size`` the last row or column of the grid holds smaller patches (the remaining
``H mod patch_size`` rows or ``W mod patch_size`` columns): every pixel belongs to exactly
one patch and can be perturbed. A patch's relevance is the sum of the attribution over its
pixels and channels, so a smaller border patch sums fewer pixels (as the paper's sum does).

Every perturbed copy (sample i with its first n patches replaced, n = 0..steps) is built
in numpy and the copies go through the model in chunks of ``batch_size`` images, one
compiled forward pass per chunk: ``ceil(N * (steps + 1) / batch_size)`` passes in all
(`scoring.chunked_scores`, shared with `deletion`, `insertion`, `mu_fidelity` and `road`).

This is Samek's pixel flipping / region perturbation, most relevant first (MoRF) or least
relevant first (LeRF): one patch more per step. `deletion` is the same removal counted in
fractions of the features (pixels, patches or tokens), with Petsiuk et al.'s AUC beside the
AOPC; its module docstring sets the metrics side by side.
"""

import dataclasses
from typing import Optional, Sequence, Union

import keras
import numpy as np

from ..inputs import check_batch_size, positive_int
from ..visualize.batches import check_batch
from .features import features
from .perturbation import (  # noqa: F401 - part of this module's interface
    ORDERS,
    REPLACE,
    gaussian_blur,
    patch_grid,
    patch_ids,
    patch_order,
    patch_sums,
    replacement_images,
)
from .scoring import (  # noqa: F401 - part of this module's interface
    SCORES,
    chunked_scores,
    ends_with_softmax,
    explained_classes,
    ranks,
    score_function,
)


@dataclasses.dataclass
class DegradationResult:
    """The outcome of `degradation`.

    Attributes:
        curve: (steps + 1,) the mean over samples of `curves`; entry 0 is the unperturbed
            score, entry n the score after the n first patches of the order are replaced.
        curves: (N, steps + 1) the score of each sample after n = 0..steps replacements.
        aopc: the area over the perturbation curve, ``mean_n (curve[0] - curve[n])`` over
            n = 0..steps (Samek et al. 2016, eq. 12: ``1 / (L + 1) * sum_{k=0}^{L}
            <f(x^(0)) - f(x^(k))>`` with L = steps; the k = 0 term is zero).
        aopc_per_sample: (N,) the same area for each sample (`aopc` is their mean).
        order: the patch order used ("most_relevant_first", "least_relevant_first",
            "random").
        classes: (N,) the output unit scored for each sample.
        patch_order: (N, n_patches) for each sample the patch ids in the order they are
            replaced (a patch id is ``row * grid[1] + column`` in the patch grid).
        grid: (rows, columns) of the patch grid.
        replace: the replacement used.
        score: "probability" or "logit".
        forward_passes: the number of model calls made (one per chunk).
    """

    curve: np.ndarray
    curves: np.ndarray
    aopc: float
    aopc_per_sample: np.ndarray
    order: str
    classes: np.ndarray
    patch_order: np.ndarray
    grid: tuple
    replace: str
    score: str
    forward_passes: int


def aopc(curves: np.ndarray) -> Union[float, np.ndarray]:
    """Area over the perturbation curve (Samek et al. 2016).

    ``AOPC = 1 / (L + 1) * sum_{k=0}^{L} (f(x^(0)) - f(x^(k)))``, i.e. the mean over the
    L + 1 points k = 0..L of the drop from the unperturbed score (the k = 0 term is zero).

    Args:
        curves: one curve (L + 1,) or curves (N, L + 1), entry 0 unperturbed.

    Returns:
        A float for one curve, else (N,) one area per curve.
    """
    c = np.asarray(curves, np.float64)
    area = np.mean(c[..., :1] - c, axis=-1)
    return float(area) if c.ndim == 1 else area


def _images(x, name):
    return check_batch(x, name)


def degradation(
    model: keras.Model,
    x: np.ndarray,
    attributions: Optional[np.ndarray],
    patch_size: int = 9,
    steps: int = 100,
    replace: str = "patch_mean",
    neuron_selection: Optional[Union[int, Sequence[int]]] = None,
    batch_size: int = 64,
    order: str = "most_relevant_first",
    score: str = "probability",
    seed: Optional[int] = 0,
) -> DegradationResult:
    """Image degradation (perturbation) curve of an explanation.

    Patches are ranked by the sum of the attribution over their pixels and channels; in
    step n = 1..steps the first n patches of the order are replaced (cumulatively) and the
    model's score of the class selected on the unperturbed image is recorded. Once every
    patch is replaced (steps larger than the number of patches) the curve stays constant.

    Args:
        model: a Keras model with one image input (channels last) and one output.
        x: (N, H, W, C) images, or (N, H, W) for a model that takes 2-d inputs (treated as
            one channel).
        attributions: the explanation, shaped like `x` (or (N, H, W)); may be None for
            ``order="random"``.
        patch_size: the side of the square patches (see the module docstring for a border
            that is not a multiple of it).
        steps: the number of replacement steps (the curve has steps + 1 points).
        replace: "patch_mean" (each patch by its own mean per channel, the paper's),
            "image_mean", "zero", "blur" or "uniform" (see `replacement_images`).
        neuron_selection: the class scored: None for the argmax of the unperturbed output
            of each sample, or one int, or one int per sample.
        batch_size: images per forward pass (the copies of several samples share a chunk).
        order: "most_relevant_first" (decreasing patch sum), "least_relevant_first" or
            "random" (a seeded random order: the baseline).
        score: "probability": the softmax probability of the class (the model's output if
            last operation is a softmax, see `ends_with_softmax`, else the softmax of its
            output); "logit": the output before the softmax (a final softmax layer is
            removed with `keras_patterns.model_wo_softmax`; a final `keras.ops.softmax`
            call or a softmax inside a nested model is refused; other outputs are taken as
            they are).
        seed: seeds the "random" order and the "uniform" noise (independent streams);
            None draws fresh ones.

    Returns:
        DegradationResult: `curve`, `curves`, `aopc`, `order`, ...

    Raises:
        ValueError: bad shapes or parameters.
    """
    if replace not in REPLACE:
        raise ValueError(f"replace must be one of {REPLACE}, got {replace!r}.")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
    patch_size = positive_int(patch_size, "patch_size")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
    batch_size = check_batch_size(batch_size)
    steps = int(steps)

    x = _images(x, "x")
    x4 = x if x.ndim == 4 else x[..., None]
    n, h, w, _ = x4.shape
    if n == 0:
        raise ValueError("x holds no images.")

    order_rng = np.random.default_rng(None if seed is None else [int(seed), 0])
    noise_rng = np.random.default_rng(None if seed is None else [int(seed), 1])
    f = features(x, "patch", patch_size)
    gh, gw = patch_grid(h, w, patch_size)
    if attributions is None:
        if order != "random":
            raise ValueError(f"order={order!r} needs attributions (None only for 'random').")
        sums = np.zeros((n, f.n_features))
    else:
        sums = f.sums(_images(attributions, "attributions"))
    ordered = patch_order(sums, order, order_rng)
    # rank[i, p]: the 0-based position of patch p in sample i's order; copy k of a sample
    # has the patches of rank < k replaced
    rank = ranks(sums, ordered)
    replaced = replacement_images(x4, replace, patch_size, noise_rng).reshape(
        f.x.shape).astype(f.x.dtype)

    def build(i, k):
        return f.copies(i, rank[i] < k[:, None], replaced)

    classes = explained_classes(neuron_selection, n)
    forward = score_function(model, score, "degradation()")
    curves, passes = chunked_scores(forward, classes, steps + 1, batch_size, build)

    per_aopc = aopc(curves)
    return DegradationResult(
        curve=curves.mean(axis=0), curves=curves, aopc=float(np.mean(per_aopc)),
        aopc_per_sample=per_aopc, order=order, classes=classes, patch_order=ordered,
        grid=(gh, gw), replace=replace, score=score, forward_passes=passes)


__all__ = ["DegradationResult", "degradation", "aopc", "ends_with_softmax",
           "replacement_images", "patch_sums", "patch_order", "patch_grid", "patch_ids",
           "gaussian_blur"]
