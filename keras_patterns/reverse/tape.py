"""The reverse pass as one tape gradient.

The reverse model (`reverse.model`) is one Keras layer per forward node, each replaying its
node's forward pass inside its own vector-Jacobian product. Where the signal is plain (no
per-sample scale) the same result is one `tf.GradientTape` gradient of a *surrogate forward
pass*: every node is computed once, as its reverse layer's `surrogate`, a function of the
node's inputs with the node's output values whose vector-Jacobian product is the reverse
layer's map:

- the gradient itself: the node's forward function;
- a gate (a held scale, held attention probabilities): the output through
  `tf.stop_gradient`;
- a share s of an input's gradient (AttnLRP's uniform rule at a product):
  x̃ = stop_gradient(x) + s (x - stop_gradient(x)), equal to x, with derivative s;
- the identity rule in gradient form: y + stop_gradient(y / x) (x - stop_gradient(x)),
  equal to y, with derivative y / x;
- any other reverse layer (LRP rules, patterns, rectifier rules): the output values with a
  custom gradient that is the layer's own `reverse`.

TensorFlow sums the signals arriving at a tensor from its consumers before it calls the
custom gradient, as the reverse model does, so both give the same explanation. The tape
form builds about a third of the operations (no forward replays, no Keras layer per node)
and is what the analyzers run; the reverse model stays for what needs each node's signal
(the relevance budget), the scaled signals of PatternNet, and mixed-precision models.
"""

import tensorflow as tf

from .._keras import without_mask
from ..graph import is_floating
from ..selection import NeuronSelection


def gradient_share(x, share):
    """x in value, with derivative `share` (0: held constant, 1: x itself)."""
    if not x.dtype.is_floating or share == 1.0:
        return x
    held = tf.stop_gradient(x)
    if share == 0.0:
        return held
    return held + tf.cast(share, x.dtype) * (x - held)


def with_reverse(xs, ys, reverse):
    """`ys` in value, with the vector-Jacobian product `reverse(rs)` (a list: one signal or
    None per input of `xs`) with respect to the floating inputs of `xs`."""
    floats = [i for i, x in enumerate(xs) if x.dtype.is_floating]
    held = [tf.stop_gradient(y) for y in ys]
    if not floats:
        return held

    @tf.custom_gradient
    def outputs(*inputs):
        def grad(*rs):
            out = reverse(list(rs))
            return [None if out[i] is None else tf.cast(out[i], xs[i].dtype) for i in floats]

        return [tf.identity(y) for y in held], grad

    return list(outputs(*[xs[i] for i in floats]))


class TapePass:
    """The reverse model's explanations as one tape gradient of the surrogate forward pass.

    Args:
        graph: a canonized `graph.Graph` with one output.
        reverse_layer_for: node -> its reverse layer (`ReverseLayer`).
        mode, start: the neuron selection mode and start value (as `build_reverse_model`).

    Call it with the graph's input values (and the neuron index in "index" mode); it
    returns one explanation per graph input.
    """

    def __init__(self, graph, reverse_layer_for, mode, start):
        (self.output,) = graph.outputs
        self.graph = graph
        self.mode = mode
        # a reverse layer for each node a signal reaches, as in the reverse model (a node
        # whose outputs feed only held inputs, or nothing explained, has none: its outputs
        # are held constant)
        receives, layers = {self.output.index}, {}
        for k in reversed(range(len(graph.nodes))):
            node = graph.nodes[k]
            if not any(t.index in receives for t in node.outputs):
                continue
            layers[k] = reverse_layer_for(node)
            silent = set(layers[k].silent_inputs)
            receives.update(t.index for i, t in enumerate(node.inputs) if i not in silent)
        self.steps = [(node, layers.get(k)) for k, node in enumerate(graph.nodes)]
        self.selection = NeuronSelection(mode, start, name="neuron_selection")

    @staticmethod
    def applies(graph):
        """Whether the tape form gives the reverse model's result on `graph`: every floating
        tensor has one dtype, float32 or float64 (the tape carries a signal in its tensor's
        dtype; the reverse model widens half-precision signals to float32)."""
        dtypes = {t.spec.dtype for n in graph.nodes for t in list(n.inputs) + list(n.outputs)
                  if is_floating(t.spec.dtype)}
        dtypes |= {t.spec.dtype for t in graph.inputs if is_floating(t.spec.dtype)}
        return len(dtypes) <= 1 and dtypes <= {"float32", "float64"}

    def surrogate_pass(self, values):
        """The output of the surrogate forward pass from the graph's input values."""
        env = {t.index: v for t, v in zip(self.graph.inputs, values)}
        for node, layer in self.steps:
            xs = [env[t.index] for t in node.inputs]
            if layer is None:
                outs = [tf.stop_gradient(y) for y in node.forward(xs)]
            else:
                outs = layer.surrogate(xs, [env[t.index] for t in layer.context])
            for t, y in zip(node.outputs, outs):
                env[t.index] = without_mask(y)
        return env[self.output.index]

    def __call__(self, inputs):
        n = len(self.graph.inputs)
        values, extra = list(inputs[:n]), list(inputs[n:])
        watched = [v for v in values if v.dtype.is_floating]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            for v in watched:
                tape.watch(v)
            y = self.surrogate_pass(values)
        start = tf.stop_gradient(self.selection([y] + extra))
        grads = tape.gradient(y, watched, output_gradients=tf.cast(start, y.dtype),
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        by_id = {id(v): g for v, g in zip(watched, grads)}
        return [by_id[id(v)] if id(v) in by_id else tf.zeros(tf.shape(v), "float32")
                for v in values]
