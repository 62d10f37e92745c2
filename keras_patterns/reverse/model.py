"""Assemble the reverse model of an analyzer.

The reverse model is a `keras.Model` from the model's inputs (plus the neuron index in
``index`` mode) to one explanation per input. Inside, one `ForwardLayer` per forward node
replays the model (calling the user's own layers, so variables are shared and the model is
not modified), a `NeuronSelection` layer makes the start signal at the explained output,
and one reverse layer per forward node carries the signal back. Where a tensor feeds several
nodes, the signals coming back from them are summed.
"""

import keras
import tensorflow as tf

from .._keras import Untracked, without_mask
from ..graph import UniqueNames
from ..selection import NeuronSelection
from . import scaled as scaled_signals


class ForwardLayer(keras.layers.Layer):
    """Replays one forward node of the flattened graph on real tensors."""

    def __init__(self, node, **kwargs):
        super().__init__(
            name="forward__" + node.name.replace("/", "."),
            trainable=False,
            autocast=False,
            **kwargs,
        )
        self._node = Untracked(node)
        self.built = True

    @property
    def node(self):
        return self._node.value

    def call(self, tensors):
        return [without_mask(t) for t in self.node.forward(list(tensors))]

    def compute_output_spec(self, tensors):
        return [keras.KerasTensor(t.spec.shape, dtype=t.spec.dtype) for t in self.node.outputs]


class ZerosLike(keras.layers.Layer):
    """A zero signal for a tensor no reverse path reaches."""

    def __init__(self, **kwargs):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.built = True

    def call(self, x):
        return tf.zeros(tf.shape(x), "float32")

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype="float32")


class Absorbed(keras.layers.Layer):
    """Per sample, the relevance a node keeps: the sum arriving at its outputs minus the sum
    it passes to its inputs (a bias's share, what a non-conservative rule loses)."""

    def __init__(self, n_out, **kwargs):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.n_out = n_out
        self.built = True

    def call(self, signals):
        def total(ts):
            return sum(tf.reduce_sum(tf.reshape(tf.cast(t, "float32"), (tf.shape(t)[0], -1)),
                                     axis=1) for t in ts)
        return total(signals[: self.n_out]) - total(signals[self.n_out:])

    def compute_output_spec(self, signals):
        return keras.KerasTensor((signals[0].shape[0],), dtype="float32")


class SumSignals(keras.layers.Layer):
    """Sum of the signals arriving at one tensor from all nodes that consume it."""

    def __init__(self, **kwargs):
        super().__init__(trainable=False, autocast=False, **kwargs)
        self.built = True

    def call(self, signals):
        total = signals[0]
        for s in signals[1:]:
            total = total + s
        return total

    def compute_output_spec(self, signals):
        return keras.KerasTensor(signals[0].shape, dtype=signals[0].dtype)


def _input_name(tensor, i):
    name = (tensor.name or f"input_{i}").replace("/", ".")
    return name


class _Plain:
    """Signals as they are: a pair (signal, None) per tensor."""

    def __init__(self, named):
        self.named = named

    def start(self, signal):
        return signal, None

    def zeros(self, like):
        return self.named(ZerosLike())(like), None

    def sum(self, pairs, name):
        name = f"sum__{name.replace('/', '.').replace(':', '_')}"
        return self.named(SumSignals(name=name))([r for r, _ in pairs]), None

    def common(self, pairs):
        return [r for r, _ in pairs], None

    def after(self, layer, signal, log_c):
        return signal, None

    def output(self, pair):
        return pair[0]


class _Scaled(_Plain):
    """Signals with a per-sample scale (see `reverse.scaled`): renormalised after
    the reverse layers that change magnitudes (`ReverseLayer.rescales`) and where branches
    meet."""

    def start(self, signal):
        return tuple(self.named(scaled_signals.StartScale(name="start_scale"))(signal))

    def zeros(self, like):
        zeros = self.named(ZerosLike())(like)
        return tuple(self.named(scaled_signals.StartScale(name="zero_scale"))(zeros))

    def sum(self, pairs, name):
        name = f"sum__{name.replace('/', '.').replace(':', '_')}"
        layer = self.named(scaled_signals.ScaledSum(name=name))
        return tuple(layer([r for r, _ in pairs] + [c for _, c in pairs]))

    def common(self, pairs):
        if len(pairs) == 1:
            return [pairs[0][0]], pairs[0][1]
        out = self.named(scaled_signals.Common(name="common_scale"))(
            [r for r, _ in pairs] + [c for _, c in pairs])
        return out[:-1], out[-1]

    def after(self, layer, signal, log_c):
        if not getattr(layer, "rescales", False):
            return signal, log_c
        renormalize = self.named(scaled_signals.Renormalize(name="renormalize"))
        return tuple(renormalize([signal, log_c]))

    def output(self, pair):
        return self.named(scaled_signals.Unscale(name="unscale"))(list(pair))


