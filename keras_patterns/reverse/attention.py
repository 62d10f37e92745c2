"""Reverse layers that carry relevance through a transformer's non-linear-layer operations
(the rules are in `rules.attention`).

- `LinearizedRelevance`: an operation that is linear in each of its inputs once the others
  are held fixed (a product of activations, fused attention with its probabilities held,
  a quotient) or whose rule is its gradient (the softmax under AttnLRP): input i gets
  R_i = share_i · x_i ⊙ Jᵢᵀ (R / y). With the shares of `rules.attention` the relevance a
  product receives is conserved; its Jacobian is the tape's (`vjp`).
- `NormRelevance`: LayerNormalization with its scale 1/σ held constant: linear in x, so
  R_x = x ⊙ Jᵀ (R / y) with J the Jacobian at constant σ; β absorbs its share.
- `HeldConstant`: a gate (a normalisation scale; under CP the attention probabilities):
  no relevance passes to its inputs.
- `GatedGradient`: for the signal methods (PatternNet, PatternAttribution): the gradient
  with the gates held constant, to the inputs that carry signal only; with a product's
  shares, AttnLRP's modified gradient.
- `IdentityRuleGradient`: the identity rule of activations in gradient form.
- `NormPattern`: PatternNet and PatternAttribution through LayerNormalization.

The gradient form (lxt's efficient form of AttnLRP): relevance = input ⊙ a modified
gradient. With LRP-0 at every linear layer, the relevance form's R = x ⊙ g holds at every
tensor, so the reverse pass can carry g instead of R: linear layers and sums pass the
plain gradient, the other rules as above; no division but the identity rule's.
"""

import tensorflow as tf

from ..graph import NORM
from ..rules.lrp import stabilize
from ..vjp import vjp
from .layers import ReverseLayer
from .tape import gradient_share


class LinearizedRelevance(ReverseLayer):
    """R_i = share_i · x_i ⊙ Jᵢᵀ (R / y), Jᵢ the node's Jacobian with respect to input i.

    Args:
        node: the forward node.
        shares: the share of each of the node's inputs (0: none passes to it).
    """

    label = "lrp_product"

    def __init__(self, node, shares, **kwargs):
        super().__init__(node, **kwargs)
        self.shares = [float(s) for s in shares]

    @property
    def silent_inputs(self):
        return tuple(i for i, share in enumerate(self.shares) if not share)

    def reverse(self, xs, ys, rs):
        s = tf.cast(rs[0], ys[0].dtype) / stabilize(ys[0])
        live = [x for x, share in zip(xs, self.shares) if share and x.dtype.is_floating]
        grads = vjp(self.node.forward, xs, [s], watch=live)
        return [None if g is None or not share else share * x * g
                for x, g, share in zip(xs, grads, self.shares)]


class NormRelevance(ReverseLayer):
    """LayerNormalization with 1/σ held constant: R_x = x ⊙ Jᵀ (R / y)."""

    label = "lrp_norm"

    def reverse(self, xs, ys, rs):
        s = tf.cast(rs[0], ys[0].dtype) / stabilize(ys[0])
        g = vjp(lambda v: [held_scale_layer_norm(self.node.op, v[0])], xs, [s])[0]
        return [xs[0] * g]


class GatedGradient(ReverseLayer):
    """The vector-Jacobian product to the inputs that carry signal, each scaled by its
    share, the others held constant (and given none); a normalisation with its scale held
    constant. The signal methods pass shares of 1 (the gradient with the gates held); the
    gradient form of AttnLRP passes a product's shares (½ to each factor).

    Args:
        node: the forward node.
        shares: for each of the node's inputs, the factor its gradient is scaled by (0: the
            signal does not pass to it; True counts as 1).
    """

    label = "gated"

    def __init__(self, node, shares, **kwargs):
        super().__init__(node, **kwargs)
        self.shares = [float(v) for v in shares]

    @property
    def silent_inputs(self):
        return tuple(i for i, share in enumerate(self.shares) if not share)

    def reverse(self, xs, ys, rs):
        forward = self.node.forward
        if self.node.role == NORM:
            forward = lambda v: [held_scale_layer_norm(self.node.op, v[0])]  # noqa: E731
        watch = [x for x, share in zip(xs, self.shares) if share and x.dtype.is_floating]
        grads = vjp(forward, xs, rs, watch=watch)
        return [None if g is None or not share else (g if share == 1.0 else share * g)
                for g, share in zip(grads, self.shares)]

    def gradient_form(self, xs):
        shared = [gradient_share(x, share) for x, share in zip(xs, self.shares)]
        if self.node.role != NORM:
            return self.node.forward(shared)
        # the layer's own values, with the derivative of the norm at constant scale
        (y,) = self.node.forward(xs)
        held = held_scale_layer_norm(self.node.op, shared[0])
        return [tf.stop_gradient(y) + (held - tf.stop_gradient(held))]


