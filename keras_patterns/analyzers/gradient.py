"""The gradient family: gradient, input x gradient, SmoothGrad, Integrated Gradients.

All start the reverse pass with 1 at the selected output (paper appendix A.1).
"""

import numpy as np
import tensorflow as tf

from .. import replicas
from ..compiled import compiled
from ..errors import InvalidInputError, NotAnalyzableModelError
from ..graph import EMBEDDING
from ..inputs import positive_int
from ..noise import normal_copies, sample_keys
from ..reverse import EmbeddingTimesInputReverse
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
    """Input times gradient; for token inputs, embedding vector times gradient summed."""

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
        return [e * tf.cast(x, e.dtype) if t.is_floating else e
                for t, x, e in zip(self.graph.inputs, xs, explanations)]


class _AveragedGradient(ReverseAnalyzer):
    """Mean of gradients over `n_copies` modified copies of each input.

    The copies of a chunk of samples are processed in groups, so that one reverse pass
    never sees more than about `batch_size` samples: memory stays bounded for any number
    of copies.
    """

    n_copies = 1
    explains_any_layer = True
    # the compiled functions, built on first use
    _group_function = None
    _index_function = None

    def _check_model(self, graph):
        ints = [t.name for t in graph.inputs if not t.is_floating]
        if ints:
            raise NotAnalyzableModelError(
                f"'{self.name}' modifies the input values, which is undefined for the "
                f"integer input(s) {', '.join(ints)}."
            )

    def _reverse_mode(self):
        # The neuron is chosen once, on the unmodified input; the copies use its index.
        return "all" if self.neuron_selection_mode == "all" else "index"

    def _forward_index(self, xs):
        out = self.model(xs if len(xs) > 1 else xs[0], training=False)
        y = tf.nest.flatten(out)[self.output_index or 0]
        flat = tf.reshape(y, (tf.shape(y)[0], -1))
        return tf.argmax(flat, axis=1, output_type=tf.int32)

    def _copies(self, x, k, i, keys):
        """Copies number `k` (a vector) of input `i`, shaped (len(k), batch, ...); `keys`
        identify the samples (see `noise`)."""
        raise NotImplementedError

    def _keys(self, xs):
        """Per-sample keys of the copies' randomness (see `noise`); none by default."""
        return np.zeros(len(xs[0]), np.int64)

    def _per_copy(self, gradient):
        return gradient

    def _combine(self, xs, mean_gradients):
        return mean_gradients

    def _group_sum(self, xs, index, first, group, keys):
        """Sum of the (post-processed) gradients of copies first..first+group-1."""
        k = first + tf.range(group)
        weight = tf.cast(k < self.n_copies, tf.float32)
        batch = tf.shape(xs[0])[0]
        stacked = []
        for i, x in enumerate(xs):
            c = self._copies(x, k, i, keys)
            stacked.append(tf.reshape(c, tf.concat([[group * batch], tf.shape(x)[1:]], 0)))
        inputs = stacked + ([tf.tile(index, [group])] if self._reverse_mode() == "index" else [])
        out = self.reverse_model(inputs, training=False)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        sums = []
        for o, x in zip(out, xs):
            o = tf.reshape(self._per_copy(o), tf.concat([[group], tf.shape(x)], 0))
            w = tf.reshape(weight, tf.concat([[group], tf.ones_like(tf.shape(x))], 0))
            sums.append(tf.reduce_sum(o * w, axis=0))
        return sums

    def _group_sum_split(self, per_sample, first, group):
        n_inputs = len(per_sample) - 2
        return self._group_sum(per_sample[:n_inputs], per_sample[n_inputs], first, group,
                               per_sample[n_inputs + 1])

    def _analyze_batch(self, xs, index, strategy):
        if self._group_function is None:
            self._group_function = replicas.Split(
                compiled(self._group_sum_split, self.jit_compile))
            self._index_function = compiled(self._forward_index)
        keys = tf.constant(self._keys(xs))
        xs = [tf.convert_to_tensor(x) for x in xs]
        n = len(xs[0])
        if self.neuron_selection_mode == "max_activation":
            index = self._index_function(xs)
        elif index is None:
            index = tf.zeros((n,), tf.int32)
        index = tf.convert_to_tensor(index, tf.int32)
        group = max(1, min(self.n_copies, self.batch_size // n))
        totals = None
        for first in range(0, self.n_copies, group):
            sums = self._group_function(strategy, [*xs, index, keys], tf.constant(first),
                                        group)
            totals = sums if totals is None else [t + s for t, s in zip(totals, sums)]
        means = [t / self.n_copies for t in totals]
        return [e.numpy() for e in self._combine(xs, means)]


@register_analyzer("smoothgrad")
class SmoothGrad(_AveragedGradient):
    """Mean gradient over `augment_by_n` noisy copies x + N(0, noise_scale^2) of the input.

    Args:
        augment_by_n: the number of noisy copies of each sample.
        noise_scale: standard deviation of the Gaussian noise (in input units).
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
        augment_by_n = positive_int(augment_by_n, "augment_by_n")
        self._post = postprocessing(postprocess)
        self.augment_by_n = augment_by_n
        self.noise_scale = float(noise_scale)
        self.postprocess = postprocess
        self.seed = seed
        self.n_copies = augment_by_n
        super().__init__(model, **kwargs)

    def _keys(self, xs):
        return sample_keys(xs, self.seed)

    def _copies(self, x, k, i, keys):
        n_inputs = len(self.graph.inputs)
        if self.seed is None:  # fresh noise: one draw for the whole group
            seed = tf.stack([keys[0], tf.cast(k[0], tf.int64) * n_inputs + i])
            shape = tf.concat([tf.shape(k), tf.shape(x)], 0)
            noise = tf.random.stateless_normal(shape, seed, stddev=self.noise_scale,
                                               dtype=x.dtype)
        else:  # per sample, from its key: the same noise whatever the batch
            noise = normal_copies(x, keys, k, i, n_inputs, self.noise_scale)
        return x[None] + noise

    def _per_copy(self, gradient):
        return self._post(gradient)


@register_analyzer("integrated_gradients")
class IntegratedGradients(_AveragedGradient):
    """(x - x_ref) times the mean gradient at `steps` points from x_ref towards x.

    The points are x_ref + (k/steps) (x - x_ref), k = 0..steps-1: the left Riemann sum of
    the path integral, as in iNNvestigate, so its numbers are reproduced.

    Args:
        reference_inputs: x_ref: a scalar or an array broadcastable to one sample (default
            0); a list with one per input for a model with several.
        steps: the number of points on the path.

    Raises:
        InvalidInputError: a reference of the wrong shape (naming the input) or with NaN.
    """

    description = "integrated gradients along the straight path from a reference input"
    citation = ("Sundararajan, Taly and Yan, Axiomatic attribution for deep networks, ICML "
                "2017")

    def __init__(self, model, reference_inputs=0, steps=64, **kwargs):
        steps = positive_int(steps, "steps")
        self.steps = steps
        self.n_copies = steps
        self.reference_inputs = reference_inputs
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        super()._check_model(graph)
        n = len(graph.inputs)
        refs = self.reference_inputs
        refs = list(refs) if isinstance(refs, (list, tuple)) else [refs] * n
        if len(refs) != n:
            raise InvalidInputError(
                f"reference_inputs has {len(refs)} entries for the model's {n} input(s).")
        for ref, t in zip(refs, graph.inputs):
            sample, shape = tuple(t.shape[1:]), np.shape(ref)
            if len(shape) == len(sample) + 1 and shape[0] == 1:
                shape = shape[1:]  # one sample with its batch axis
            fits = len(shape) <= len(sample) and all(
                d == 1 or s is None or d == s for d, s in zip(shape[::-1], sample[::-1]))
            if not fits:
                raise InvalidInputError(
                    f"reference_inputs for input '{t.name}' has shape {np.shape(ref)}; it must "
                    f"be a scalar or broadcast to one sample of shape {sample}.")
            if not np.all(np.isfinite(ref)):
                raise InvalidInputError(
                    f"reference_inputs for input '{t.name}' holds NaN or inf.")

    def _prepare(self, graph):
        super()._prepare(graph)
        refs = self.reference_inputs
        refs = list(refs) if isinstance(refs, (list, tuple)) else [refs] * len(graph.inputs)
        self._references = [np.asarray(r, np.float32) for r in refs]

    def _copies(self, x, k, i, keys):
        ref = tf.cast(self._references[i], x.dtype)
        alpha = tf.cast(k, x.dtype) / self.steps
        alpha = tf.reshape(alpha, tf.concat([tf.shape(k), tf.ones_like(tf.shape(x))], 0))
        return ref + alpha * (x - ref)[None]

    def _combine(self, xs, mean_gradients):
        refs = [tf.cast(r, x.dtype) for r, x in zip(self._references, xs)]
        return [(x - r) * g for x, r, g in zip(xs, refs, mean_gradients)]
