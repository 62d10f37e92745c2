"""Layer-wise Relevance Propagation (paper section 3, appendix A.3).

    analyzer = kp.create_analyzer("lrp.epsilon", model, epsilon=0.1)
    analyzer = kp.create_analyzer(
        "lrp", model, rule=[("block1_*", "alpha_1_beta_0"), (keras.layers.Dense, "epsilon")],
        input_layer_rule=(-1.0, 1.0))

The relevance starts as the selected output value y and is redistributed layer by layer:
kernel layers (BatchNormalization folded in) and element-wise affine layers with the rule
their composite assigns (`rules.composite`), sums (Add, average pooling, ...) in proportion
to the contributions, max-pooling to the winner, reshapes and concatenation by routing,
element-wise activations unchanged. Every rule of the registry (`rules.catalog.RULES`) is an
analyzer "lrp.<rule>", every preset (`rules.catalog.PRESETS`) one too. Names, parameters
and defaults follow iNNvestigate; where its numbers are wrong this package differs (see
`docs/design.md`).

The analyzers of the rules and presets are classes made from the registries' entries
(`rule_analyzer`, `preset_analyzer`) as each is registered, also after import: a method is
a class wherever methods are listed, described or created, and a rule is one class and one
`register_rule` line.
"""

import inspect

import numpy as np
import tensorflow as tf

from ..graph import ACTIVATION, AFFINE, ATTENTION, KERNEL, NORM, PRODUCT, SCALE
from ..innvestigate import lrp_analyzer_name
from ..reverse import (
    HeldConstant,
    KernelRelevance,
    LinearizedRelevance,
    NormRelevance,
    PassRelevance,
    SumRelevance,
    build_reverse_model,
)
from ..rules.attention import Signal, attention_shares, factor_shares
from ..rules.catalog import PRESETS, RULES
from ..rules.composite import Composite
from ..rules.lrp import LRP_PAPER
from .catalog import ANALYZERS, register_analyzer, unregister_analyzer
from .reverse import ReverseAnalyzer


def composite_of(rule, input_layer_rule=None, until_layer_idx=None, until_layer_rule=None,
                 bn_layer_rule=None, composite=None):
    """The composite of LRP's parameters: `composite`, or `rule` and its companions."""
    if composite is not None:
        if any(v is not None for v in (
                rule, input_layer_rule, until_layer_idx, until_layer_rule, bn_layer_rule)):
            raise ValueError("Give either composite= or rule= and its companions, not both.")
        return composite
    return Composite.of(rule, input_layer=input_layer_rule, until_layer_idx=until_layer_idx,
                        until_layer=until_layer_rule, batchnorm=bn_layer_rule)


