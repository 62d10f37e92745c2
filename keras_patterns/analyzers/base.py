"""Analyzer base classes: model checks, input handling, batching and the compiled function."""

import math

import numpy as np
import tensorflow as tf

from ..canonize import prepare
from ..errors import InvalidInputError, NotAnalyzableModelError
from ..reverse import build_reverse_model
from ..rules import EmbeddingRule, GradientRule
from ..selection import check_mode, normalize_index


class Analyzer:
    """Explains one output of a Keras model.

    Parameters shared by every analyzer:
        model: a Keras 3 model (Sequential or Functional, nested models allowed). It is not
            modified.
        neuron_selection_mode: ``"max_activation"`` (default), ``"index"`` or ``"all"``.
        output_index: which model output to explain when the model has several.
        batch_size: `analyze` processes its input in chunks of this many samples.
        jit_compile: compile the analysis with XLA.
    """

    name = None
    description = ""
    #: fold BatchNormalization into the kernel map before it (rules that need the
    #: effective linear map: patterns, LRP)
    fold_batchnorm = False

    def __init__(
        self,
        model,
        neuron_selection_mode="max_activation",
        output_index=None,
        batch_size=64,
        jit_compile=False,
    ):
        self.model = model
        self.neuron_selection_mode = check_mode(neuron_selection_mode)
        self.output_index = output_index
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        self.batch_size = batch_size
        self.jit_compile = bool(jit_compile)
        self.graph = prepare(model, output_index, fold=self.fold_batchnorm)
        self._check_model(self.graph)

    # -- model checks --------------------------------------------------------------------

    def _check_model(self, graph):
        """Raise `NotAnalyzableModelError` for nodes this method cannot explain."""

    def _refuse(self, node, why):
        raise NotAnalyzableModelError(
            f"Layer '{node.name}' ({node.layer_class}) cannot be explained with "
            f"'{self.name}': {why}"
        )

    # -- inputs ---------------------------------------------------------------------------

    @property
    def n_output_units(self):
        shape = self.graph.outputs[0].shape[1:]
        return int(np.prod(shape)) if all(d is not None for d in shape) else None

    def _standardize(self, X):
        """The model inputs as a list of numpy arrays, and whether X was a single array."""
        specs = [t.spec for t in self.graph.inputs]
        single = not isinstance(X, (list, tuple))
        xs = [X] if single else list(X)
        if len(xs) != len(specs):
            raise InvalidInputError(
                f"The model has {len(specs)} inputs "
                f"({', '.join(t.name for t in self.graph.inputs)}); got {len(xs)} arrays."
            )
        out = []
        for x, spec, t in zip(xs, specs, self.graph.inputs):
            x = np.asarray(x)
            want = tuple(spec.shape)
            if x.ndim != len(want) or any(
                w is not None and w != d for w, d in zip(want[1:], x.shape[1:])
            ):
                raise InvalidInputError(
                    f"Input '{t.name}' expects shape {('batch',) + want[1:]}, got an array "
                    f"of shape {x.shape}."
                )
            out.append(x.astype(spec.dtype, copy=False))
        n = {len(x) for x in out}
        if len(n) != 1:
            raise InvalidInputError(
                f"The input arrays have different numbers of samples: "
                f"{[len(x) for x in out]}."
            )
        if n == {0}:
            raise InvalidInputError("analyze() got an empty batch.")
        return out, single

    def _selection(self, neuron_selection, n):
        if self.neuron_selection_mode == "index":
            n_out = self.n_output_units
            return normalize_index(neuron_selection, n, n_out if n_out else np.iinfo("int32").max)
        if neuron_selection is not None:
            raise InvalidInputError(
                "neuron_selection is only used with neuron_selection_mode='index'; this "
                f"analyzer was created with neuron_selection_mode="
                f"'{self.neuron_selection_mode}'."
            )
        return None

    # -- analysis -------------------------------------------------------------------------

    def analyze(self, X, neuron_selection=None, batch_size=None):
        """Explain `X` (one array, or a list with one array per model input).

        Returns an array shaped like `X` (or a list, one per input).
        """
        xs, single = self._standardize(X)
        n = len(xs[0])
        index = self._selection(neuron_selection, n)
        bs = batch_size or self.batch_size
        chunks = []
        for start in range(0, n, bs):
            part = [x[start : start + bs] for x in xs]
            idx = None if index is None else index[start : start + bs]
            chunks.append([np.asarray(e) for e in self._analyze_batch(part, idx)])
        result = [np.concatenate([c[i] for c in chunks]) for i in range(len(xs))]
        return result[0] if single else result

    def _analyze_batch(self, xs, index):
        raise NotImplementedError


class ReverseAnalyzer(Analyzer):
    """An analyzer that propagates a signal back through a reverse model.

    Subclasses choose the start signal (`start`) and the rule of each node (`rule_for`).
    """

    #: Start value at the selected output: "one" (gradient family) or "value" (y).
    start = "one"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self._reverse_model = None
        self._function = None

    def rule_for(self, node):
        """The reverse layer of one forward node."""
        if node.role == "embedding":
            return EmbeddingRule(node)
        return GradientRule(node)

    def _reverse_mode(self):
        return self.neuron_selection_mode

    @property
    def reverse_model(self):
        """The reverse `keras.Model`: inputs (+ neuron index) -> explanation per input."""
        if self._reverse_model is None:
            self._reverse_model = build_reverse_model(
                self.graph,
                self.rule_for,
                self._reverse_mode(),
                self.start,
                name=f"{self.name}_reverse_model".replace(".", "_"),
            )
        return self._reverse_model

    def _explain(self, xs, index):
        """The analysis of one batch on tensors (runs inside the compiled function)."""
        inputs = list(xs) + ([index] if self._reverse_mode() == "index" else [])
        out = self.reverse_model(inputs, training=False)
        return self._postprocess(list(xs), list(out) if isinstance(out, (list, tuple)) else [out])

    def _postprocess(self, xs, explanations):
        return explanations

    def _compiled(self):
        if self._function is None:
            def explain(xs, index):  # one traced function per analyzer
                return self._explain(xs, index)

            self._function = tf.function(
                explain, jit_compile=self.jit_compile, reduce_retracing=True, autograph=False
            )
        return self._function

    def _analyze_batch(self, xs, index):
        fn = self._compiled()
        xs = [tf.convert_to_tensor(x) for x in xs]
        idx = tf.zeros((len(xs[0]),), tf.int32) if index is None else tf.constant(index)
        return fn(xs, idx)


def float_inputs(graph):
    """Indices of graph inputs that are floating point (token inputs are not)."""
    return [i for i, t in enumerate(graph.inputs) if "float" in str(t.dtype)]


def ceil_div(a, b):
    return int(math.ceil(a / b))
