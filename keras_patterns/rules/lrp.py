"""LRP and Deep Taylor rules for one linear layer (paper section 3, appendix A.3; the rule
table of the LRP / Deep Taylor lecture).

A rule redistributes the relevance `r` at the outputs of a linear layer z = f(x; W) + b onto
its inputs. Every rule here is a "modified z-rule": it picks a kernel W', an input x' and a
bias b', and returns x' * f^T(W'; r / stab(z')) with z' = f(x'; W') + b'. Notation:

- f(v; K): the layer's linear map applied to v with kernel K, no bias (`layer.forward`);
- f^T(K; s): its transpose applied to s, the back-projection (`layer.backward`);
- x+ = max(x, 0), x- = min(x, 0), likewise W+, W-, b+, b-;
- stab(z) (`stabilize`): z itself wherever |z| is at least the smallest normal number of
  its dtype (1.2e-38 for float32), so that the rules divide exactly; below that (z = 0, or
  subnormal) z counts as zero and becomes z + eps * sign(z), sign(0) = +1, eps = 1e-7, so
  no rule divides by zero. The epsilon rule instead adds epsilon * sign(z) everywhere
  (`add_epsilon`): there epsilon is part of the rule, not a stabiliser.

A new rule is one small class with a `relevance(layer, r)` method, registered by name with
`rules.register_rule` (`rules.catalog`); it is then a rule name of composites and the
analyzer "lrp.<name>".
"""

import numpy as np
import tensorflow as tf

from ..vjp import vjp

# The papers the rules come from (an analyzer "lrp.<rule>" cites its rule's).
LRP_PAPER = ("Bach, Binder, Montavon, Klauschen, Mueller and Samek, On pixel-wise explanations "
             "for non-linear classifier decisions by layer-wise relevance propagation, PLOS "
             "ONE 2015")
DEEP_TAYLOR_PAPER = ("Montavon, Lapuschkin, Binder, Samek and Mueller, Explaining nonlinear "
                     "classification decisions with deep Taylor decomposition, Pattern "
                     "Recognition 2017")

# Stabiliser of the rules without an epsilon of their own (z, w², flat, alpha-beta, ...): the
# value a zero denominator is replaced by (iNNvestigate's, Keras' `epsilon()`).
EPSILON = 1e-7


def _sign(z):
    """sign(z) with sign(0) = +1."""
    return tf.where(z >= 0, tf.ones_like(z), -tf.ones_like(z))


def _smallest_normal(dtype):
    try:
        return float(np.finfo(dtype.as_numpy_dtype).tiny)
    except (TypeError, ValueError):  # bfloat16 and other types numpy does not describe
        return float(np.finfo(np.float32).tiny)


def add_epsilon(z, epsilon):
    """The epsilon rule's denominator: z + epsilon * sign(z), sign(0) = +1, everywhere."""
    return z + epsilon * _sign(z)


def stabilize(z, epsilon=EPSILON):
    """A denominator that is never zero and moves no finite quotient.

    z itself wherever |z| >= the smallest normal number of z's dtype (1.2e-38 for float32):
    r / stabilize(z) is then exactly r / z. Below it (z = 0, or a subnormal z, which
    TensorFlow's CPU kernels flush to zero anyway) z counts as zero and becomes
    z + epsilon * sign(z), sign(0) = +1 (at z = 0: +epsilon, iNNvestigate's SafeDivide);
    epsilon is raised to the smallest normal number where the dtype cannot hold it.
    """
    tiny = _smallest_normal(z.dtype)
    small = tf.abs(z) < tf.cast(tiny, z.dtype)
    return tf.where(small, z + tf.cast(max(epsilon, tiny), z.dtype) * _sign(z), z)


def positive(t):
    return tf.maximum(t, tf.zeros_like(t))


def negative(t):
    return tf.minimum(t, tf.zeros_like(t))


