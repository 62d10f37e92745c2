"""The relevance methods made for transformers: AttnLRP and CP-LRP (`rules.attention`).

    analyzer = kp.create_analyzer("attnlrp", model)
    analyzer = kp.create_analyzer("cp_lrp", model, rule="epsilon")

Both are LRP (`analyzers.lrp`) whose kernel layers use `rule` (LRP-0, the z-rule, by
default: biases absorb their share), element-wise activations (GELU, SiLU, tanh, ...) the
identity rule, and normalisations their scale held constant; they differ at the attention.
Every other LRP analyzer treats attention as CP-LRP does unless its composite says
otherwise.
"""

import tensorflow as tf

from ..graph import ACTIVATION, ATTENTION, CONSTANT, EMBEDDING, NORM, PRODUCT, SCALE
from ..reverse import (
    EmbeddingTimesInputReverse,
    GatedGradient,
    GradientReverse,
    HeldConstant,
    IdentityRuleGradient,
)
from ..rules.attention import (
    ATTNLRP,
    ATTNLRP_PAPER,
    CP,
    CP_PAPER,
    attention_shares,
    factor_shares,
)
from ..rules.composite import Composite
from ..rules.lrp import Z
from .catalog import register_analyzer
from .lrp import RelevanceAnalyzer


class _TreatedLRP(RelevanceAnalyzer):
    """LRP with `attention_treatment` at the attention.

    Args:
        rule: the rule of the kernel layers (an LRP rule name such as "z" or "epsilon", a
            `Rule`, or (selector, rule) pairs as for "lrp", where a pair may also name an
            attention treatment, "cp" or "attnlrp", for the layers it selects).
        composite: a `rules.composite.Composite` instead of `rule` (its own `attention`
            then applies).
    """

    attention_treatment = None
    _gradient_form = False

    def __init__(self, model, rule="z", composite=None, **kwargs):
        if composite is not None and rule != "z":
            raise ValueError("Give either composite= or rule=, not both.")
        self.rule = rule
        self.composite = composite or Composite.of(rule, attention=self.attention_treatment)
        super().__init__(model, **kwargs)

    def _prepare(self, graph):
        super()._prepare(graph)
        # LRP-0 everywhere: R = x ⊙ g holds at every tensor, so the reverse pass carries
        # the modified gradient g (lxt's efficient form: no division but the identity
        # rule's) and the relevance is the input times it
        self._gradient_form = all(type(r) is Z and r.bias
                                  for r in self._assignment.rules.values())

    @property
    def start(self):
        return "one" if self._gradient_form else "value"

    def reverse_layer_for(self, node):
        if not self._gradient_form:
            return self.relevance_layer_for(node)
        if node.role == EMBEDDING:
            return EmbeddingTimesInputReverse(node)
        if node.role in (SCALE, CONSTANT):
            return HeldConstant(node)
        if node.role == NORM:
            return GatedGradient(node, [1.0])
        if node.role in (PRODUCT, ATTENTION):
            shares = attention_shares if node.role == ATTENTION else factor_shares
            return GatedGradient(node, shares(node, self._signal(self.treatment(node))))
        if node.role == ACTIVATION and node.family == "softmax":
            if self.treatment(node).holds_probabilities:
                return HeldConstant(node)
            return GradientReverse(node)
        if node.role == ACTIVATION:
            return IdentityRuleGradient(node)
        return GradientReverse(node)  # linear layers, sums, routing, max-pooling

    def _postprocess(self, xs, explanations):
        if not self._gradient_form:
            return explanations
        return [e * tf.cast(x, e.dtype) if x.dtype.is_floating else e
                for x, e in zip(xs, explanations)]


@register_analyzer("attnlrp")
class AttnLRP(_TreatedLRP):
    """AttnLRP (Achtibat et al. 2024): products of activations (QKᵀ, attention·V, gated
    MLPs) give each factor half of their relevance, the softmax passes relevance by its
    gradient rule (its Deep Taylor decomposition at the input), normalisations hold their
    scale constant, activations pass relevance unchanged, linear layers use LRP-0
    (`rule`).
    """

    description = "AttnLRP: uniform rule at attention products, softmax by its gradient"
    citation = ATTNLRP_PAPER
    attention_treatment = ATTNLRP


@register_analyzer("cp_lrp")
class ConservativeLRP(_TreatedLRP):
    """CP-LRP (Ali et al. 2022): attention probabilities and normalisation scales held
    constant, so relevance flows through the attention's values only and is conserved;
    activations pass relevance unchanged, linear layers use `rule` (LRP-0 by default).
    """

    description = "CP-LRP: attention probabilities and norm scales held constant"
    citation = CP_PAPER
    attention_treatment = CP