def _batched(tensor):
    """Whether a graph tensor has the batch axis first (not a size or a weight's value)."""
    return len(tensor.shape) > 0 and tensor.shape[0] is None


def build_reverse_model(graph, reverse_layer_for, mode, start, name="reverse_model",
                        scaled=False, budget=False):
    """Build the reverse model of `graph` (one output).

    Args:
        graph: a canonized `graph.Graph` with one output.
        reverse_layer_for: node -> the reverse layer (`ReverseLayer`) of that node.
        mode: the neuron selection mode (`selection.MODES`).
        start: the start value at the selected output (`selection.STARTS`): "one" (the
            gradient family), "value" (the output value y: signal, attribution and LRP
            methods) or "positive_value" (max(y, 0): Deep Taylor).
        name: the reverse model's name.
        scaled: carry the signal with a per-sample scale (see `reverse.scaled`; for
            reverse passes that are linear in the signal).
        budget: also output, per sample, the total start signal and what each node keeps
            of the signal (`Absorbed`), after the explanations: [start, node 1, node 2,
            ...], the nodes' names in the model's attribute `budget_nodes` (plain signals
            only).

    Returns:
        A `keras.Model` from the graph's inputs (and the neuron index in "index" mode) to
        one explanation per input.
    """
    if budget and scaled:
        raise ValueError("A relevance budget needs plain signals (scaled=False).")
    (output,) = graph.outputs
    names = UniqueNames()

    def named(layer):
        """`layer` under a name no other layer of the reverse model has."""
        layer.name = names.claim(layer.name)
        return layer

    model_inputs = []
    values = {}
    for i, t in enumerate(graph.inputs):
        kt = keras.Input(
            shape=tuple(t.spec.shape)[1:], dtype=t.spec.dtype,
            name=names.claim(_input_name(t, i))
        )
        model_inputs.append(kt)
        values[t.index] = kt
    for node in graph.nodes:
        outs = named(ForwardLayer(node))([values[t.index] for t in node.inputs])
        for t, kt in zip(node.outputs, outs):
            values[t.index] = kt

    selection_inputs = [values[output.index]]
    extra_inputs = []
    if mode == "index":
        index = keras.Input(shape=(), dtype="int32", name=names.claim("neuron_index"))
        extra_inputs.append(index)
        selection_inputs.append(index)
    start_signal = named(NeuronSelection(mode, start, name="neuron_selection"))(
        selection_inputs)
    signals = _Scaled(named) if scaled else _Plain(named)
    arriving = {output.index: [signals.start(start_signal)]}
    kept = {}

    def gather(tensor):
        pairs = arriving.get(tensor.index)
        if not pairs:
            return None
        return pairs[0] if len(pairs) == 1 else signals.sum(pairs, tensor.name)

    for node in reversed(graph.nodes):
        pairs = [gather(t) for t in node.outputs]
        if all(p is None for p in pairs):
            continue  # the explained output does not depend on this node
        pairs = [signals.zeros(values[t.index]) if p is None else p
                 for t, p in zip(node.outputs, pairs)]
        rs, log_c = signals.common(pairs)
        xs = [values[t.index] for t in node.inputs]
        ys = [values[t.index] for t in node.outputs]
        layer = named(reverse_layer_for(node))
        r_ins = layer(xs + ys + rs + [values[t.index] for t in layer.context])
        silent = set(layer.silent_inputs)
        for i, (t, r) in enumerate(zip(node.inputs, r_ins)):
            if i not in silent:  # a held input: no zeros carried further back
                arriving.setdefault(t.index, []).append(signals.after(layer, r, log_c))
        if budget and all(_batched(t) for t in node.outputs):
            kept[node.name] = named(Absorbed(len(rs), name=f"kept__{layer.name}"))(
                list(rs) + [r for i, (t, r) in enumerate(zip(node.inputs, r_ins))
                            if i not in silent and _batched(t)])

    explanations = []
    for t in graph.inputs:
        pair = gather(t)
        explanations.append(signals.output(signals.zeros(values[t.index]) if pair is None
                                           else pair))
    if not budget:
        return keras.Model(model_inputs + extra_inputs, explanations, name=name)
    total = named(Absorbed(1, name="start_total"))([start_signal])
    order = tuple(n.name for n in graph.nodes if n.name in kept)
    model = keras.Model(model_inputs + extra_inputs,
                        explanations + [total] + [kept[n] for n in order], name=name)
    model.budget_nodes = order
    return model
