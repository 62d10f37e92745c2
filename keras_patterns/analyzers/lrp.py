"""Layer-wise Relevance Propagation and Deep Taylor decomposition (paper section 3, A.3).

    analyzer = kp.create_analyzer("lrp.epsilon", model, epsilon=0.1)
    analyzer = kp.create_analyzer("lrp", model,
                                  rule=[("block1_*", "alpha_1_beta_0"), (keras.layers.Dense, "epsilon")],
                                  input_layer_rule=(-1.0, 1.0))

The relevance starts as the selected output value y (Deep Taylor: max(y, 0)) and is
redistributed layer by layer: kernel layers (BatchNormalization folded in) and element-wise
affine layers with their rule (`rules/lrp.py`), sums (Add, average pooling, ...) in
proportion to the contributions, max-pooling to the winner, reshapes and concatenation by
routing, element-wise activations unchanged. Names, parameters and defaults follow
iNNvestigate; where its numbers are wrong this package differs (see `docs/design.md`).
"""

from ..kinds import is_summing
from ..rules import GradientRule
from ..rules.lrp import AlphaBeta, Bounded, Epsilon, Gamma, Pass, ZPlus, matches, rule_from
from ..rules.relevance import KernelRelevance, PassRelevance, SumRelevance
from .base import ReverseAnalyzer