class IdentityRuleGradient(ReverseLayer):
    """The identity rule (relevance passes an element-wise activation unchanged) in gradient
    form: g_in = g_out · y / x, so that x ⊙ g_in = y ⊙ g_out (x = 0 counts as ±1e-7)."""

    label = "identity_rule"

    def reverse(self, xs, ys, rs):
        x = xs[0]
        return [tf.cast(rs[0], x.dtype) * tf.cast(ys[0], x.dtype) / stabilize(x)]

    def gradient_form(self, xs):
        x = xs[0]
        (y,) = self.node.forward(xs)
        ratio = tf.stop_gradient(tf.cast(y, x.dtype) / stabilize(x))
        return [tf.stop_gradient(y) + tf.cast(ratio * (x - tf.stop_gradient(x)), y.dtype)]


class NormPattern(ReverseLayer):
    """PatternNet and PatternAttribution through LayerNormalization with its scale held:
    per feature the map is y = (γ/σ) x (up to the mean, which is not a signal direction of
    one feature), a diagonal kernel whose pattern, normalised so that wᵀa = 1, is a = σ/γ.
    PatternNet passes the signal back along it (r σ/γ: back in the input's units);
    PatternAttribution along w ⊙ a = 1, unchanged."""

    label = "norm_pattern"

    def __init__(self, node, attribution, **kwargs):
        super().__init__(node, **kwargs)
        self.attribution = bool(attribution)

    def reverse(self, xs, ys, rs):
        r = rs[0]
        if self.attribution:
            return [r]
        layer, x = self.node.op, xs[0]
        rank = len(x.shape)
        axes = sorted(a % rank for a in ([layer.axis] if isinstance(layer.axis, int)
                                         else layer.axis))
        _, variance = tf.nn.moments(tf.cast(x, tf.float32), axes, keepdims=True)
        sigma = tf.sqrt(variance + layer.epsilon)
        gamma = getattr(layer, "gamma", None)
        if gamma is not None:
            shape = [x.shape[a] if a in axes else 1 for a in range(rank)]
            sigma = sigma / stabilize(tf.reshape(tf.cast(gamma, tf.float32), shape))
        return [tf.cast(r, tf.float32) * sigma]


class HeldConstant(ReverseLayer):
    """A gate: no relevance passes to its inputs."""

    label = "held"

    @property
    def silent_inputs(self):
        return tuple(range(len(self.node.inputs)))

    def reverse(self, xs, ys, rs):
        return [None] * len(xs)

    def gradient_form(self, xs):
        return [tf.stop_gradient(y) for y in self.node.forward(xs)]


def held_scale_layer_norm(layer, x):
    """A `keras.layers.LayerNormalization`'s output with its scale 1/σ held constant
    (`tf.stop_gradient`): the same value, and the Jacobian of the linear map
    x ↦ γ (x - μ(x)) / σ (x ↦ γ x / σ with `rms_scaling`, as Keras computes it)."""
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32) if dtype in (tf.float16, tf.bfloat16) else x
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    rank = len(x.shape)
    axes = sorted(a % rank for a in axes)
    mean, variance = tf.nn.moments(x32, axes, keepdims=True)
    scale = tf.stop_gradient(tf.math.rsqrt(variance + layer.epsilon))
    centred = x32 if layer.rms_scaling else x32 - mean
    shape = [x.shape[a] if a in axes else 1 for a in range(rank)]
    y = centred * scale
    if getattr(layer, "gamma", None) is not None:
        y = y * tf.reshape(tf.cast(layer.gamma, y.dtype), shape)
    if getattr(layer, "beta", None) is not None:
        y = y + tf.reshape(tf.cast(layer.beta, y.dtype), shape)
    return tf.cast(y, dtype)