class LayerView:
    """What a rule sees of one linear layer at one batch: input x, output z = f(x; W) + b.

    kmap: a kernel map (`keras_patterns.kernels`) or any object with `kernel`, `bias`,
        `apply(v, kernel)` and `broadcast(vector, rank)`.
    nonnegative: x is known to be >= 0 (it comes out of a rectifier), so the terms in x-
        vanish and rules may skip them.
    preprocess: for an input layer behind element-wise affine layers and reshapes
        (`Rescaling(1 / 255)`, `Normalization`, padding), the map from the model's input to
        this layer's input, and `model_input` the model input's value: input bounds given in
        the model's units are mapped to the layer's (`input_range`).
    """

    def __init__(self, kmap, x, z, nonnegative=False, preprocess=None, model_input=None):
        self.kmap = kmap
        self.x = x
        self.z = z
        self.nonnegative = nonnegative
        self.preprocess = preprocess
        self.model_input = model_input
        self.kernel = tf.convert_to_tensor(kmap.kernel)
        bias = kmap.bias
        self.bias = (tf.zeros((), z.dtype) if bias is None
                     else tf.cast(kmap.broadcast(tf.convert_to_tensor(bias), len(z.shape)),
                                  z.dtype))

    @property
    def z_without_bias(self):
        return self.z - self.bias

    def forward(self, v, kernel):
        """f(v; kernel)."""
        return self.kmap.apply(v, kernel)

    def backward(self, kernel, s):
        """f^T(kernel; s): the back-projection of s through the map with `kernel`."""
        return vjp(lambda v: [self.kmap.apply(v[0], kernel)], [self.x], [s])[0]

    def constant(self, value):
        """An input-shaped constant (one sample; it broadcasts over the batch)."""
        return tf.fill(tf.concat([[1], tf.shape(self.x)[1:]], 0), tf.cast(value, self.x.dtype))

    def input_range(self, low, high):
        """The bounds of this layer's input (one sample each) for model inputs in
        [low, high]: the constants themselves, or mapped through the preprocessing (element
        by element, so the image of [low, high] is [min, max] of the two images)."""
        if self.preprocess is None:
            return self.constant(low), self.constant(high)
        shape = tf.concat([[1], tf.shape(self.model_input)[1:]], 0)
        dtype = self.model_input.dtype
        a = tf.cast(self.preprocess(tf.fill(shape, tf.cast(low, dtype))), self.x.dtype)
        b = tf.cast(self.preprocess(tf.fill(shape, tf.cast(high, dtype))), self.x.dtype)
        return tf.minimum(a, b), tf.maximum(a, b)


class Rule:
    """An LRP rule: `relevance(layer, r)` maps the relevance `r` at the outputs of one
    linear layer (`LayerView`) to the relevance of its inputs.

    Its class attributes describe the analyzer "lrp.<name>" it becomes once registered:
    `example` (keyword arguments of a quick example on inputs in [0, 1], for rules that
    cannot run with their defaults) and `citation` (the paper that defines it).
    """

    example = {}
    citation = LRP_PAPER

    def relevance(self, layer, r):
        """The relevance of the layer's inputs (shaped like `layer.x`)."""
        raise NotImplementedError

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class Epsilon(Rule):
    """LRP-epsilon: r_in = x * f^T(W; r / (z + epsilon * sign(z))), z with the bias unless
    bias=False; epsilon is added to every denominator (sign(0) = +1)."""

    def __init__(self, epsilon=EPSILON, bias=True):
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)
        self.bias = bool(bias)

    def denominator(self, z):
        return add_epsilon(z, self.epsilon)

    def relevance(self, layer, r):
        z = layer.z if self.bias else layer.z_without_bias
        return layer.x * layer.backward(layer.kernel, r / self.denominator(z))


class Z(Epsilon):
    """LRP-0 (the z-rule): r_in = x * f^T(W; r / stab(z)), stabilised only where z is zero."""

    def __init__(self, bias=True):
        super().__init__(EPSILON, bias)

    def denominator(self, z):
        return stabilize(z)


class Gamma(Rule):
    """LRP-gamma: the z-rule with W + gamma W+ (and b + gamma b+): favours positive
    contributions."""

    citation = ("Montavon, Binder, Lapuschkin, Samek and Mueller, Layer-wise relevance "
                "propagation: an overview, in Explainable AI (LNCS 11700), Springer 2019")

    def __init__(self, gamma=0.25, bias=True, epsilon=None):
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
        if epsilon is not None and not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        self.gamma = float(gamma)
        self.bias = bool(bias)
        # None: only the stabiliser; a number: added to every denominator (gamma-epsilon)
        self.epsilon = None if epsilon is None else float(epsilon)

    def relevance(self, layer, r):
        w = layer.kernel + self.gamma * positive(layer.kernel)
        z = layer.z_without_bias + self.gamma * layer.forward(layer.x, positive(layer.kernel))
        if self.bias:
            z = z + layer.bias + self.gamma * positive(layer.bias)
        z = stabilize(z) if self.epsilon is None else add_epsilon(z, self.epsilon)
        return layer.x * layer.backward(w, r / z)


class WSquare(Rule):
    """w²-rule (Deep Taylor, unbounded inputs): r_in = f^T(W²; r / f(1; W²)); ignores x."""

    citation = DEEP_TAYLOR_PAPER

    def weights(self, kernel):
        return tf.square(kernel)

    def relevance(self, layer, r):
        w = self.weights(layer.kernel)
        z = layer.forward(layer.constant(1.0), w)
        return layer.backward(w, r / stabilize(z))