class LRP(ReverseAnalyzer):
    """LRP with a rule per layer.

    rule: the rule of every kernel layer (a name such as "epsilon", "alpha_1_beta_0",
        "w_square", iNNvestigate's "Alpha2Beta1IgnoreBias", a `keras_patterns.rules.lrp.Rule`),
        or a composite: a list of (selector, rule) pairs, the first matching pair wins, where
        a selector is a glob on the layer name ("block1_*"), a Keras layer class, an int
        position (the layer's index among the model's layers in call order, nested models
        inlined, inputs not counted; -1: the last) or a function of the layer; kernel layers
        no pair matches use the z-rule. A plain list of rules gives one rule per kernel
        layer, in order.
    input_layer_rule: rule of the kernel layers fed by a model input (through reshapes
        only); a (low, high) tuple means the bounded z^B-rule for inputs in [low, high].
    until_layer_idx, until_layer_rule: kernel layers at positions 0..until_layer_idx (positions
        as above) use until_layer_rule.
    bn_layer_rule: rule of BatchNormalization layers that do not follow a kernel layer
        (those that do are folded into it); default: the rule their name or class selects.
    """

    name = "lrp"
    description = "LRP with a rule (or a composite of rules) per layer"
    start = "value"
    fold_batchnorm = True
    #: rule of kernel layers that no composite entry selects
    default_rule = "z"

    def __init__(self, model, rule=None, input_layer_rule=None, until_layer_idx=None,
                 until_layer_rule=None, bn_layer_rule=None, **kwargs):
        if rule is None:
            raise ValueError(
                "'lrp' needs rule=: a rule name (e.g. 'epsilon'), a Rule, or a list of "
                "(selector, rule) pairs; or use a named method such as 'lrp.epsilon'.")
        self.rule = rule
        self.input_layer_rule = input_layer_rule
        self.until_layer_idx = until_layer_idx
        self.until_layer_rule = until_layer_rule
        self.bn_layer_rule = bn_layer_rule
        super().__init__(model, **kwargs)
        # Positions count the model's layers in call order (nested models inlined, inputs
        # not counted), as iNNvestigate counts them for until_layer_idx.
        self._layer_order = self.graph.layer_order
        self._kernel_layers = list(dict.fromkeys(
            node.info.get("layer_name", node.name)
            for node in self.graph.nodes if node.role == "kernel"))
        self._composite = self._parse_composite(rule)
        self._input_rule = None if input_layer_rule is None else rule_from(input_layer_rule)
        if (until_layer_idx is None) != (until_layer_rule is None):
            raise ValueError("until_layer_idx and until_layer_rule go together.")
        self._until_rule = None if until_layer_rule is None else rule_from(until_layer_rule)
        self._bn_rule = None if bn_layer_rule is None else rule_from(bn_layer_rule)
        self._default = rule_from(self.default_rule)
        self._passing = self._preprocessing()

    # -- which rule for which layer ------------------------------------------------------

    def _parse_composite(self, rule):
        """[(selector, Rule)]: one entry for every layer for a single rule."""
        self._per_kernel_layer = None
        if not isinstance(rule, (list, tuple)) or _is_bounds(rule):
            return [(lambda layer: True, rule_from(rule))]
        entries = list(rule)
        if entries and all(not isinstance(e, tuple) for e in entries):
            if len(entries) != len(self._kernel_layers):
                raise ValueError(
                    f"rule= lists {len(entries)} rules for {len(self._kernel_layers)} kernel "
                    f"layers ({', '.join(self._kernel_layers)}); give one per kernel layer or "
                    "(selector, rule) pairs.")
            self._per_kernel_layer = [rule_from(r) for r in entries]
            return []
        out = []
        for entry in entries:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise ValueError(
                    f"A composite entry must be a (selector, rule) pair, got {entry!r}.")
            out.append((entry[0], rule_from(entry[1])))
        return out

    def _position(self, node):
        name = node.info.get("layer_name", node.name)
        return self._layer_order.index(name) if name in self._layer_order else None

    def _select(self, node):
        name = node.info.get("layer_name", node.name)
        if self._per_kernel_layer:
            if node.role != "kernel":
                return None
            return self._per_kernel_layer[self._kernel_layers.index(name)]
        position = self._position(node)
        for selector, rule in self._composite:
            if matches(selector, name, node.op, position, len(self._layer_order)):
                return rule
        return None

    def layer_rule(self, node):
        """The LRP rule of a kernel node or an element-wise affine node."""
        if node in self._passing:
            return Pass()
        if node.role == "kernel":
            if self._input_rule is not None and self._is_input_layer(node):
                return self._input_rule
            if self._until_rule is not None and self._position(node) <= self.until_layer_idx:
                return self._until_rule
            return self._select(node) or self._default
        if self._bn_rule is not None and node.layer_class == "BatchNormalization":
            return self._bn_rule
        return self._select(node) or self._default

    # -- graph facts ------------------------------------------------------------------

    def _routes(self, node):
        return node.role == "linear" and not is_summing(node.op) and len(node.inputs) == 1

    def _is_input_layer(self, node):
        """Fed by a model input through element-wise affine and routing nodes only."""
        return self.graph.input_chain(node) is not None

    def _preprocessing(self):
        """The affine nodes between a model input and an input layer whose rule is the
        input-layer rule: they pass the relevance unchanged (`Pass`)."""
        if self._input_rule is None:
            return set()
        out = set()
        for node in self.graph.nodes:
            if node.role == "kernel":
                out.update(n for n in self.graph.input_chain(node) or () if n.role == "affine")
        return out

    def _nonnegative(self, tensor):
        """Whether a tensor is >= 0 by construction (out of a rectifier, then pooled or
        reshaped): lets the alpha-beta rules skip the terms in x-."""
        producer = self.graph.producer(tensor)
        if producer is None:
            return False
        if producer.role == "activation":
            threshold = getattr(producer.op, "threshold", 0.0) or 0.0
            return producer.info.get("family") == "relu" and threshold >= 0
        if producer.role == "max_pool" or self._routes(producer) or (
                producer.role == "linear" and is_summing(producer.op)
                and producer.layer_class not in ("Subtract", "Negative")):
            return all(self._nonnegative(t) for t in producer.inputs)
        return False

    # -- reverse layers ---------------------------------------------------------------

    def relevance_layer(self, node, rule):
        chain = ()
        if node.role == "kernel" and rule is self._input_rule:
            chain = self.graph.input_chain(node) or ()
        return KernelRelevance(node, rule, self._nonnegative(node.inputs[0]), chain)

    def activation_rule(self, node):
        return PassRelevance(node)

    def rule_for(self, node):
        if node.role in ("kernel", "affine"):
            return self.relevance_layer(node, self.layer_rule(node))
        if node.role == "activation":
            return self.activation_rule(node)
        if node.role == "linear" and is_summing(node.op):
            return SumRelevance(node)
        return super().rule_for(node)  # max-pooling, routing, nonlinear: gradient; embedding

    def rules(self):
        """{layer name: rule} of the kernel and affine layers (for inspection)."""
        return {node.info.get("layer_name", node.name): self.layer_rule(node)
                for node in self.graph.nodes if node.role in ("kernel", "affine")}


def _is_bounds(rule):
    """(low, high): the bounded rule, not a composite."""
    return isinstance(rule, tuple) and len(rule) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in rule)


