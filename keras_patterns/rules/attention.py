"""How relevance crosses a transformer's attention, normalisations and products: the two
treatments, CP-LRP and AttnLRP, and the shares of a product's factors.

Inside a transformer the relevance meets operations that are not linear layers:

- a product of two activations (QKᵀ, attention·V, a gated MLP's SiLU(xW₁) ⊙ xW₂): linear
  in each factor when the other is held fixed;
- the attention softmax;
- a normalisation's scale 1/σ (LayerNorm, RMSNorm), computed from the activations.

Both treatments hold the normalisation's scale constant (a gate, as a ReLU's mask is), so
that LayerNorm is linear in its input and its bias β absorbs its share. They differ at the
attention:

- **CP** (conservative propagation; Ali et al., ICML 2022): the attention probabilities are
  held constant too, so attention·V is a weighted sum of the values (linear in V), and the
  relevance flows through the value path only: the queries and keys get none.
- **AttnLRP** (Achtibat et al., ICML 2024): a product of k factors that carry signal gives
  each 1/k of its relevance (the uniform rule; k = 2 for QKᵀ and attention·V), and the
  softmax passes relevance by its gradient rule R_in = x ⊙ Jᵀ (R_out / y), its Deep Taylor
  decomposition at the input (not conservative: what it loses is the softmax's own
  "bias").

A factor "carries signal" when it depends on a floating-point model input or an embedding
through operations none of which is held constant; a factor that does not (a mask computed
from integer inputs, a normalisation scale, under CP the attention probabilities) gets no
relevance, and the others share all of it.
"""

from dataclasses import dataclass

from ..errors import NotAnalyzableModelError
from ..graph import ACTIVATION, ATTENTION, CONSTANT, EMBEDDING, PRODUCT, SCALE
from ..roles import QUOTIENTS

CP_PAPER = ("Ali, Schnake, Eberle, Montavon, Mueller and Wolf, XAI for transformers: better "
            "explanations through conservative propagation, ICML 2022")
ATTNLRP_PAPER = ("Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin and Samek, AttnLRP: "
                 "attention-aware layer-wise relevance propagation for transformers, ICML 2024")


@dataclass(frozen=True)
class Treatment:
    """How the relevance crosses attention (see the module doc).

    Attributes:
        name: "cp" or "attnlrp".
        holds_probabilities: whether the attention probabilities (softmax outputs) are held
            constant.
        citation: the paper that defines it.
    """

    name: str
    holds_probabilities: bool
    citation: str

    def __repr__(self):
        return repr(self.name)


CP = Treatment("cp", True, CP_PAPER)
ATTNLRP = Treatment("attnlrp", False, ATTNLRP_PAPER)
TREATMENTS = {t.name: t for t in (CP, ATTNLRP)}
"""The attention treatments by name."""


def is_treatment(spec):
    """Whether `spec` names an attention treatment (or is one)."""
    return isinstance(spec, Treatment) or (isinstance(spec, str) and spec in TREATMENTS)


def treatment_from(spec):
    """The `Treatment` of a name ("cp", "attnlrp") or a Treatment."""
    if isinstance(spec, Treatment):
        return spec
    if isinstance(spec, str) and spec in TREATMENTS:
        return TREATMENTS[spec]
    raise ValueError(f"Unknown attention treatment {spec!r}: give one of "
                     f"{', '.join(map(repr, TREATMENTS))}.")


def attends(node):
    """Whether a node is one a treatment decides: a product, fused attention, a softmax."""
    return node.role in (PRODUCT, ATTENTION) or (
        node.role == ACTIVATION and node.family == "softmax")


class Signal:
    """Which tensors of a graph carry signal under a treatment (one pass over the graph)."""

    def __init__(self, graph, treatment):
        self.treatment = treatment
        self._carries = {t.index: t.is_floating for t in graph.inputs}
        for node in graph.nodes:  # producers before consumers
            for t in node.outputs:
                self._carries[t.index] = self._decide(node, t)

    def carries(self, tensor):
        """Whether `tensor` depends on the model's floating-point inputs or an embedding
        through operations none of which the treatment holds constant."""
        return self._carries.get(tensor.index, False)

    def _decide(self, node, tensor):
        if not tensor.is_floating:
            return False
        if node.role == EMBEDDING:
            return True
        held = node.role in (SCALE, CONSTANT) or (
            node.role == ACTIVATION and node.family == "softmax"
            and self.treatment.holds_probabilities)
        if held:
            return False
        inputs = node.inputs
        if node.role == PRODUCT and node.layer_class in QUOTIENTS and node.slots:
            inputs = [node.inputs[node.slots[0]]]  # a quotient carries its numerator's
        return any(self.carries(t) for t in inputs)


def factor_shares(node, signal):
    """The share of a product's relevance each of its inputs gets (one per `node.inputs`).

    Each tensor argument of the product is a factor; the factors that carry signal share the
    relevance equally (1/k each for k of them; an input passed twice, as in x * x, holds two
    factors: 2/k), the others get none. A quotient's denominator is held constant.
    """
    slots = node.slots or tuple(range(len(node.inputs)))
    if node.layer_class in QUOTIENTS:
        slots = slots[:1]
    live = [i for i in slots if signal.carries(node.inputs[i])]
    return [live.count(i) / len(live) if live else 0.0 for i in range(len(node.inputs))]


def attention_shares(node, signal):
    """The shares of fused attention softmax(s QKᵀ + mask) V's inputs (query, key, value
    are its first three arguments): CP gives the value all of it; AttnLRP applies the
    uniform rule at both products, so the value gets 1/2, the query and the key 1/4 each
    (a factor that carries no signal passes its part to the others). Masks and biases get
    none."""
    slots = node.slots or tuple(range(len(node.inputs)))
    if len(slots) < 3:
        raise NotAnalyzableModelError(
            f"Layer '{node.name}' ({node.layer_class}): attention needs a query, a key and a "
            f"value, got {len(slots)} tensor argument(s).")
    q, k, v = slots[:3]
    if v in (q, k):
        raise NotAnalyzableModelError(
            f"Layer '{node.name}' ({node.layer_class}) attends with the same tensor as value "
            "and as query or key; its relevance rules need the value apart (project the "
            "value with its own layer).")
    live = [signal.carries(t) for t in node.inputs]
    shares = [0.0] * len(node.inputs)
    if signal.treatment.holds_probabilities:
        shares[v] = 1.0 if live[v] else 0.0
        return shares
    # the uniform rule at attention·V, then at QKᵀ, among the factors that carry signal
    qk = [i for i in (q, k) if live[i]]
    shares[v] = (0.5 if qk else 1.0) if live[v] else 0.0
    for i in qk:  # q is k: the same input gets both parts
        shares[i] += (0.5 if live[v] else 1.0) / len(qk)
    return shares
