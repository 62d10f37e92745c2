"""Class activation maps: Grad-CAM, Grad-CAM++, Score-CAM and LayerCAM.

Each weighs the activations A (h, w, K: K channels at a spatial layer's resolution) of one
layer, `layer` (by name; default the last layer whose output is spatial: of the input's
rank, (batch, height, width, channels) or (batch, steps, channels)), into one map per
sample, ReLU(sum_k w_k A_k) (LayerCAM: a weight per position). With `upsample` (the
default) the map is resized bilinearly (half-pixel centres, `tf.image.resize`) to the
input's spatial size and repeated over its channels, so that it is shaped like the input
(a sum over the channels is the map times their number; a heat map draws the map);
`upsample=False` returns it at the layer's resolution, (batch, h, w) or (batch, l).

The explained score y is the selected output unit (the model's output, a final softmax
stripped): the largest ("max_activation"), the given one ("index") or the sum of all units
("all"). g = dy/dA is taken by a tape through the model's own layers, so any layer the
gradient passes (custom, opaque) is fine; a subclassed model has no inner layers to read
and is refused.
"""

import tensorflow as tf

from .. import replicas
from ..compiled import compiled
from ..errors import NotAnalyzableModelError
from .base import Analyzer
from .catalog import register_analyzer
from .perturbation import (
    MaskedCopies,
    check_spatial_input,
    over_channels,
    selected_output,
    upsample,
)


def find_layer(graph, layer, method):
    """The output `Tensor` of the layer named `layer` (a Keras layer's name, a nested one's
    with its path `inner/conv`, or the name alone where it is unique), or of the last
    layer whose output has the input's rank and more than one position; refused, naming
    the candidates, where there is none or it is not spatial."""
    rank = len(graph.inputs[0].shape)

    def spatial(t):
        return len(t.shape) == rank and any(d != 1 for d in t.shape[1:-1])

    candidates = [n.source for n in graph.nodes if spatial(n.outputs[0])]
    names = ", ".join(dict.fromkeys(candidates)) or "none"
    if layer is None:
        if not candidates:
            raise NotAnalyzableModelError(
                f"'{method}' weighs the activations of a spatial layer (output of rank "
                f"{rank}, like the input); this model has none.")
        return [n for n in graph.nodes if n.source == candidates[-1]][-1].outputs[0]
    nodes = [n for n in graph.nodes if layer in (n.source, n.name)]
    if not nodes:
        nodes = [n for n in graph.nodes if n.source.rsplit("/", 1)[-1] == layer]
        if len({n.source for n in nodes}) > 1:
            raise NotAnalyzableModelError(
                f"layer={layer!r} names several layers of nested models "
                f"({', '.join(sorted({n.source for n in nodes}))}); give the path.")
    if not nodes:
        raise NotAnalyzableModelError(
            f"layer={layer!r} is not a layer of the explained output's graph; the spatial "
            f"layers are: {names}.")
    out = nodes[-1].outputs[0]
    if not spatial(out):
        raise NotAnalyzableModelError(
            f"Layer '{layer}' has output shape {out.shape}: '{method}' needs a spatial one "
            f"(rank {rank} like the input, channels last); the spatial layers are: {names}.")
    return out


