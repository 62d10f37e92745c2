"""Token inputs: the graph cut at the embedding outputs, and the embedding's reverse layers.

A method explains a token input in embedding space. `EmbeddingCut(graph)` splits the
graph at the output of every Embedding fed by a model input: the lookups run first
(`EmbeddingCut.embed`), and the rest of the network is a graph (`EmbeddingCut.body`) whose
inputs are the embedding outputs, float values like any input. Every method then works on
the body as on a model with float inputs (a gradient, input times gradient, LRP relevance
at the embedding output; Integrated Gradients interpolates the embedding output and
SmoothGrad perturbs it), and `EmbeddingCut.per_input` gives each token input its
explanation: the values at its embedding output, (batch, tokens, embedding dimension),
or their sum over the embedding dimension, one value per token.

An Embedding with `mask_zero=True` also masks the layers after it. Its mask is computed
from the token ids, so the body keeps the token input and a node `EmbeddedTokens` after
each such cut, which passes the embedding output on with the mask of its tokens (and the
signal back unchanged).
"""

import keras
import tensorflow as tf

from .._keras import Untracked
from ..graph import EMBEDDING, Graph, Node, Tensors
from .layers import ReverseLayer


class EmbeddingReverse(ReverseLayer):
    """r_token = sum_d r[token, d]: one explanation value per token (for an Embedding not
    fed by a model input, which the cut leaves in the graph)."""

    label = "embedding"
    tape_form = False

    def reverse(self, xs, ys, rs):
        return [tf.reduce_sum(rs[0], axis=-1)]


class EmbeddingTimesInputReverse(ReverseLayer):
    """r_token = sum_d e[token, d] r[token, d]: input times signal in embedding space."""

    label = "embedding_x_input"
    tape_form = False

    def reverse(self, xs, ys, rs):
        return [tf.reduce_sum(ys[0] * rs[0], axis=-1)]


class EmbeddedTokens(keras.layers.Layer):
    """(e, ids) -> e, carrying the mask the embedding computes from the token ids."""

    def __init__(self, embedding, **kwargs):
        super().__init__(name=f"{embedding.name}_tokens", trainable=False, autocast=False,
                         **kwargs)
        self._embedding = Untracked(embedding)
        self.built = True

    def call(self, inputs):
        return tf.identity(inputs[0])

    def compute_mask(self, inputs, previous_mask=None):
        return self._embedding.value.compute_mask(inputs[1])


class PassSignal(ReverseLayer):
    """The reverse of `EmbeddedTokens`: the signal passes to the embedding output."""

    label = "tokens"

    def reverse(self, xs, ys, rs):
        return [rs[0], None]

    def gradient_form(self, xs):
        return self.node.forward(xs)


class EmbeddingCut:
    """A graph cut at the outputs of the Embeddings fed by model inputs.

    Attributes:
        graph: the whole graph.
        lookups: the Embedding nodes fed by a model input, in graph order.
        body: the graph after the lookups: its inputs are the model inputs it still reads
            (a float input, a mask or segment ids used otherwise, the token ids of a
            masking embedding), then one float input per lookup, its output.
        uncut: the Embedding nodes left in the body (fed by a computed tensor).
    """

    def __init__(self, graph):
        self.graph = graph
        feeds = {t.index for t in graph.inputs}
        self.lookups = [n for n in graph.nodes
                        if n.role == EMBEDDING and n.inputs[0].index in feeds]
        self._masks = set()
        self.kept = list(range(len(graph.inputs)))
        if not self.lookups:
            self.body = graph
            self.uncut = [n for n in graph.nodes if n.role == EMBEDDING]
            return
        tensors = Tensors.after(graph)
        nodes = [n for n in graph.nodes if n not in self.lookups]
        values = []
        for lookup in self.lookups:
            (out,) = lookup.outputs
            if not getattr(lookup.op, "mask_zero", False):
                values.append(out)
                continue
            value = tensors.new(out.spec, f"{out.name}/value")
            values.append(value)
            mask = EmbeddedTokens(lookup.op)
            node = Node(name=f"{lookup.name}/tokens", op=mask, inputs=[value, lookup.inputs[0]],
                        outputs=[out], forward=lambda v, mask=mask: [mask(list(v))],
                        layer_name=lookup.source)
            self._masks.add(node.name)
            nodes.insert(0, node)
        read = {t.index for n in nodes for t in n.inputs}
        only_looked_up = {lookup.inputs[0].index for lookup in self.lookups} - read
        self.kept = [i for i, t in enumerate(graph.inputs) if t.index not in only_looked_up]
        self.body = Graph([graph.inputs[i] for i in self.kept] + values, graph.outputs,
                          nodes, graph.layer_order)
        self.uncut = [n for n in nodes if n.role == EMBEDDING]

    @property
    def is_trivial(self):
        """Whether no Embedding is fed by a model input (the body is the graph)."""
        return not self.lookups

    def lookup_of(self, position):
        """The lookup node behind body input `position`, or None for a model input."""
        k = position - len(self.kept)
        return self.lookups[k] if 0 <= k else None

    def reverse_layers(self, reverse_layer_for):
        """`reverse_layer_for` for the body's nodes: the cut's own nodes pass the signal."""
        def layer_for(node):
            return PassSignal(node) if node.name in self._masks else reverse_layer_for(node)
        return layer_for

    def embed(self, xs):
        """The body's input values from the model's input values `xs` (tensors)."""
        if self.is_trivial:
            return list(xs)
        looked_up = [lookup.forward([xs[self.graph.inputs.index(lookup.inputs[0])]])[0]
                     for lookup in self.lookups]
        return [xs[i] for i in self.kept] + looked_up

    def per_input(self, explanations, per_dimension=False):
        """One explanation per model input from one per body input: a token input gets the
        sum over the embedding dimension of the values at its embedding outputs (those
        values themselves with `per_dimension`: concatenated along the last axis where it
        feeds several embeddings); another input, its own explanation."""
        if self.is_trivial:
            return list(explanations)
        out = [None] * len(self.graph.inputs)
        for i, e in zip(self.kept, explanations):
            out[i] = e
        per_token = {}
        for lookup, e in zip(self.lookups, explanations[len(self.kept):]):
            i = self.graph.inputs.index(lookup.inputs[0])
            per_token.setdefault(i, []).append(e)
        for i, parts in per_token.items():
            if per_dimension:
                out[i] = parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
            else:
                out[i] = tf.add_n([tf.reduce_sum(e, axis=-1) for e in parts])
        return out

