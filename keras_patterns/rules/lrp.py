"""LRP and Deep Taylor rules for one linear layer (paper section 3, appendix A.3; the rule
table of the LRP / Deep Taylor lecture).

A rule redistributes the relevance `r` at the outputs of a linear layer z = f(x; W) + b onto
its inputs. Every rule here is a "modified z-rule": it picks a kernel W', an input x' and a
bias b', and returns x' * f^T(W'; r / stab(z')) with z' = f(x'; W') + b'. Notation:

- f(v; K): the layer's linear map applied to v with kernel K, no bias (`layer.forward`);
- f^T(K; s): its transpose applied to s, the back-projection (`layer.backward`);
- x+ = max(x, 0), x- = min(x, 0), likewise W+, W-, b+, b-;
- stab(z) = z + eps * sign(z) with sign(0) = +1 (`stabilize`), so no rule divides by zero.

A new rule is one small class with a `relevance(layer, r)` method plus one line in `RULES`.
"""

import fnmatch

import tensorflow as tf

from .base import vjp

#: Stabiliser of the rules without an epsilon of their own (z, w², flat, alpha-beta, ...).
EPSILON = 1e-7


def stabilize(z, epsilon=EPSILON):
    """z + epsilon * sign(z), with sign(0) = +1: never zero, same sign as z."""
    return z + epsilon * tf.where(z >= 0, tf.ones_like(z), -tf.ones_like(z))


def positive(t):
    return tf.maximum(t, tf.zeros_like(t))


def negative(t):
    return tf.minimum(t, tf.zeros_like(t))


class LinearLayer:
    """What a rule sees of one linear layer at one batch: input x, output z = f(x; W) + b.

    kmap: a kernel map (`kernels.py`) or any object with `kernel`, `bias`, `apply(v, kernel)`
        and `broadcast(vector, rank)`.
    nonnegative: x is known to be >= 0 (it comes out of a rectifier), so the terms in x-
        vanish and rules may skip them.
    """

    def __init__(self, kmap, x, z, nonnegative=False):
        self.kmap = kmap
        self.x = x
        self.z = z
        self.nonnegative = nonnegative
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


class Rule:
    """Base class. `bias`: whether the bias counts as an input neuron that absorbs relevance."""

    name = None

    def relevance(self, layer, r):
        raise NotImplementedError

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class Epsilon(Rule):
    """LRP-epsilon: r_in = x * f^T(W; r / stab(z)), z with the bias unless bias=False."""

    name = "epsilon"

    def __init__(self, epsilon=EPSILON, bias=True):
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)
        self.bias = bool(bias)

    def relevance(self, layer, r):
        z = layer.z if self.bias else layer.z_without_bias
        return layer.x * layer.backward(layer.kernel, r / stabilize(z, self.epsilon))


class Z(Epsilon):
    """LRP-0 (the z-rule): epsilon only as a stabiliser against division by zero."""

    name = "z"

    def __init__(self, bias=True):
        super().__init__(EPSILON, bias)


class Gamma(Rule):
    """LRP-gamma: the z-rule with W + gamma W+ (and b + gamma b+): favours positive
    contributions."""

    name = "gamma"

    def __init__(self, gamma=0.25, bias=True, epsilon=EPSILON):
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
        self.gamma = float(gamma)
        self.bias = bool(bias)
        self.epsilon = float(epsilon)

    def relevance(self, layer, r):
        w = layer.kernel + self.gamma * positive(layer.kernel)
        z = layer.z_without_bias + self.gamma * layer.forward(layer.x, positive(layer.kernel))
        if self.bias:
            z = z + layer.bias + self.gamma * positive(layer.bias)
        return layer.x * layer.backward(w, r / stabilize(z, self.epsilon))


class WSquare(Rule):
    """w²-rule (Deep Taylor, unbounded inputs): r_in = f^T(W²; r / f(1; W²)); ignores x."""

    name = "w_square"

    def weights(self, kernel):
        return tf.square(kernel)

    def relevance(self, layer, r):
        w = self.weights(layer.kernel)
        z = layer.forward(layer.constant(1.0), w)
        return layer.backward(w, r / stabilize(z))


class Flat(WSquare):
    """Flat rule: the w²-rule with every weight 1 (relevance spread over the receptive field)."""

    name = "flat"

    def weights(self, kernel):
        return tf.ones_like(kernel)


