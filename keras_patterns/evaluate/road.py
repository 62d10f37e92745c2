"""ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022).

    result = road(model, images, heatmaps)
    result.morf_curve, result.lerf_curve     # the mean score at each removed fraction

As `deletion` does, ROAD removes a fraction of the pixels in the explanation's order, most
relevant first (MoRF: the score should fall fast) and least relevant first (LeRF: it should
stay), and scores the class explained; unlike `deletion`, a removed pixel is not set to a
constant, whose shape would tell the model where the removed pixels are (the class
information leaking through the mask), but imputed from its neighbours by noisy linear
imputation (`imputation.linear_imputation`). The model is not retrained (the "remove and
retrain" the paper compares with); the paper's fractions are 10 %, 20 %, ..., 90 %.

A pixel's relevance is the sum of the attribution over its channels; for each fraction p
the first ``round(p * H * W)`` pixels of the order are removed. Copy 0 of a sample is the
unperturbed image, then one copy per order and fraction, each imputed as its chunk is
built (memory flat in the number of fractions), noise seeded per copy by
``np.random.default_rng([seed, i, copy])``.
"""

import dataclasses
from typing import Optional, Sequence, Union

import keras
import numpy as np

from ..inputs import check_batch_size
from .deletion import feature_ranks
from .features import features
from .imputation import linear_imputation
from .scoring import chunked_scores, explained_classes, score_function

PERCENTAGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclasses.dataclass
class RoadResult:
    """The outcome of `road`.

    Attributes:
        percentages: (P,) the fractions of the pixels removed.
        morf: (N, P) each sample's score with the most relevant pixels imputed.
        lerf: (N, P) the same with the least relevant pixels imputed.
        morf_curve: (P,) the mean of `morf` over samples (lower is better).
        lerf_curve: (P,) the mean of `lerf` (higher is better).
        morf_mean: the mean of `morf_curve` over the fractions.
        lerf_mean: the mean of `lerf_curve` over the fractions.
        original: (N,) the unperturbed score.
        classes: (N,) the output unit scored for each sample.
        forward_passes: the number of model calls made.
    """

    percentages: np.ndarray
    morf: np.ndarray
    lerf: np.ndarray
    morf_curve: np.ndarray
    lerf_curve: np.ndarray
    morf_mean: float
    lerf_mean: float
    original: np.ndarray
    classes: np.ndarray
    forward_passes: int


def road(model: keras.Model, x: np.ndarray, attributions: np.ndarray,
         percentages: Sequence[float] = PERCENTAGES, noise: float = 0.01,
         neuron_selection: Optional[Union[int, Sequence[int]]] = None,
         batch_size: int = 64, score: str = "probability", seed: Optional[int] = 0,
         use_scipy: bool = True) -> RoadResult:
    """ROAD: MoRF and LeRF curves with noisy linear imputation (Rong et al. 2022).

    Args:
        model: a Keras model with one image input (channels last) and one output.
        x: (N, H, W, C) or (N, H, W) images.
        attributions: the explanation, shaped like `x` (or (N, H, W)).
        percentages: the fractions of the pixels removed, each in [0, 1).
        noise: the standard deviation of the noise added to the imputed pixels, in input
            units (the paper's 0.01; 0 for none).
        neuron_selection: the class scored: None for the argmax of the unperturbed output,
            one int, or one int per sample.
        batch_size: perturbed copies per forward pass.
        score: "probability" or "logit" (see `scoring.score_function`).
        seed: seeds the noise; None draws it fresh.
        use_scipy: solve the imputation with scipy's sparse solver where it is installed
            (False: the numpy solver).

    Returns:
        RoadResult: `morf`, `lerf`, their curves and means, ...

    Raises:
        ValueError: bad shapes or parameters, naming the argument.
    """
    fractions = np.asarray(percentages, np.float64).ravel()
    if fractions.size == 0 or not np.all((fractions >= 0) & (fractions < 1)):
        raise ValueError("percentages must be fractions in [0, 1) (not every pixel can be "
                         f"imputed), got {percentages!r}.")
    if not float(noise) >= 0:
        raise ValueError(f"noise must be a non-negative standard deviation, got {noise!r}.")
    batch_size = check_batch_size(batch_size)
    f = features(x, "pixel")
    if f.image is None:
        raise ValueError(f"road() needs images (N, H, W[, C]), got shape {f.shape}.")
    h, w = f.image
    n, s, c = f.x.shape
    sums = f.sums(attributions)
    _, morf_rank = feature_ranks(sums, "most_relevant_first", None)
    _, lerf_rank = feature_ranks(sums, "least_relevant_first", None)
    counts = np.rint(fractions * s).astype(np.int64)
    p = len(fractions)
    entropy = int(np.random.SeedSequence().entropy % (2 ** 63)) if seed is None else int(seed)

    def build(i, k):
        out = np.empty((len(i),) + f.shape[1:], f.x.dtype)
        for j, (sample, copy) in enumerate(zip(i, k)):
            image = f.x[sample].reshape(h, w, c)
            if copy == 0:
                out[j] = image.reshape(f.shape[1:])
                continue
            rank = morf_rank if copy <= p else lerf_rank
            removed = (rank[sample] < counts[(copy - 1) % p]).reshape(h, w)
            rng = np.random.default_rng([entropy, int(sample), int(copy)])
            out[j] = linear_imputation(image, removed, float(noise), rng,
                                       use_scipy).reshape(f.shape[1:])
        return out

    classes = explained_classes(neuron_selection, n)
    forward = score_function(model, score, "road()")
    scores, passes = chunked_scores(forward, classes, 1 + 2 * p, batch_size, build)
    morf, lerf = scores[:, 1:1 + p], scores[:, 1 + p:]
    return RoadResult(
        percentages=fractions, morf=morf, lerf=lerf, morf_curve=morf.mean(0),
        lerf_curve=lerf.mean(0), morf_mean=float(morf.mean()), lerf_mean=float(lerf.mean()),
        original=scores[:, 0], classes=classes, forward_passes=passes)


__all__ = ["PERCENTAGES", "RoadResult", "road"]
