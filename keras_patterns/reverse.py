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

from .rules.base import _Holder
from .selection import NeuronSelection


class ForwardLayer(keras.layers.Layer):
    """Replays one forward node of the flattened graph on real tensors."""

    def __init__(self, node, **kwargs):
        super().__init__(
            name="forward__" + node.name.replace("/", "."),
            trainable=False,
            autocast=False,
            **kwargs,
        )
        self._node_holder = _Holder(node)
        self.built = True

    @property
    def node(self):
        return self._node_holder.value

    def call(self, tensors):
        return list(self.node.forward(list(tensors)))

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


def build_reverse_model(graph, rule_for, mode, start, name="reverse_model"):
    """Build the reverse model of `graph` (one output).

    `rule_for(node)` returns the reverse layer for a node; `mode` is the neuron selection
    mode and `start` is ``"one"`` (gradient family) or ``"value"`` (the output value y).
    """
    (output,) = graph.outputs
    model_inputs = []
    values = {}
    for i, t in enumerate(graph.inputs):
        kt = keras.Input(
            shape=tuple(t.spec.shape)[1:], dtype=t.spec.dtype, name=_input_name(t, i)
        )
        model_inputs.append(kt)
        values[t.index] = kt
    for node in graph.nodes:
        outs = ForwardLayer(node)([values[t.index] for t in node.inputs])
        for t, kt in zip(node.outputs, outs):
            values[t.index] = kt

    selection_inputs = [values[output.index]]
    extra_inputs = []
    if mode == "index":
        index = keras.Input(shape=(), dtype="int32", name="neuron_index")
        extra_inputs.append(index)
        selection_inputs.append(index)
    start_signal = NeuronSelection(mode, start, name="neuron_selection")(selection_inputs)

    signals = {output.index: [start_signal]}

    def gather(tensor):
        arriving = signals.get(tensor.index)
        if not arriving:
            return None
        if len(arriving) == 1:
            return arriving[0]
        return SumSignals(name=f"sum__{tensor.name.replace('/', '.').replace(':', '_')}")(
            arriving
        )

    for node in reversed(graph.nodes):
        rs = [gather(t) for t in node.outputs]
        if all(r is None for r in rs):
            continue  # the explained output does not depend on this node
        rs = [ZerosLike()(values[t.index]) if r is None else r for t, r in zip(node.outputs, rs)]
        xs = [values[t.index] for t in node.inputs]
        ys = [values[t.index] for t in node.outputs]
        r_ins = rule_for(node)(xs + ys + rs)
        for t, r in zip(node.inputs, r_ins):
            signals.setdefault(t.index, []).append(r)

    explanations = []
    for t in graph.inputs:
        r = gather(t)
        explanations.append(ZerosLike()(values[t.index]) if r is None else r)
    return keras.Model(model_inputs + extra_inputs, explanations, name=name)
