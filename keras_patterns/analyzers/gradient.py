"""The gradient family: gradient, input x gradient, SmoothGrad, VarGrad, SquareGrad,
Integrated Gradients.

All start the reverse pass with 1 at the selected output (paper appendix A.1). A token
input is explained in embedding space (`ReverseAnalyzer`): the gradient at its embedding
output, input times gradient there, and so on, summed over the embedding dimension.
"""

import numpy as np
import tensorflow as tf

from ..errors import InvalidInputError
from ..graph import EMBEDDING
from ..inputs import positive_int
from ..reverse import EmbeddingCut, EmbeddingTimesInputReverse
from .averaged import AveragedGradient, NoisyGradient
from .catalog import register_analyzer
from .reverse import ReverseAnalyzer

_POSTPROCESS = {None: lambda g: g, "abs": tf.abs, "square": tf.square}


def postprocessing(postprocess):
    """The function of a `postprocess=` option: None, "abs" or "square"."""
    if postprocess not in _POSTPROCESS:
        raise ValueError(f"postprocess={postprocess!r} is not one of None, 'abs', 'square'.")
    return _POSTPROCESS[postprocess]


@register_analyzer("gradient")
class Gradient(ReverseAnalyzer):
    """Gradient of the selected output with respect to the input (saliency map).

    Args:
        postprocess: None, "abs" or "square", applied to the gradient.
    """

    explains_any_layer = True
    returns = "signal"
    description = "gradient of the selected output w.r.t. the input (saliency)"
    citation = ("Simonyan, Vedaldi and Zisserman, Deep inside convolutional networks: "
                "visualising image classification models and saliency maps, ICLR workshop "
                "2014")

    def __init__(self, model, postprocess=None, **kwargs):
        self._post = postprocessing(postprocess)
        self.postprocess = postprocess
        super().__init__(model, **kwargs)

    def _postprocess(self, xs, explanations):
        return [self._post(e) for e in explanations]


@register_analyzer("input_t_gradient")
class InputTimesGradient(ReverseAnalyzer):
    """Input times gradient; for token inputs, embedding vector times gradient summed over
    the embedding dimension."""

    explains_any_layer = True
    description = "input times gradient"
    citation = ("Shrikumar, Greenside, Shcherbina and Kundaje, Not just a black box: learning "
                "important features through propagating activation differences, arXiv "
                "1605.01713, 2016")

    def reverse_layer_for(self, node):
        if node.role == EMBEDDING:
            return EmbeddingTimesInputReverse(node)
        return super().reverse_layer_for(node)

    def _postprocess(self, xs, explanations):
        return [e * x if x.dtype.is_floating else e for x, e in zip(xs, explanations)]


@register_analyzer("smoothgrad")
class SmoothGrad(NoisyGradient):
    """Mean gradient over `augment_by_n` noisy copies x + N(0, noise_scale^2) of the input.

    Args:
        augment_by_n: the number of noisy copies of each sample.
        noise_scale: standard deviation of the Gaussian noise (in input units; for a token
            input, relative to the range of its embedding's values).
        postprocess: None, "abs" or "square", applied to each gradient before averaging.
        seed: seed of the noise. With a seed, the same sample gets the same noise (and the
            same explanation) in every call, whatever the batch it is in or its position
            there; None: a fresh draw each call.
    """

    returns = "signal"
    description = "mean gradient over noisy copies of the input"
    citation = ("Smilkov, Thorat, Kim, Viegas and Wattenberg, SmoothGrad: removing noise by "
                "adding noise, ICML workshop on visualization for deep learning 2017")

    def __init__(self, model, augment_by_n=64, noise_scale=1.0, postprocess=None, seed=None,
                 **kwargs):
        self._post = postprocessing(postprocess)
        self.postprocess = postprocess
        super().__init__(model, augment_by_n=augment_by_n, noise_scale=noise_scale,
                         seed=seed, **kwargs)

    def _per_copy(self, gradient):
        return self._post(gradient)


@register_analyzer("squaregrad")
class SquareGrad(NoisyGradient):
    """Mean squared gradient over `augment_by_n` noisy copies of the input (the parameters
    `augment_by_n`, `noise_scale` and `seed` of `NoisyGradient`, as for SmoothGrad)."""

    # non-negative magnitudes, not in input units: drawn as a heat map
    returns = "attribution"
    description = "mean squared gradient over noisy copies of the input"
    example = {"augment_by_n": 8, "noise_scale": 0.1, "seed": 0}
    citation = ("Hooker, Erhan, Kindermans and Kim, A benchmark for interpretability methods "
                "in deep neural networks, NeurIPS 2019")

    def _per_copy(self, gradient):
        return tf.square(gradient)