class RelevanceAnalyzer(ReverseAnalyzer):
    """Relevance propagation with the rules of a composite: the reverse pass shared by LRP
    and Deep Taylor. A subclass sets `composite` before `super().__init__`."""

    start = "value"
    fold_batchnorm = True
    citation = LRP_PAPER
    composite = None

    def _prepare(self, graph):
        super()._prepare(graph)
        self._assignment = self.composite.assign(graph)
        self._signals = {}  # treatment -> Signal, built when a node asks

    def _signal(self, treatment):
        if treatment not in self._signals:
            self._signals[treatment] = Signal(self.graph, treatment)
        return self._signals[treatment]

    def layer_rule(self, node):
        """The LRP rule of a kernel or element-wise affine node."""
        return self._assignment.rules[node]

    def rules(self):
        """{layer name: rule} of the kernel and affine layers (for inspection)."""
        return {node.source: rule for node, rule in self._assignment.rules.items()}

    def activation_reverse(self, node):
        return PassRelevance(node)

    def relevance_budget(self, X, neuron_selection=None):
        """Where the explained output's relevance goes, per sample: the books of one
        analysis.

        Args:
            X: the inputs of one batch (as for `analyze`; no dataset).
            neuron_selection: as for `analyze`.

        Returns:
            A dict of per-sample arrays: "explained" (the start relevance, e.g. the logit),
            "input:<name>" (the relevance each model input receives) and, per node of the
            graph the relevance reaches, what it keeps: the relevance arriving at its
            outputs minus what it passes to its inputs (a kernel layer: its bias's share;
            AttnLRP's softmax: what its gradient rule does not pass on). The inputs' and
            the nodes' entries add up to "explained".
        """
        xs, _ = self._standardize(X)
        self._before_analyze()
        index = self._selection(neuron_selection, xs)
        model = build_reverse_model(self.graph, self.relevance_layer_for,
                                    self._reverse_mode(), "value", name="relevance_budget",
                                    budget=True)
        inputs = [tf.convert_to_tensor(x) for x in xs]
        if self._reverse_mode() == "index":
            inputs.append(tf.constant(index, tf.int32))
        out = [np.asarray(v) for v in model(inputs, training=False)]
        n = len(self.graph.inputs)
        books = {"explained": out[n]}
        for t, e in zip(self.graph.inputs, out[:n]):
            books[f"input:{t.name}"] = e.reshape(len(e), -1).sum(1)
        books.update(zip(model.budget_nodes, out[n + 1:]))
        return books

    def treatment(self, node):
        """The attention treatment (`rules.attention`) of a product, attention or softmax."""
        return self._assignment.treatments[node]

    def attention_reverse(self, node):
        """The reverse layer of a product, fused attention, softmax or normalisation."""
        if node.role == NORM:
            return NormRelevance(node)
        if node.role == SCALE:
            return HeldConstant(node)
        treatment = self.treatment(node)
        if node.role == PRODUCT:
            return LinearizedRelevance(node, factor_shares(node, self._signal(treatment)))
        if node.role == ATTENTION:
            return LinearizedRelevance(node, attention_shares(node, self._signal(treatment)))
        if treatment.holds_probabilities:  # the softmax under CP: a gate
            return HeldConstant(node)
        return LinearizedRelevance(node, [1.0] + [0.0] * (len(node.inputs) - 1))

    def reverse_layer_for(self, node):
        return self.relevance_layer_for(node)

    def relevance_layer_for(self, node):
        """The reverse layer that carries relevance through `node`."""
        if node.role in (PRODUCT, ATTENTION, NORM, SCALE) or (
                node.role == ACTIVATION and node.family == "softmax"):
            return self.attention_reverse(node)
        if node.role in (KERNEL, AFFINE):
            return KernelRelevance(node, self.layer_rule(node),
                                   self.graph.is_nonnegative(node.inputs[0]),
                                   self._assignment.preprocessing.get(node, ()))
        if node.role == ACTIVATION:
            return self.activation_reverse(node)
        if node.is_sum:
            return SumRelevance(node)
        return super().reverse_layer_for(node)  # max-pooling, routing, nonlinear; embedding