class LayerMap(Analyzer):
    """A map made of one layer's activations (see the module).

    Args:
        layer: the name of the layer whose activations are weighed (default: the last
            layer whose output is spatial).
        upsample: resize the map to the input and repeat it over the channels (shaped
            like the input), else return it at the layer's resolution.
    """

    explains_any_layer = True

    def __init__(self, model, layer=None, upsample=True, **kwargs):
        if layer is not None and not isinstance(layer, str):
            raise ValueError(f"layer must be a layer's name (a str) or None, got {layer!r}.")
        self.layer = layer
        self.upsample = bool(upsample)
        super().__init__(model, **kwargs)
        if self.graph is None:
            raise NotAnalyzableModelError(
                f"'{self.name}' reads the activations of an inner layer, which a subclassed "
                "model does not expose; build the model with the functional API (or "
                "Sequential) to explain it with this method.")

    def _check_model(self, graph):
        super()._check_model(graph)
        check_spatial_input(graph, self.name)
        find_layer(graph, self.layer, self.name)

    def _prepare(self, graph):
        super()._prepare(graph)
        self._activation_tensor = find_layer(graph, self.layer, self.name)

    def _activations(self, x, index, tape=None):
        """The layer's activations A (as the layer computes them, in its dtype), the
        explained score per sample and its index; a `tape` watches A."""
        kept = {}

        def seen(t, value):
            if t is self._activation_tensor:
                if tape is not None:
                    tape.watch(value)
                kept["a"] = value

        y = self.graph.evaluate([x], seen)[0]
        score, index = selected_output(y, index, self.neuron_selection_mode)
        return kept["a"], score, index

    def _finish(self, cam, x):
        """The map (batch, *layer spatial) as returned: resized and over the channels, or
        raw."""
        if not self.upsample:
            return cam
        spatial = [tf.shape(x)[1 + a] for a in range(len(x.shape) - 2)]
        return over_channels(upsample(cam, spatial), x)


def _spatial_sum(t):
    """Sum over the spatial axes of (batch, *spatial, K), kept."""
    return tf.reduce_sum(t, axis=list(range(1, len(t.shape) - 1)), keepdims=True)


def _weighted(weights, a):
    """ReLU(sum_k w_k A_k) for weights (batch, *1 or *spatial, K)."""
    return tf.nn.relu(tf.reduce_sum(weights * a, axis=-1))


