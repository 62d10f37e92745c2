"""Scoring perturbed copies: the one forward function of the perturbation metrics
(`degradation`, `deletion`, `insertion`, `mu_fidelity`, `road`) and the loop that runs
every perturbed copy through it in chunks of ``batch_size``.

Each sample i has ``per_sample`` copies k = 0..per_sample - 1; copy 0 is the unperturbed
input (its output picks the explained class where none is given). The copies of all samples
are numbered ``i * per_sample + k`` and built chunk by chunk, so memory holds one chunk of
copies whatever the number of steps or subsets; one compiled forward function serves every
chunk: ``ceil(N * per_sample / batch_size)`` passes in all. The next chunk is built in a
second thread while the model runs the current one (numpy and TensorFlow both release the
interpreter lock), so building the copies costs little beyond the forward passes; at most
two chunks exist at a time.
"""

import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np

from ..compiled import compiled
from ..roles import softmax_output
from ..utils import model_wo_softmax

SCORES = ("probability", "logit")

# model -> {score: compiled function}: a metric called again on the same model (another
# method, another metric) reuses the traced function instead of tracing the model again
_FORWARD = weakref.WeakKeyDictionary()


def ends_with_softmax(model: keras.Model) -> bool:
    """Whether every output of `model` comes out of a softmax: a `Softmax` layer, an
    `Activation("softmax")`, a layer with ``activation="softmax"`` or a `keras.ops.softmax`
    call (nested models are looked into). A model whose graph cannot be read (subclassed)
    gives False."""
    return softmax_output(model) is not None


def score_function(model: keras.Model, score: str, caller: str = "degradation()"):
    """A compiled function inputs -> (batch, units) scores, one per model and score (kept
    while the model lives).

    Args:
        model: a Keras model with one output.
        score: "probability" (the model's output where it ends with a softmax, else the
            softmax of its output) or "logit" (the output before a final softmax layer,
            removed with `keras_patterns.model_wo_softmax`; other outputs as they are).
        caller: the function named in error messages.

    Returns:
        The compiled function.

    Raises:
        ValueError: an unknown `score`, or a softmax that cannot be removed.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
    try:
        cached = _FORWARD.setdefault(model, {})
    except TypeError:  # an object that takes no weak reference: not cached
        cached = {}
    if score not in cached:
        cached[score] = _score_function(model, score, caller)
    return cached[score]


def _score_function(model, score, caller):
    softmax_out = ends_with_softmax(model)
    if score == "logit" and softmax_output(model) == "op":
        raise ValueError("score='logit': the model's softmax is a keras.ops.softmax call, "
                         "which cannot be removed; pass the model without it (its logits).")
    if score == "logit":
        net, apply_softmax = (model_wo_softmax(model) if softmax_out else model), False
        if softmax_out and ends_with_softmax(net):
            raise ValueError("score='logit': the model's final softmax could not be removed "
                             "(it is inside a nested model); pass a model that outputs the "
                             "logits.")
    else:
        net, apply_softmax = model, not softmax_out
        units = _output_units(model)
        if apply_softmax and units == 1:
            raise ValueError(
                f"{caller}: the model has one output unit and no softmax, so score="
                "'probability' (a softmax over one unit) is 1 whatever the input; pass "
                "score='logit' to score the output itself.")
    # the cache keys on `model` weakly: this function must not hold the model itself
    # (a model made here without its softmax is held, nothing else does)
    held, ref = (None, weakref.ref(model)) if net is model else (net, None)

    def run(x):
        y = (held if held is not None else ref())(x, training=False)
        if isinstance(y, (list, tuple, dict)):
            raise ValueError(f"{caller} (and every perturbation metric) explains a model "
                             f"with one output; this one has {len(y)}.")
        y = keras.ops.reshape(y, (keras.ops.shape(y)[0], -1))
        return keras.ops.softmax(y, axis=-1) if apply_softmax else y

    return compiled(run)


def _output_units(model):
    """The number of output units per sample, or None where unknown."""
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list):
        return None
    dims = shape[1:]
    return None if any(d is None for d in dims) else int(np.prod(dims))


def explained_classes(neuron_selection: Optional[Union[int, Sequence[int]]],
                      n: int) -> np.ndarray:
    """(n,) the output unit scored per sample; -1 where the argmax of the unperturbed output
    is to be taken (``neuron_selection=None``)."""
    classes = np.full(n, -1, np.int64)
    if neuron_selection is not None:
        sel = np.asarray(neuron_selection)
        if sel.ndim == 0:
            sel = np.full(n, int(sel))
        if sel.shape != (n,) or not np.issubdtype(sel.dtype, np.integer) or (sel < 0).any():
            raise ValueError(f"neuron_selection must be one non-negative int or {n} of them, "
                             f"got {neuron_selection!r}.")
        classes[:] = sel
    return classes


def chunked_scores(forward, classes: np.ndarray, per_sample: int, batch_size: int,
                   build: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple:
    """Score every copy (i, k), k = 0..per_sample - 1, chunk by chunk.

    Args:
        forward: the compiled function of `score_function`.
        classes: (N,) the unit scored per sample, -1 for the argmax of copy 0; filled in
            place.
        per_sample: copies per sample, copy 0 unperturbed.
        batch_size: copies per forward pass.
        build: ``build(i, k)`` -> the model inputs of the copies (i[j], k[j]) of a chunk.

    Returns:
        (scores (N, per_sample) float64, the number of forward passes).
    """
    n = len(classes)
    total = n * per_sample
    scores = np.empty((n, per_sample), np.float64)
    starts = range(0, total, batch_size)

    def chunk(start):
        flat = np.arange(start, min(start + batch_size, total))
        i, k = flat // per_sample, flat % per_sample
        return i, k, build(i, k)

    passes = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(chunk, starts[0]) if total else None
        for c in range(len(starts)):
            i, k, copies = pending.result()
            if c + 1 < len(starts):  # build the next chunk while this one runs
                pending = pool.submit(chunk, starts[c + 1])
            out = np.asarray(forward(copies))
            passes += 1
            first = (k == 0) & (classes[i] < 0)  # a sample's unperturbed copy comes first
            classes[i[first]] = np.argmax(out[first], axis=1)
            if (classes[i] >= out.shape[1]).any() or (classes[i] < 0).any():
                raise ValueError(f"neuron_selection must lie in [0, {out.shape[1]}) for "
                                 "this model.")
            scores[i, k] = out[np.arange(len(i)), classes[i]]
    return scores, passes


def ranks(sums: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(N, n_features) the 0-based position of each feature in its sample's `order`."""
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(sums.shape[1])[None, :], axis=1)
    return position