class Flat(WSquare):
    """Flat rule: the w²-rule with every weight 1 (relevance spread over the receptive field)."""

    citation = ("Lapuschkin, Waeldchen, Binder, Montavon, Samek and Mueller, Unmasking Clever "
                "Hans predictors and assessing what machines really learn, Nature "
                "Communications 2019")

    def weights(self, kernel):
        return tf.ones_like(kernel)


class AlphaBeta(Rule):
    """LRP-alpha-beta: positive contributions (x_i w_ij)+ get alpha, negative ones -beta,
    each normalised within its sign: z+ = f(x+; W+) + f(x-; W-) (+ b+), z- likewise (+ b-).

    alpha - beta = 1 so that relevance is conserved. With a bias, b+ joins z+ and b- joins z-,
    so z+ >= 0 >= z- always and nothing blows up (unlike adding the whole bias to both).
    """

    example = {"alpha": 2.0, "beta": 1.0}

    def __init__(self, alpha=None, beta=None, bias=True):
        if alpha is None and beta is None:
            raise ValueError("alpha_beta needs alpha or beta (alpha - beta = 1).")
        alpha = beta + 1.0 if alpha is None else float(alpha)
        beta = alpha - 1.0 if beta is None else float(beta)
        if abs(alpha - beta - 1.0) > 1e-9 or beta < 0:
            raise ValueError(
                f"alpha_beta needs alpha - beta = 1 and beta >= 0, got alpha={alpha}, "
                f"beta={beta}.")
        self.alpha, self.beta, self.bias = alpha, beta, bool(bias)

    def relevance(self, layer, r):
        x_pos, w_pos, w_neg = positive(layer.x), positive(layer.kernel), negative(layer.kernel)
        x_neg = None if layer.nonnegative else negative(layer.x)
        z_pos = layer.forward(x_pos, w_pos)
        if x_neg is not None:
            z_pos = z_pos + layer.forward(x_neg, w_neg)
        z_neg = layer.z_without_bias - z_pos
        if self.bias:
            z_pos = z_pos + positive(layer.bias)
            z_neg = z_neg + negative(layer.bias)

        def share(z, w_for_pos, w_for_neg):
            s = r / stabilize(z)
            out = x_pos * layer.backward(w_for_pos, s)
            if x_neg is not None:
                out = out + x_neg * layer.backward(w_for_neg, s)
            return out

        relevance = self.alpha * share(z_pos, w_pos, w_neg)
        if self.beta:
            relevance = relevance - self.beta * share(z_neg, w_neg, w_pos)
        return relevance


class ZPlus(AlphaBeta):
    """z+-rule (Deep Taylor for rectified inputs): alpha=1, beta=0 without bias."""

    citation = DEEP_TAYLOR_PAPER

    def __init__(self):
        super().__init__(1.0, 0.0, bias=False)


class ZPlusFast(Rule):
    """z+ for non-negative inputs in one pass: r_in = x * f^T(W+; r / f(x; W+))."""

    citation = DEEP_TAYLOR_PAPER

    def relevance(self, layer, r):
        w = positive(layer.kernel)
        return layer.x * layer.backward(w, r / stabilize(layer.forward(layer.x, w)))


class Bounded(Rule):
    """z^B-rule for inputs in [low, high] (Deep Taylor, pixel layer):
    r_in = (x f^T(W; s) - l f^T(W+; s) - h f^T(W-; s)), s = r / (f(x;W) - f(l;W+) - f(h;W-)).

    low and high are in the model's input units: behind a preprocessing layer (`Rescaling`,
    `Normalization`) they are mapped to the input layer's units."""

    example = {"low": 0.0, "high": 1.0}
    citation = DEEP_TAYLOR_PAPER

    def __init__(self, low=-1.0, high=1.0):
        self.low, self.high = low, high

    def relevance(self, layer, r):
        w_pos, w_neg = positive(layer.kernel), negative(layer.kernel)
        low, high = layer.input_range(self.low, self.high)
        z = (layer.z_without_bias - layer.forward(low, w_pos) - layer.forward(high, w_neg))
        s = r / stabilize(z)
        return (layer.x * layer.backward(layer.kernel, s) - low * layer.backward(w_pos, s)
                - high * layer.backward(w_neg, s))


class Pass(Rule):
    """Relevance passed unchanged through an element-wise map (the preprocessing layers
    between a model input and its input layer, where an input-layer rule applies: they
    relabel the pixels, and the input-layer rule sees the pixels through them)."""

    def relevance(self, layer, r):
        return r