@register_analyzer("vargrad")
class VarGrad(NoisyGradient):
    """Variance of the gradient over `augment_by_n` noisy copies of the input.

    The variance (1/n, about the copies' mean) is accumulated over groups of copies from
    each group's sum and sum of squared deviations from its own mean (Chan, Golub and
    LeVeque's pairwise update, in float64), which does not cancel as E[g^2] - E[g]^2 does.
    The parameters `augment_by_n`, `noise_scale` and `seed` are those of `NoisyGradient`,
    as for SmoothGrad.
    """

    returns = "attribution"  # as SquareGrad
    description = "variance of the gradient over noisy copies of the input"
    example = {"augment_by_n": 8, "noise_scale": 0.1, "seed": 0}
    citation = ("Adebayo, Gilmer, Goodfellow and Kim, Local explanation methods for deep "
                "neural networks lack sensitivity to parameter randomization, ICLR workshop "
                "2018")

    def _statistics(self, gradients, weight):
        count = tf.reduce_sum(weight)
        total = tf.reduce_sum(gradients * weight, axis=0)
        deviations = tf.reduce_sum(weight * tf.square(gradients - total / count), axis=0)
        return [total, deviations]

    def _merge(self, total, part, n_total, n_part):
        (s_a, m_a), (s_b, m_b) = [[tf.cast(v, tf.float64) for v in pair]
                                  for pair in (total, part)]
        delta = s_b / n_part - s_a / n_total
        n = n_total + n_part
        return [s_a + s_b, m_a + m_b + tf.square(delta) * (n_total * n_part / n)]

    def _average(self, total, n):
        return total[1] / n


def _fits(shape, t):
    """Whether an array of `shape` broadcasts to one sample of the graph tensor `t` (a
    leading batch axis of 1 allowed)."""
    sample = tuple(t.shape[1:])
    if len(shape) == len(sample) + 1 and shape[0] == 1:
        shape = shape[1:]  # one sample with its batch axis
    return len(shape) <= len(sample) and all(
        d == 1 or s is None or d == s for d, s in zip(shape[::-1], sample[::-1]))


def _per_input(value, n, name, several=True):
    """`value` as one entry per model input: a list or tuple with one per input (where the
    model has `several` inputs), else the same value for each."""
    if isinstance(value, (list, tuple)) and (n > 1 or not several):
        if len(value) != n:
            raise InvalidInputError(
                f"{name} has {len(value)} entries for the model's {n} input(s).")
        return list(value)
    return [value] * n