@register_analyzer("lrp")
class LRP(RelevanceAnalyzer):
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
        until_layer_idx: kernel layers at positions 0..until_layer_idx (positions count
            the model's layer calls) use `until_layer_rule`.
        until_layer_rule: the rule of the layers up to `until_layer_idx`.
        bn_layer_rule: rule of BatchNormalization layers that do not follow a kernel layer
            (those that do are folded into it); default: the rule their name or class
            selects.
        composite: a `rules.composite.Composite` instead of the four above.
    """

    description = "LRP with a rule (or a composite of rules) per layer"
    example = {"rule": "epsilon"}

    def __init__(self, model, rule=None, input_layer_rule=None, until_layer_idx=None,
                 until_layer_rule=None, bn_layer_rule=None, composite=None, **kwargs):
        if composite is None and rule is None:
            raise ValueError(
                "'lrp' needs rule=: a rule name (e.g. 'epsilon'), a Rule, or a list of "
                "(selector, rule) pairs; or use a named method such as 'lrp.epsilon'.")
        self.composite = composite_of(rule, input_layer_rule, until_layer_idx,
                                      until_layer_rule, bn_layer_rule, composite)
        super().__init__(model, **kwargs)


class RuleLRP(RelevanceAnalyzer):
    """The base of the analyzers "lrp.<rule>": the rule `factory` at every layer; the
    rule's parameters are the analyzer's (`lrp.epsilon(epsilon=0.1)`) and become its
    attributes, the companions of `LRP`'s `rule` apply as there."""

    factory = None

    def __init__(self, model, input_layer_rule=None, until_layer_idx=None,
                 until_layer_rule=None, bn_layer_rule=None, **kwargs):
        params = _parameters(self.factory)
        settings = {k: kwargs.pop(k) for k in params if k in kwargs}
        rule = self.factory(**settings)
        for k in params:
            setattr(self, k, getattr(rule, k, settings.get(k)))
        self.composite = composite_of(rule, input_layer_rule, until_layer_idx,
                                      until_layer_rule, bn_layer_rule)
        super().__init__(model, **kwargs)


class PresetLRP(RelevanceAnalyzer):
    """The base of the analyzers of the presets (`rules.catalog.PRESETS`): the composite of
    `preset` with epsilon at the dense layers."""

    preset = None

    def __init__(self, model, epsilon=0.1, input_layer_rule=None, until_layer_idx=None,
                 bn_layer_rule=None, **kwargs):
        self.epsilon = epsilon
        self.until_layer_idx = until_layer_idx
        self.composite = self.preset.composite(epsilon, input_layer_rule, until_layer_idx,
                                               bn_layer_rule)
        super().__init__(model, **kwargs)


def _parameters(make):
    """The keyword parameters a rule factory still takes."""
    return [p.name for p in inspect.signature(make).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


# one-line descriptions of the built-in rules' analyzers (a rule registered later is
# described by the first line of its docstring)
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


def rule_analyzer(rule_name, make):
    """The analyzer class "lrp.<rule_name>" of the rule factory `make`."""
    params = _parameters(make)
    rule_class = getattr(make, "func", make)
    signature = inspect.signature(make)
    companions = [p for name, p in inspect.signature(RuleLRP.__init__).parameters.items()
                  if name not in ("self", "model", "kwargs")]
    doc = (rule_class.__doc__ or "").strip().splitlines()
    name = lrp_analyzer_name(rule_name)
    return type(name.replace(".", "_"), (RuleLRP,), {
        "name": name,
        "factory": staticmethod(make),
        "description": _DESCRIPTIONS.get(rule_name, doc[0] if doc else f"LRP, {rule_name}"),
        "example": {k: v for k, v in getattr(rule_class, "example", {}).items()
                    if k in params},
        "citation": getattr(rule_class, "citation", LRP_PAPER),
        "__signature__": inspect.Signature(
            [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in signature.parameters.values() if p.name in params]
            + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in companions]
            + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]),
        "__doc__": f"LRP with the {rule_name} rule at every layer ({', '.join(params)}).",
        "__module__": __name__,
    })


def preset_analyzer(preset_name, preset):
    """The analyzer class of a preset."""
    needs_until = preset.until is not None
    return type(preset_name.replace(".", "_"), (PresetLRP,), {
        "name": preset_name, "preset": preset, "description": preset.description,
        "example": preset.example,
        "citation": ("Kohlbrenner, Bauer, Nakajima, Binder, Samek and Lapuschkin, Towards "
                     "best practice in explaining neural network decisions with LRP, IJCNN "
                     "2020"),
        "__doc__": f"{preset.description} (epsilon=0.1"
                   f"{', until_layer_idx' if needs_until else ''}).",
        "__module__": __name__,
    })


def _follow(registry, make_class, analyzer_name):
    """Keep one analyzer per entry of `registry`, from its registration to its removal."""

    def added(name, entry):
        register_analyzer(analyzer_name(name), make_class(name, entry), replace=True)

    def removed(name, entry):
        if analyzer_name(name) in ANALYZERS.names():
            unregister_analyzer(analyzer_name(name))

    registry.follow(added, removed)


_follow(RULES, rule_analyzer, lrp_analyzer_name)
_follow(PRESETS, preset_analyzer, lambda name: name)
