"""Layer-wise Relevance Propagation (paper section 3, appendix A.3).

    analyzer = kp.create_analyzer("lrp.epsilon", model, epsilon=0.1)
    analyzer = kp.create_analyzer(
        "lrp", model, rule=[("block1_*", "alpha_1_beta_0"), (keras.layers.Dense, "epsilon")],
        input_layer_rule=(-1.0, 1.0))

The relevance starts as the selected output value y and is redistributed layer by layer:
kernel layers (BatchNormalization folded in) and element-wise affine layers with the rule
their composite assigns (`rules.composite`), sums (Add, average pooling, ...) in proportion
to the contributions, max-pooling to the winner, reshapes and concatenation by routing,
element-wise activations unchanged. Every rule of the registry (`rules.lrp.RULES`) is an
analyzer "lrp.<rule>", every preset (`rules.composite.PRESETS`) one too. Names, parameters
and defaults follow iNNvestigate; where its numbers are wrong this package differs (see
`docs/design.md`).
"""

import inspect

from ..graph import ACTIVATION, AFFINE, KERNEL
from ..reverse import KernelRelevance, PassRelevance, SumRelevance
from ..rules.composite import PRESETS, Composite
from ..rules.lrp import RULES, factory
from .base import ReverseAnalyzer


class LRP(ReverseAnalyzer):
    """LRP with a rule per layer.

    Args:
        rule: the rule of every kernel layer (a name such as "epsilon", "alpha_1_beta_0",
            "w_square", iNNvestigate's "Alpha2Beta1IgnoreBias", a
            `keras_patterns.rules.lrp.Rule`), or a composite: a list of (selector, rule)
            pairs, the first matching pair wins (selectors: see `rules.composite`; layers
            no pair matches use the z-rule), or a plain list with one rule per kernel layer.
        input_layer_rule: rule of the kernel layers fed by a model input (through
            preprocessing: Rescaling, Normalization, reshapes, padding); a (low, high) tuple
            means the bounded z^B-rule for inputs in [low, high] (model input units).
        until_layer_idx, until_layer_rule: kernel layers at positions 0..until_layer_idx
            (positions count the model's layer calls) use until_layer_rule.
        bn_layer_rule: rule of BatchNormalization layers that do not follow a kernel layer
            (those that do are folded into it); default: the rule their name or class
            selects.
        composite: a `rules.composite.Composite` instead of the four above.
    """

    name = "lrp"
    description = "LRP with a rule (or a composite of rules) per layer"
    start = "value"
    fold_batchnorm = True

    def __init__(self, model, rule=None, input_layer_rule=None, until_layer_idx=None,
                 until_layer_rule=None, bn_layer_rule=None, composite=None, **kwargs):
        if composite is not None and any(v is not None for v in (
                rule, input_layer_rule, until_layer_idx, until_layer_rule, bn_layer_rule)):
            raise ValueError("Give either composite= or rule= and its companions, not both.")
        if composite is None:
            if rule is None:
                raise ValueError(
                    "'lrp' needs rule=: a rule name (e.g. 'epsilon'), a Rule, or a list of "
                    "(selector, rule) pairs; or use a named method such as 'lrp.epsilon'.")
            composite = Composite.of(rule, input_layer=input_layer_rule,
                                     until_layer_idx=until_layer_idx,
                                     until_layer=until_layer_rule, batchnorm=bn_layer_rule)
        self.composite = composite
        self._assignment = None
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        self._assignment = self.composite.assign(graph)

    def layer_rule(self, node):
        """The LRP rule of a kernel or element-wise affine node."""
        return self._assignment.rules[node]

    def rules(self):
        """{layer name: rule} of the kernel and affine layers (for inspection)."""
        return {node.source: rule for node, rule in self._assignment.rules.items()}

    def activation_reverse(self, node):
        return PassRelevance(node)

    def reverse_layer_for(self, node):
        if node.role in (KERNEL, AFFINE):
            return KernelRelevance(node, self.layer_rule(node),
                                   self.graph.is_nonnegative(node.inputs[0]),
                                   self._assignment.preprocessing.get(node, ()))
        if node.role == ACTIVATION:
            return self.activation_reverse(node)
        if node.is_sum:
            return SumRelevance(node)
        return super().reverse_layer_for(node)  # max-pooling, routing, nonlinear; embedding


