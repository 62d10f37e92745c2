"""The base of the analyzers that propagate a signal back through a reverse model."""

import tensorflow as tf

from .. import replicas
from ..compiled import compiled
from ..graph import CONSTANT, EMBEDDING
from ..reverse import EmbeddingReverse, GradientReverse, HeldConstant, build_reverse_model
from .base import Analyzer


class ReverseAnalyzer(Analyzer):
    """An analyzer that propagates a signal back through a reverse model.

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
    _function = None

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
        """The reverse `keras.Model`: inputs (+ neuron index) -> explanation per input."""
        if self._reverse_model is None:
            self._reverse_model = build_reverse_model(
                self.graph,
                self.reverse_layer_for,
                self._reverse_mode(),
                self.start,
                name=f"{self.name}_reverse_model".replace(".", "_"),
                scaled=self.scaled_signal,
            )
        return self._reverse_model

    def _explain(self, xs, index):
        """The analysis of one batch on tensors (runs inside the compiled function)."""
        inputs = list(xs) + ([index] if self._reverse_mode() == "index" else [])
        out = self.reverse_model(inputs, training=False)
        return self._postprocess(list(xs), list(out) if isinstance(out, (list, tuple)) else [out])

    def _postprocess(self, xs, explanations):
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
