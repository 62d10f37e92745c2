"""The base of the analyzers that propagate a signal back through a reverse model."""

import tensorflow as tf

from .. import replicas
from ..compiled import compiled
from ..errors import NotAnalyzableModelError
from ..graph import CONSTANT, EMBEDDING
from ..reverse import (
    EmbeddingCut,
    EmbeddingReverse,
    GradientReverse,
    HeldConstant,
    TapePass,
    build_reverse_model,
)
from .base import Analyzer


class ReverseAnalyzer(Analyzer):
    """An analyzer that propagates a signal back through a reverse model.

    A token input (integer ids feeding an Embedding) is explained in embedding space: the
    reverse model starts at the embedding outputs (`reverse.EmbeddingCut`), where each
    method computes its values as for a float input, and a token's explanation is their
    sum over the embedding dimension.

    Args:
        per_dimension: for token inputs, return the values at the embedding output,
            shaped (batch, tokens, embedding dimension), instead of their sum over the
            embedding dimension (one value per token); an input that feeds several
            Embeddings gets their values concatenated along the last axis. Other inputs
            are not affected.

    Subclasses choose the start signal (`start`) and the reverse layer of each node
    (`reverse_layer_for`).
    """

    # Start value at the selected output: "one" (gradient family) or "value" (y).
    start = "one"
    # Carry the signal with a per-sample scale (`keras_patterns.scaled`): exact and finite
    # for reverse passes that are linear in the signal and may over- or underflow.
    scaled_signal = False
    # the reverse model and the compiled function, built on first use
    _reverse_model = None
    _tape_pass = None
    _function = None
    _cut = None

    def __init__(self, model, per_dimension=False, **kwargs):
        self.per_dimension = bool(per_dimension)
        super().__init__(model, **kwargs)

    @property
    def cut(self):
        """The graph cut at the embedding outputs of token inputs (`reverse.EmbeddingCut`):
        the reverse model is built on its body."""
        if self._cut is None or self._cut.graph is not self.graph:
            self._cut = EmbeddingCut(self.graph)
        return self._cut

    def _prepare(self, graph):
        super()._prepare(graph)
        if self.per_dimension and self.cut.uncut:
            node = self.cut.uncut[0]
            raise NotAnalyzableModelError(
                f"Layer '{node.name}' (Embedding) is fed by a computed tensor, not by a model "
                "input: per_dimension=True has no model input to give its values to.")

    def reverse_layer_for(self, node):
        """The reverse layer of one forward node (by default: its gradient; none through a
        value that depends on sizes and integer tensors only)."""
        if node.role == CONSTANT:
            return HeldConstant(node)
        if node.role == EMBEDDING:
            return EmbeddingReverse(node)
        return GradientReverse(node)

    def _reverse_mode(self):
        return self.neuron_selection_mode

    @property
    def reverse_model(self):
        """The reverse `keras.Model` of the graph after the embeddings (`cut.body`): its
        inputs (+ neuron index) -> explanation per input."""
        if self._reverse_model is None:
            self._reverse_model = build_reverse_model(
                self.cut.body,
                self.cut.reverse_layers(self.reverse_layer_for),
                self._reverse_mode(),
                self.start,
                name=f"{self.name}_reverse_model".replace(".", "_"),
                scaled=self.scaled_signal,
            )
        return self._reverse_model

    @property
    def tape_pass(self):
        """The reverse pass as one tape gradient (`reverse.TapePass`), which the analyzer
        runs where it gives the reverse model's result (plain signals, one floating dtype,
        no signal to an integer tensor); None elsewhere."""
        if self._tape_pass is None:
            self._tape_pass = False
            body = self.cut.body
            if not self.scaled_signal and TapePass.applies(body):
                tape_pass = TapePass(body, self.cut.reverse_layers(self.reverse_layer_for),
                                     self._reverse_mode(), self.start)
                if all(layer is None or layer.tape_form for _, layer in tape_pass.steps):
                    self._tape_pass = tape_pass
        return self._tape_pass or None

    def _reverse(self, inputs):
        """The reverse model's explanations of `inputs` (the body's input values, and the
        neuron index in "index" mode): by the tape pass where it applies."""
        if self.tape_pass is not None:
            return self.tape_pass(inputs)
        out = self.reverse_model(inputs, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _explain(self, xs, index):
        """The analysis of one batch on tensors (runs inside the compiled function)."""
        values = self.cut.embed(list(xs))
        inputs = values + ([index] if self._reverse_mode() == "index" else [])
        out = self._reverse(inputs)
        out = self._postprocess(values, list(out) if isinstance(out, (list, tuple)) else [out])
        return self.cut.per_input(out, self.per_dimension)

    def _postprocess(self, xs, explanations):
        """The method's explanations from the reverse model's, at the inputs of the reverse
        model (`cut.body`: a token input's embedding outputs) whose values are `xs`."""
        return explanations

    def _explain_split(self, per_sample):
        return self._explain(per_sample[:-1], per_sample[-1])

    def _compiled(self):
        if self._function is None:
            self._function = replicas.Split(compiled(self._explain_split, self.jit_compile))
        return self._function

    def _analyze_batch(self, xs, index, strategy):
        xs = [tf.convert_to_tensor(x) for x in xs]
        idx = tf.zeros((len(xs[0]),), tf.int32) if index is None else tf.constant(index)
        return self._compiled()(strategy, xs + [idx])