def _parameters(make):
    """The keyword parameters a rule factory still takes."""
    return [p.name for p in inspect.signature(make).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def analyzer_name(rule_name):
    """"lrp.<rule>", spelt as iNNvestigate does ("_ib" -> "_IB")."""
    return "lrp." + (rule_name[:-3] + "_IB" if rule_name.endswith("_ib") else rule_name)


#: one-line descriptions of the registered rules' analyzers
_DESCRIPTIONS = {
    "z": "LRP-0 (z-rule): relevance in proportion to x_i w_ij",
    "z_ib": "LRP z-rule ignoring the bias",
    "epsilon": "LRP-epsilon: z-rule with a stabilised denominator",
    "epsilon_ib": "LRP-epsilon ignoring the bias",
    "gamma": "LRP-gamma: z-rule with positive weights boosted by gamma",
    "w_square": "LRP w²-rule (relevance along w², ignores x)",
    "flat": "LRP flat rule (relevance spread evenly)",
    "alpha_beta": "LRP-alpha-beta: positive and negative contributions weighted separately",
    "alpha_beta_ib": "LRP-alpha-beta ignoring the bias",
    "alpha_2_beta_1": "LRP alpha=2, beta=1",
    "alpha_2_beta_1_ib": "LRP alpha=2, beta=1 ignoring the bias",
    "alpha_1_beta_0": "LRP alpha=1, beta=0",
    "alpha_1_beta_0_ib": "LRP alpha=1, beta=0 ignoring the bias",
    "z_plus": "LRP z+-rule (alpha=1, beta=0, no bias)",
    "z_plus_fast": "LRP z+-rule for non-negative inputs",
    "bounded": "LRP z^B-rule for inputs in [low, high] at every layer",
}


def rule_analyzer(rule_name):
    """The analyzer "lrp.<rule_name>": that rule at every layer; the rule's parameters are
    the analyzer's (`lrp.epsilon(epsilon=0.1)`) and become its attributes."""
    make = RULES[rule_name]
    params = _parameters(make)

    def __init__(self, model, **kwargs):
        settings = {k: kwargs.pop(k) for k in params if k in kwargs}
        rule = make(**settings)
        for k in params:
            setattr(self, k, getattr(rule, k, settings.get(k)))
        LRP.__init__(self, model, rule=rule, **kwargs)

    signature = inspect.signature(make)
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
         inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
           if p.name in params]
        + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
    doc = (getattr(make, "func", make).__doc__ or "").strip().splitlines()
    description = _DESCRIPTIONS.get(rule_name, doc[0] if doc else f"LRP, {rule_name} rule")
    name = analyzer_name(rule_name)
    return type(name.replace(".", "_"), (LRP,), {
        "name": name, "description": description, "__init__": __init__,
        "__doc__": f"LRP with the {rule_name} rule at every layer ({', '.join(params)}).",
    })


def preset_analyzer(preset_name):
    """The analyzer of a named preset (`rules.composite.PRESETS`)."""
    preset = PRESETS[preset_name]
    needs_until = preset.until is not None

    def __init__(self, model, epsilon=0.1, input_layer_rule=None, until_layer_idx=None,
                 bn_layer_rule=None, **kwargs):
        self.epsilon = epsilon
        self.until_layer_idx = until_layer_idx
        LRP.__init__(self, model, composite=preset.composite(
            epsilon, input_layer_rule, until_layer_idx, bn_layer_rule), **kwargs)

    kind = "alpha=1 beta=0" if preset.conv.beta == 0 else "alpha=2 beta=1"
    description = f"LRP preset: epsilon for dense, {kind} for conv layers" + (
        ", flat at the input layer" if preset.input_layer is not None else "") + (
        " and layers 0..until_layer_idx" if needs_until else "")
    return type(preset_name.replace(".", "_"), (LRP,), {
        "name": preset_name, "description": description, "__init__": __init__,
        "__doc__": f"{description} (epsilon=0.1{', until_layer_idx' if needs_until else ''})."})


def lrp_analyzers():
    """The LRP analyzers: `LRP` itself, one per registered rule, one per preset."""
    return [LRP] + [rule_analyzer(n) for n in RULES] + [preset_analyzer(n) for n in PRESETS]


def lrp_analyzer(name):
    """The analyzer class of an "lrp.<rule>" name for a rule registered after import (any
    accepted spelling), or None."""
    if not name.startswith("lrp."):
        return None
    make = factory(name[4:])
    rule_name = next((n for n, f in RULES.items() if f is make), None)
    return None if rule_name is None else rule_analyzer(rule_name)