class AlphaBeta(Rule):
    """LRP-alpha-beta: positive contributions (x_i w_ij)+ get alpha, negative ones -beta,
    each normalised within its sign: z+ = f(x+; W+) + f(x-; W-) (+ b+), z- likewise (+ b-).

    alpha - beta = 1 so that relevance is conserved. With a bias, b+ joins z+ and b- joins z-,
    so z+ >= 0 >= z- always and nothing blows up (unlike adding the whole bias to both).
    """

    name = "alpha_beta"

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

    name = "z_plus"

    def __init__(self):
        super().__init__(1.0, 0.0, bias=False)


class ZPlusFast(Rule):
    """z+ for non-negative inputs in one pass: r_in = x * f^T(W+; r / f(x; W+))."""

    name = "z_plus_fast"

    def relevance(self, layer, r):
        w = positive(layer.kernel)
        return layer.x * layer.backward(w, r / stabilize(layer.forward(layer.x, w)))


class Bounded(Rule):
    """z^B-rule for inputs in [low, high] (Deep Taylor, pixel layer):
    r_in = (x f^T(W; s) - l f^T(W+; s) - h f^T(W-; s)), s = r / (f(x;W) - f(l;W+) - f(h;W-))."""

    name = "bounded"

    def __init__(self, low=-1.0, high=1.0):
        self.low, self.high = low, high

    def relevance(self, layer, r):
        w_pos, w_neg = positive(layer.kernel), negative(layer.kernel)
        low, high = layer.constant(self.low), layer.constant(self.high)
        z = (layer.z_without_bias - layer.forward(low, w_pos) - layer.forward(high, w_neg))
        s = r / stabilize(z)
        return (layer.x * layer.backward(layer.kernel, s) - low * layer.backward(w_pos, s)
                - high * layer.backward(w_neg, s))


# Rule names (iNNvestigate's spellings are accepted too, see `rule_from`).
RULES = {
    "z": Z,
    "z_ib": lambda: Z(bias=False),
    "epsilon": Epsilon,
    "epsilon_ib": lambda epsilon=EPSILON: Epsilon(epsilon, bias=False),
    "gamma": Gamma,
    "w_square": WSquare,
    "flat": Flat,
    "alpha_beta": AlphaBeta,
    "alpha_beta_ib": lambda alpha=None, beta=None: AlphaBeta(alpha, beta, bias=False),
    "alpha_2_beta_1": lambda: AlphaBeta(2.0, 1.0),
    "alpha_2_beta_1_ib": lambda: AlphaBeta(2.0, 1.0, bias=False),
    "alpha_1_beta_0": lambda: AlphaBeta(1.0, 0.0),
    "alpha_1_beta_0_ib": lambda: AlphaBeta(1.0, 0.0, bias=False),
    "z_plus": ZPlus,
    "z_plus_fast": ZPlusFast,
    "bounded": Bounded,
}


def _normal(name):
    """'Alpha2Beta1IgnoreBias', 'alpha_2_beta_1_IB', 'alpha-2-beta-1-ib' -> one spelling."""
    key = name.lower().replace("_", "").replace("-", "").replace(".", "")
    if key.endswith("ignorebias"):
        key = key[: -len("ignorebias")] + "ib"
    return key


_BY_NORMAL = {_normal(k): v for k, v in RULES.items()}


def rule_from(spec):
    """A `Rule` from a name ('epsilon', 'Alpha1Beta0', 'z_IB', ...), a Rule instance, a Rule
    class, or a (low, high) tuple (the bounded rule)."""
    if isinstance(spec, Rule):
        return spec
    if isinstance(spec, type) and issubclass(spec, Rule):
        return spec()
    if isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(v, (int, float)) for v in spec):
        return Bounded(*spec)
    if isinstance(spec, str):
        make = _BY_NORMAL.get(_normal(spec))
        if make is not None:
            return make()
    raise ValueError(
        f"Unknown LRP rule {spec!r}: give a name ({', '.join(sorted(RULES))}), a "
        "keras_patterns.rules.lrp.Rule, or a (low, high) tuple for the bounded rule.")


def matches(selector, name, layer, position, n_positions):
    """Whether a composite selector picks a layer: a glob on the layer name, a Keras layer
    class, an int position among the model's layers (negative counts from the end) or a
    function of the layer."""
    if isinstance(selector, str):
        short = name.rsplit("/", 1)[-1]
        return fnmatch.fnmatchcase(name, selector) or fnmatch.fnmatchcase(short, selector)
    if isinstance(selector, type):
        return isinstance(layer, selector)
    if isinstance(selector, int) and not isinstance(selector, bool):
        return position is not None and position == selector % n_positions
    if callable(selector):
        return bool(selector(layer))
    raise ValueError(
        f"A composite selector must be a name pattern, a layer class, an int position or a "
        f"function of the layer; got {selector!r}.")
