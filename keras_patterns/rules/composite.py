"""Composites: which LRP rule at which layer, and the named presets as data.

A `Composite` assigns a rule to every kernel node (BatchNormalization folded in) and every
element-wise affine node of a canonized graph:

- the input-layer rule to the kernel layers fed by a model input through preprocessing
  (element-wise affine and routing layers, `Graph.input_chain`); the affine layers of that
  preprocessing pass the relevance unchanged (`Pass`), so the input-layer rule sees the
  pixels through them;
- the until-layer rule to the kernel layers at positions 0..until_layer_idx;
- the BatchNormalization rule to BatchNormalization layers that follow no kernel layer;
- else the first entry whose selector matches, else the default rule.

It also assigns an attention treatment (`rules.attention`: "cp" or "attnlrp") to every
product of activations, fused attention and softmax: the first entry whose selector matches
and whose rule is a treatment name, else `attention` (default "cp"). So
``[("encoder_0/*", "attnlrp"), (keras.layers.Dense, "epsilon")]`` mixes both kinds.

A selector is a glob on the layer name ("block1_*"), a Keras layer class, an int position
(the layer's index among the model's layer calls in call order, nested models inlined,
inputs not counted; negative counts from the end), a function of the layer, or `KERNELS`
(every kernel layer). Entries may also be a plain list of rules: one per kernel layer, in
order.
"""

import fnmatch
from dataclasses import dataclass, field

import keras

from ..graph import AFFINE, KERNEL
from .attention import attends, is_treatment, treatment_from
from .catalog import PRESETS, is_bounds, register_preset, rule_from  # noqa: F401 - PRESETS
from .lrp import AlphaBeta, Epsilon, Flat, Pass, Rule


class _Kernels:
    """The selector of every kernel layer."""

    def __repr__(self):
        return "KERNELS"


KERNELS = _Kernels()


def matches(selector, node, graph):
    """Whether a composite selector picks the layer behind `node`."""
    name, layer = node.source, node.op
    if selector is KERNELS:
        return node.role == KERNEL
    if isinstance(selector, str):
        short = name.rsplit("/", 1)[-1]
        return fnmatch.fnmatchcase(name, selector) or fnmatch.fnmatchcase(short, selector)
    if isinstance(selector, type):
        return isinstance(layer, selector)
    if isinstance(selector, int) and not isinstance(selector, bool):
        position = graph.position(node)
        return position is not None and position == selector % len(graph.layer_order)
    if callable(selector):
        return bool(selector(layer))
    raise ValueError(
        f"A composite selector must be a name pattern, a layer class, an int position, a "
        f"function of the layer or KERNELS; got {selector!r}.")


@dataclass
class Assignment:
    """A composite applied to one graph: node -> rule, and for the input layers that got
    the input-layer rule the preprocessing nodes before them (node -> [nodes])."""

    rules: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    treatments: dict = field(default_factory=dict)