class GradientMap(LayerMap):
    """A map from the activations A and the gradient g = dy/dA (`_combine`)."""

    _function = None

    def _combine(self, a, g):
        raise NotImplementedError

    def _explain(self, per_sample):
        x, index = per_sample
        with tf.GradientTape() as tape:
            a, score, _ = self._activations(x, index, tape)
        g = tape.gradient(score, a, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        a, g = tf.cast(a, tf.float32), tf.cast(g, tf.float32)
        return [self._finish(self._combine(a, g), x)]

    def _analyze_batch(self, xs, index, strategy):
        if self._function is None:
            self._function = replicas.Split(compiled(self._explain, self.jit_compile))
        x = tf.convert_to_tensor(xs[0])
        idx = tf.zeros((len(x),), tf.int32) if index is None else tf.constant(index, tf.int32)
        return [e.numpy() for e in self._function(strategy, [x, idx])]


@register_analyzer("grad_cam")
class GradCAM(GradientMap):
    """ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of dy/dA_k (Selvaraju et al.,
    Eq. 1-2)."""

    description = "layer activations weighted by their mean gradient (Grad-CAM)"
    citation = ("Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra, Grad-CAM: visual "
                "explanations from deep networks via gradient-based localization, ICCV 2017")

    def _combine(self, a, g):
        positions = tf.cast(tf.reduce_prod(tf.shape(a)[1:-1]), tf.float32)
        return _weighted(_spatial_sum(g) / positions, a)


@register_analyzer("grad_cam_plus_plus")
class GradCAMPlusPlus(GradientMap):
    """ReLU(sum_k w_k A_k), w_k = sum_ij alpha_k^ij ReLU(g_k^ij),
    alpha_k^ij = g² / (2 g² + sum_ab A_k^ab g³) (0 where the denominator is 0).

    The closed form of Chattopadhay et al. (Eq. 19) for the score exp(y), whose
    derivatives are exp(y) g, exp(y) g² and exp(y) g³ (a network piecewise linear in A):
    their w_k carries the factor exp(y), a positive number per sample, which is left out
    (the map is theirs divided by exp(y), without its overflow for y > 88).
    """

    description = "layer activations weighted by positive gradients, higher-order (Grad-CAM++)"
    citation = ("Chattopadhay, Sarkar, Howlader and Balasubramanian, Grad-CAM++: generalized "
                "gradient-based visual explanations for deep convolutional networks, WACV 2018")

    def _combine(self, a, g):
        g2 = tf.square(g)
        denominator = 2.0 * g2 + _spatial_sum(a) * g2 * g
        safe = tf.where(denominator != 0.0, denominator, tf.ones_like(denominator))
        alpha = tf.where(denominator != 0.0, g2 / safe, tf.zeros_like(g2))
        return _weighted(_spatial_sum(alpha * tf.nn.relu(g)), a)


@register_analyzer("layer_cam")
class LayerCAM(GradientMap):
    """ReLU(sum_k ReLU(g_k) ⊙ A_k): each position weighted by its own positive gradient
    (Jiang et al., Eq. 5-6)."""

    description = "layer activations weighted per position by positive gradients (LayerCAM)"
    citation = ("Jiang, Zhang, Hou, Cheng and Wei, LayerCAM: exploring hierarchical class "
                "activation maps for localization, IEEE TIP 2021")

    def _combine(self, a, g):
        return _weighted(tf.nn.relu(g), a)


@register_analyzer("score_cam")
class ScoreCAM(LayerMap, MaskedCopies):
    """ReLU(sum_k w_k A_k), w_k from the output on the input masked by each channel's map.

    Channel k's mask H_k is A_k resized bilinearly to the input and scaled to [0, 1]
    per sample, (A_k − min) / (max − min) (0 where A_k is constant); the copy is x ⊙ H_k.
    The K copies per sample go through the model in groups of about `batch_size`
    (`perturbation.MaskedCopies`).

    Args:
        weights: "softmax": w = softmax over k of f(x ⊙ H_k) (Wang et al., Eq. 8, where the
            baseline cancels); "increase": w_k = f(x ⊙ H_k) − f(0), the raw increase over
            the all-zero input (their Eq. 4 with X_b = 0).
    """

    description = "layer activations weighted by the output on the input masked by each"
    citation = ("Wang, Wang, Du, Yang, Zhang, Ding, Mardziel and Hu, Score-CAM: score-weighted "
                "visual explanations for convolutional neural networks, CVPR workshops 2020")

    def __init__(self, model, layer=None, upsample=True, weights="softmax", **kwargs):
        if weights not in ("softmax", "increase"):
            raise ValueError(f"weights={weights!r} is not one of 'softmax', 'increase'.")
        self.weights = weights
        super().__init__(model, layer=layer, upsample=upsample, **kwargs)

    def _reference(self, x, index):
        a, score, index = self._activations(x, index)
        a = tf.cast(a, tf.float32)
        if self.weights == "increase":  # one more mask, all zero: the baseline
            a = tf.concat([a, tf.zeros_like(a[..., :1])], axis=-1)
        return [index, score, a]

    def _layout(self, x, state):
        return [tf.range(tf.shape(state)[-1]).numpy()]

    def _masks(self, layout, x, state):
        maps = tf.gather(state, layout[0], axis=-1)  # (batch, *layer spatial, group)
        rank = len(maps.shape) - 2
        maps = tf.transpose(maps, [rank + 1, 0] + list(range(1, rank + 1)))
        shape = tf.shape(maps)
        spatial = [tf.shape(x)[1 + a] for a in range(rank)]
        flat = upsample(tf.reshape(maps, tf.concat([[-1], shape[2:]], 0)), spatial)
        axes = list(range(1, rank + 1))
        low = tf.reduce_min(flat, axis=axes, keepdims=True)
        span = tf.reduce_max(flat, axis=axes, keepdims=True) - low
        scaled = tf.where(span > 0, (flat - low) / tf.where(span > 0, span, 1.0), 0.0)
        return tf.reshape(scaled, tf.concat([shape[:2], spatial], 0))

    def _collect(self, scores, masks, base):
        return [tf.transpose(scores)]

    _concatenate = True

    def _from_scores(self, x, totals, base, state, layout):
        scores = totals[0]
        if self.weights == "softmax":
            weights = tf.nn.softmax(scores, axis=1)
        else:
            weights, state = scores[:, :-1] - scores[:, -1:], state[..., :-1]
        rank = len(state.shape) - 2
        weights = tf.reshape(weights, tf.concat([[-1], tf.ones([rank], tf.int32),
                                                 tf.shape(weights)[1:]], 0))
        return self._finish(_weighted(weights, state), x)