class _FixedRule(LRP):
    """An LRP method with one rule for every layer."""

    def __init__(self, model, **kwargs):
        super().__init__(model, rule=self.make_rule(), **kwargs)

    def make_rule(self):
        raise NotImplementedError


def _fixed(name, rule_name, description):
    return type(name.replace(".", "_"), (_FixedRule,), {
        "name": name, "description": description,
        "make_rule": lambda self: rule_from(rule_name),
        "__doc__": f"LRP with the {rule_name} rule for every layer.",
    })


LRPZ = _fixed("lrp.z", "z", "LRP-0 (z-rule): relevance in proportion to x_i w_ij")
LRPZIgnoreBias = _fixed("lrp.z_IB", "z_ib", "LRP z-rule ignoring the bias")
LRPWSquare = _fixed("lrp.w_square", "w_square", "LRP w²-rule (relevance along w², ignores x)")
LRPFlat = _fixed("lrp.flat", "flat", "LRP flat rule (relevance spread evenly)")
LRPAlpha2Beta1 = _fixed("lrp.alpha_2_beta_1", "alpha_2_beta_1", "LRP alpha=2, beta=1")
LRPAlpha2Beta1IgnoreBias = _fixed("lrp.alpha_2_beta_1_IB", "alpha_2_beta_1_ib",
                                  "LRP alpha=2, beta=1 ignoring the bias")
LRPAlpha1Beta0 = _fixed("lrp.alpha_1_beta_0", "alpha_1_beta_0", "LRP alpha=1, beta=0")
LRPAlpha1Beta0IgnoreBias = _fixed("lrp.alpha_1_beta_0_IB", "alpha_1_beta_0_ib",
                                  "LRP alpha=1, beta=0 ignoring the bias")
LRPZPlus = _fixed("lrp.z_plus", "z_plus", "LRP z+-rule (alpha=1, beta=0, no bias)")
LRPZPlusFast = _fixed("lrp.z_plus_fast", "z_plus_fast", "LRP z+-rule for non-negative inputs")


class LRPEpsilon(LRP):
    """LRP-epsilon: z-rule with z + epsilon * sign(z) (sign(0) = +1); bias=False ignores it."""

    name = "lrp.epsilon"
    description = "LRP-epsilon: z-rule with a stabilised denominator"

    def __init__(self, model, epsilon=1e-7, bias=True, **kwargs):
        self.epsilon = epsilon
        super().__init__(model, rule=Epsilon(epsilon, bias), **kwargs)


class LRPEpsilonIgnoreBias(LRPEpsilon):
    name = "lrp.epsilon_IB"
    description = "LRP-epsilon ignoring the bias"

    def __init__(self, model, epsilon=1e-7, **kwargs):
        super().__init__(model, epsilon=epsilon, bias=False, **kwargs)


class LRPAlphaBeta(LRP):
    """LRP-alpha-beta (alpha - beta = 1): positive contributions weighted alpha, negative
    ones -beta. With bias=True, b+ joins the positive and b- the negative denominator."""

    name = "lrp.alpha_beta"
    description = "LRP-alpha-beta: positive and negative contributions weighted separately"

    def __init__(self, model, alpha=None, beta=None, bias=True, **kwargs):
        self.alpha, self.beta = alpha, beta
        super().__init__(model, rule=AlphaBeta(alpha, beta, bias), **kwargs)


class LRPGamma(LRP):
    """LRP-gamma: the z-rule with W + gamma W+ (positive contributions favoured)."""

    name = "lrp.gamma"
    description = "LRP-gamma: z-rule with positive weights boosted by gamma"

    def __init__(self, model, gamma=0.25, bias=True, **kwargs):
        self.gamma = gamma
        super().__init__(model, rule=Gamma(gamma, bias), **kwargs)


class LRPSequentialPresetA(LRP):
    """Dense layers: epsilon (default 0.1); other kernel layers (convolutions): alpha=1, beta=0."""

    name = "lrp.sequential_preset_a"
    description = "LRP preset A: epsilon for dense, alpha=1 beta=0 for conv layers"
    conv_rule = (1.0, 0.0)
    input_rule = None

    def __init__(self, model, epsilon=1e-1, **kwargs):
        import keras

        self.epsilon = epsilon
        self.default_rule = Epsilon(epsilon)
        kwargs.setdefault("input_layer_rule", self.input_rule)
        conv = AlphaBeta(*self.conv_rule)
        rule = [(keras.layers.Dense, Epsilon(epsilon)),
                (lambda layer: isinstance(layer, keras.layers.Layer), conv)]
        super().__init__(model, rule=rule, **kwargs)

    def _select(self, node):
        if node.role != "kernel":
            return None  # element-wise affine layers: epsilon
        return super()._select(node)