class Composite:
    """Which rule at which layer (see the module doc).

    Args:
        entries: [(selector, rule)] (first match wins), or a list of rules, one per kernel
            layer in order. A rule is a name, a `Rule` or (low, high) for the bounded rule.
        default: the rule of layers no entry selects.
        input_layer: the rule of the input layers, or None.
        until_layer_idx: the last position (counted in the model's layer calls) whose
            kernel layers use `until_layer` (give both or neither).
        until_layer: the rule of the kernel layers at positions 0..until_layer_idx.
        batchnorm: the rule of BatchNormalization layers that follow no kernel layer.
        attention: the attention treatment ("cp" or "attnlrp", `rules.attention`) of the
            products, fused attention and softmax no (selector, treatment) entry selects.
    """

    def __init__(self, entries=(), default="z", input_layer=None, until_layer_idx=None,
                 until_layer=None, batchnorm=None, attention="cp"):
        entries = list(entries)
        self.per_kernel_layer = None
        self.entries = []
        self.attention = treatment_from(attention)
        pairs = [e for e in entries
                 if isinstance(e, tuple) and len(e) == 2 and is_treatment(e[1])]
        self.attention_entries = [(selector, treatment_from(t)) for selector, t in pairs]
        entries = [e for e in entries if not any(e is p for p in pairs)]
        if entries and all(not isinstance(e, tuple) or is_bounds(e) for e in entries):
            self.per_kernel_layer = [rule_from(r) for r in entries]
        else:
            for entry in entries:
                if not (isinstance(entry, tuple) and len(entry) == 2):
                    raise ValueError(
                        f"A composite entry must be a (selector, rule) pair, got {entry!r}.")
                self.entries.append((entry[0], rule_from(entry[1])))
        if (until_layer_idx is None) != (until_layer is None):
            raise ValueError("until_layer_idx and until_layer_rule go together.")
        self.default = rule_from(default)
        self.input_layer = None if input_layer is None else rule_from(input_layer)
        self.until_layer_idx = until_layer_idx
        self.until_layer = None if until_layer is None else rule_from(until_layer)
        self.batchnorm = None if batchnorm is None else rule_from(batchnorm)

    @classmethod
    def of(cls, rule, **kwargs):
        """The composite of the `lrp` analyzer's `rule=`: one rule for every layer, a list
        with one rule per kernel layer, or (selector, rule) pairs (z-rule elsewhere)."""
        if isinstance(rule, (list, tuple)) and not is_bounds(rule):
            return cls(rule, **kwargs)
        return cls(default=rule, **kwargs)

    def _selected(self, node, graph, kernel_layers):
        if self.per_kernel_layer is not None:
            if node.role != KERNEL:
                return None
            return self.per_kernel_layer[kernel_layers.index(node.source)]
        return next((rule for selector, rule in self.entries if matches(selector, node, graph)),
                    None)

    def assign(self, graph):
        """The `Assignment` of this composite to a canonized graph."""
        kernel_layers = list(dict.fromkeys(n.source for n in graph.kernel_nodes()))
        if self.per_kernel_layer is not None and len(self.per_kernel_layer) != len(
                kernel_layers):
            raise ValueError(
                f"rule= lists {len(self.per_kernel_layer)} rules for {len(kernel_layers)} "
                f"kernel layers ({', '.join(kernel_layers)}); give one per kernel layer or "
                "(selector, rule) pairs.")
        out = Assignment()
        if self.input_layer is not None:
            for node in graph.kernel_nodes():
                chain = graph.input_chain(node)
                if chain is not None:
                    out.rules[node] = self.input_layer
                    out.preprocessing[node] = chain
                    out.rules.update({n: Pass() for n in chain if n.role == AFFINE})
        for node in graph.nodes:
            if node in out.rules or node.role not in (KERNEL, AFFINE):
                continue
            position = graph.position(node)
            if (node.role == KERNEL and self.until_layer is not None and position is not None
                    and position <= self.until_layer_idx):
                out.rules[node] = self.until_layer
            elif self.batchnorm is not None and node.layer_class == "BatchNormalization":
                out.rules[node] = self.batchnorm
            else:
                out.rules[node] = self._selected(node, graph, kernel_layers) or self.default
        for node in graph.nodes:
            if attends(node):
                out.treatments[node] = next(
                    (t for selector, t in self.attention_entries
                     if matches(selector, node, graph)), self.attention)
        return out

    def __repr__(self):
        parts = [f"entries={self.entries + self.attention_entries or self.per_kernel_layer}",
                 f"default={self.default}", f"attention={self.attention}"]
        for name in ("input_layer", "until_layer_idx", "until_layer", "batchnorm"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)}")
        return f"Composite({', '.join(parts)})"


@dataclass(frozen=True)
class Preset:
    """A named composite: epsilon at Dense layers (and at the affine layers), `conv` at the
    other kernel layers, `input_layer` at the input layers, `until` at the layers up to
    `until_layer_idx` (which the analyzer then needs). Registered with
    `rules.register_preset(name, preset)`, it is the analyzer `name`."""

    conv: Rule
    input_layer: Rule = None
    until: Rule = None

    @property
    def example(self):
        """The keyword arguments of a quick example of its analyzer."""
        return {} if self.until is None else {"until_layer_idx": 1}

    @property
    def description(self):
        """One line on what it assigns."""
        conv = "alpha=1 beta=0" if self.conv.beta == 0 else "alpha=2 beta=1"
        return f"LRP preset: epsilon for dense, {conv} for conv layers" + (
            ", flat at the input layer" if self.input_layer is not None else "") + (
            " and layers 0..until_layer_idx" if self.until is not None else "")

    def composite(self, epsilon=0.1, input_layer_rule=None, until_layer_idx=None,
                  bn_layer_rule=None):
        """The composite of this preset with the analyzer's settings."""
        if self.until is not None and until_layer_idx is None:
            raise ValueError("This preset needs until_layer_idx= (a kernel layer position).")
        return Composite(
            [(keras.layers.Dense, Epsilon(epsilon)), (KERNELS, self.conv)],
            default=Epsilon(epsilon),
            input_layer=self.input_layer if input_layer_rule is None else input_layer_rule,
            until_layer_idx=until_layer_idx if self.until is not None else None,
            until_layer=self.until, batchnorm=bn_layer_rule)


# the sequential presets of iNNvestigate
register_preset("lrp.sequential_preset_a", Preset(AlphaBeta(1.0, 0.0)))
register_preset("lrp.sequential_preset_b", Preset(AlphaBeta(2.0, 1.0)))
register_preset("lrp.sequential_preset_a_flat", Preset(AlphaBeta(1.0, 0.0), Flat()))
register_preset("lrp.sequential_preset_b_flat", Preset(AlphaBeta(2.0, 1.0), Flat()))
register_preset("lrp.sequential_preset_b_flat_until_idx",
                Preset(AlphaBeta(2.0, 1.0), Flat(), Flat()))