@register_analyzer("integrated_gradients")
class IntegratedGradients(AveragedGradient):
    """(x - x_ref) times the mean gradient at `steps` points from x_ref towards x.

    The points are x_ref + (k/steps) (x - x_ref), k = 0..steps-1: the left Riemann sum of
    the path integral, as in iNNvestigate, so its numbers are reproduced. A token input's
    path runs in embedding space, from the reference embedding e_ref to its embedding
    output e (as Captum's LayerIntegratedGradients on the embedding layer): a token gets
    the sum over the embedding dimension of (e - e_ref) times the mean gradient.

    Args:
        reference_inputs: x_ref: a scalar or an array broadcastable to one sample (default
            0); a list with one per input for a model with several. Not used for token
            inputs (see `reference_token`): their entry must be 0 or None.
        steps: the number of points on the path.
        reference_token: the reference of token inputs: None (default) for the zero
            vector, or a token id (e.g. the padding token) or an array of ids
            broadcastable to one sample, whose embedding is e_ref (for every token input);
            for a model with several inputs also a list with one per input (None for the
            others).

    Raises:
        InvalidInputError: a reference of the wrong shape (naming the input) or with NaN,
            or a reference token that is no id of the embedding's vocabulary.
    """

    description = "integrated gradients along the straight path from a reference input"
    citation = ("Sundararajan, Taly and Yan, Axiomatic attribution for deep networks, ICML "
                "2017")

    def __init__(self, model, reference_inputs=0, steps=64, reference_token=None, **kwargs):
        steps = positive_int(steps, "steps")
        self.steps = steps
        self.n_copies = steps
        self.reference_inputs = reference_inputs
        self.reference_token = reference_token
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        super()._check_model(graph)
        n = len(graph.inputs)
        refs = _per_input(self.reference_inputs, n, "reference_inputs", several=False)
        vocabularies = {}
        for lookup in EmbeddingCut(graph).lookups:
            i = graph.inputs.index(lookup.inputs[0])
            vocabularies[i] = min(vocabularies.get(i, lookup.op.input_dim), lookup.op.input_dim)
        tokens = self._reference_tokens(n, vocabularies)
        for i, (ref, ids, t) in enumerate(zip(refs, tokens, graph.inputs)):
            if i in vocabularies:
                self._check_token_reference(ref, ids, t, vocabularies[i])
                continue
            if ids is not None:
                raise InvalidInputError(
                    f"reference_token for input '{t.name}' is given, but that input feeds no "
                    "Embedding.")
            if not t.is_floating:  # held as it is (a mask): no path, no reference
                if ref is not None and not (np.ndim(ref) == 0 and ref == 0):
                    raise InvalidInputError(
                        f"reference_inputs for input '{t.name}' is given, but that integer "
                        "input feeds no Embedding: it is held as it is, without a path.")
                continue
            if ref is None:
                raise InvalidInputError(f"reference_inputs for input '{t.name}' is None.")
            if not _fits(np.shape(ref), t):
                raise InvalidInputError(
                    f"reference_inputs for input '{t.name}' has shape {np.shape(ref)}; it must "
                    f"be a scalar or broadcast to one sample of shape {tuple(t.shape[1:])}.")
            if not np.all(np.isfinite(ref)):
                raise InvalidInputError(
                    f"reference_inputs for input '{t.name}' holds NaN or inf.")

    @staticmethod
    def _check_token_reference(ref, ids, t, vocabulary):
        if ref is not None and not (np.ndim(ref) == 0 and ref == 0):
            raise InvalidInputError(
                f"reference_inputs for the token input '{t.name}' is given; the reference of "
                "a token input is set with reference_token= (token ids whose embedding is "
                "the reference; default: the zero vector).")
        if ids is None:
            return
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" or not _fits(ids.shape, t):
            raise InvalidInputError(
                f"reference_token for input '{t.name}' must be a token id or an array of ids "
                f"broadcastable to one sample of shape {tuple(t.shape[1:])}; got "
                f"{ids.dtype} values of shape {ids.shape}.")
        if ids.size and (ids.min() < 0 or ids.max() >= vocabulary):
            raise InvalidInputError(
                f"reference_token for input '{t.name}' holds a token id outside the "
                f"vocabulary 0..{vocabulary - 1}.")

    def _prepare(self, graph):
        super()._prepare(graph)
        n = len(graph.inputs)
        refs = _per_input(self.reference_inputs, n, "reference_inputs", several=False)
        self._references = [None if r is None else np.asarray(r, np.float32) for r in refs]
        self._reference_ids = self._reference_tokens(n, self._vocabularies())

    def _reference_tokens(self, n, token_inputs):
        """`reference_token` as one entry per model input (one id or array of ids: the
        same for every token input in `token_inputs`)."""
        if isinstance(self.reference_token, (list, tuple)) and n > 1:
            return _per_input(self.reference_token, n, "reference_token")
        return [self.reference_token if i in token_inputs else None for i in range(n)]

    def reference(self, i):
        """x_ref at the reverse model's input `i`; for a token input's embedding output,
        e_ref (the zero vector, or the embedding of the reference tokens)."""
        lookup = self.cut.lookup_of(i)
        if lookup is None:
            return self._references[self.cut.kept[i]]
        ids = self._reference_ids[self.graph.inputs.index(lookup.inputs[0])]
        if ids is None:
            return 0.0
        return lookup.forward([tf.constant(np.asarray(ids), lookup.inputs[0].dtype)])[0]

    def _copies(self, x, k, i, keys):
        ref = tf.cast(self.reference(i), x.dtype)
        alpha = tf.cast(k, x.dtype) / self.steps
        alpha = tf.reshape(alpha, tf.concat([tf.shape(k), tf.ones_like(tf.shape(x))], 0))
        return ref + alpha * (x - ref)[None]

    def _combine(self, xs, mean_gradients):
        return [(x - tf.cast(self.reference(i), x.dtype)) * g if x.dtype.is_floating else g
                for i, (x, g) in enumerate(zip(xs, mean_gradients))]