class LRPSequentialPresetB(LRPSequentialPresetA):
    """Dense layers: epsilon (default 0.1); other kernel layers: alpha=2, beta=1."""

    name = "lrp.sequential_preset_b"
    description = "LRP preset B: epsilon for dense, alpha=2 beta=1 for conv layers"
    conv_rule = (2.0, 1.0)


class LRPSequentialPresetAFlat(LRPSequentialPresetA):
    name = "lrp.sequential_preset_a_flat"
    description = "LRP preset A with the flat rule at the input layer"
    input_rule = "flat"


class LRPSequentialPresetBFlat(LRPSequentialPresetB):
    name = "lrp.sequential_preset_b_flat"
    description = "LRP preset B with the flat rule at the input layer"
    input_rule = "flat"


class LRPSequentialPresetBFlatUntilIdx(LRPSequentialPresetBFlat):
    """Preset B with the flat rule at the layers 0..until_layer_idx (positions count every
    layer of the model, as in iNNvestigate) and at the input layer."""

    name = "lrp.sequential_preset_b_flat_until_idx"
    description = "LRP preset B with the flat rule at layers 0..until_layer_idx"

    def __init__(self, model, until_layer_idx=None, **kwargs):
        if until_layer_idx is None:
            raise ValueError(f"'{self.name}' needs until_layer_idx= (a kernel layer position).")
        super().__init__(model, until_layer_idx=until_layer_idx, until_layer_rule="flat",
                         **kwargs)


class DeepTaylor(LRP):
    """Deep Taylor decomposition for rectifier networks: the z+-rule at every kernel layer
    (BatchNormalization folded in), relevance passed only through active rectifiers and
    distributed over sums (Add, average pooling) in proportion to the contributions. It
    explains max(y, 0): a rectified output, as the decomposition assumes."""

    name = "deep_taylor"
    description = "Deep Taylor decomposition (z+ rule, unbounded inputs)"
    start = "positive_value"

    def __init__(self, model, **kwargs):
        super().__init__(model, rule=ZPlus(), **kwargs)

    def _check_model(self, graph):
        for node in graph.nodes:
            if node.role == "activation" and node.info["family"] not in ("relu", "linear"):
                self._refuse(node, f"it has a {node.info['activation_name']} activation; "
                                   "Deep Taylor is defined for rectifier (ReLU) networks.")

    def activation_rule(self, node):
        return GradientRule(node)  # a rectifier passes relevance where it was active


class BoundedDeepTaylor(DeepTaylor):
    """Deep Taylor with the z^B-rule at the input layer, for inputs in [low, high]."""

    name = "deep_taylor.bounded"
    description = "Deep Taylor decomposition with the z^B rule for inputs in [low, high]"

    def __init__(self, model, low=None, high=None, **kwargs):
        if low is None or high is None:
            raise ValueError("deep_taylor.bounded needs low= and high= (the input range).")
        if not low < high:
            raise ValueError(f"deep_taylor.bounded needs low < high, got {low}, {high}.")
        self.low, self.high = low, high
        super().__init__(model, input_layer_rule=Bounded(low, high), **kwargs)


LRP_ANALYZERS = (
    LRP, LRPZ, LRPZIgnoreBias, LRPEpsilon, LRPEpsilonIgnoreBias, LRPWSquare, LRPFlat,
    LRPAlphaBeta, LRPAlpha2Beta1, LRPAlpha2Beta1IgnoreBias, LRPAlpha1Beta0,
    LRPAlpha1Beta0IgnoreBias, LRPZPlus, LRPZPlusFast, LRPGamma, LRPSequentialPresetA,
    LRPSequentialPresetB, LRPSequentialPresetAFlat, LRPSequentialPresetBFlat,
    LRPSequentialPresetBFlatUntilIdx, DeepTaylor,
    BoundedDeepTaylor,
)

__all__ = [cls.__name__ for cls in LRP_ANALYZERS] + ["LRP_ANALYZERS"]
