"""The analyzer base class: what a method is, model checks, input handling and batching."""

import difflib
import inspect
from typing import Any, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from .. import replicas
from .._warn import warn
from ..canonize import prepare
from ..compiled import compiled
from ..data import features
from ..errors import (
    InvalidInputError,
    NotAnalyzableModelError,
    NumericalError,
    SubclassedModelError,
)
from ..flatten import wrap_model
from ..graph import EMBEDDING, OPAQUE
from ..innvestigate import KEYWORDS, Compatible, accept_keywords
from ..inputs import check_batch_size, in_form, standardize
from ..loading import load_model
from ..roles import unsupported_error
from ..selection import check_mode, normalize_index


class UnknownParameterError(TypeError, ValueError):
    """A keyword argument that the method does not take (a TypeError, as Python raises for
    an unexpected keyword, and a ValueError, as every other bad argument here)."""


class Analyzer(Compatible):
    """Explains one output of a Keras model.

    Args (shared by every analyzer):
        model: a Keras 3 model (Sequential or Functional, nested models allowed; the
            gradient family also takes subclassed models), or the path of a saved `.keras`
            model. It is not modified.
        neuron_selection_mode: "max_activation" (default: per sample, the largest output),
            "index" (`analyze(x, neuron_selection=...)`) or "all".
        output_index: which model output to explain when the model has several.
        batch_size: `analyze` processes its input in chunks of this many samples.
        jit_compile: compile the analysis with XLA.
        allow_lambda_layers: a `keras.layers.Lambda` layer computes arbitrary code, so it is
            refused unless this is True (as in iNNvestigate); then it is reversed by its
            gradient (by every method).
        **innvestigate_keywords: iNNvestigate's constructor keywords, accepted without
            effect so that its code runs unchanged (`keras_patterns.innvestigate.KEYWORDS`).

    Raises:
        NotAnalyzableModelError: a model or layer this method cannot explain, naming it.
        UnknownParameterError: a keyword the method does not take, naming the method's
            parameters and the closest one.

    A subclass describes its method in class attributes (`returns`, `needs_fit`,
    `example`, `citation`, `description`; its name is the one it is registered under) and
    keeps this construction contract: its `__init__` checks and stores its own parameters,
    then calls `super().__init__(model, **kwargs)`, which loads the model and, once the
    model's graph is known (at once; for a subclassed model at the first `analyze`), calls
    `_check_model(graph)` (refuse what the method cannot explain; no state) and then
    `_prepare(graph)` (the state the method derives from the graph). Nothing after
    `super().__init__` may need the graph.
    """

    name = None
    description = ""
    # What the method returns: "signal" (an estimate of the input's signal, in input units,
    # shown projected onto the input's colours: the gradient family's saliency, DeConvNet,
    # Guided Backprop, PatternNet, and the input itself) or "attribution" (each input's
    # share of the explained output, shown as a heat map).
    returns = "attribution"
    # Whether `fit(data)` must run before `analyze` (an instance may differ from its class:
    # the pattern analyzers with an unfitted pattern type need no data; see
    # `needs_fit_with`).
    needs_fit = False
    # Keyword arguments of a quick example on a small CNN with inputs in [0, 1], for the
    # methods that cannot run on the model alone (`keras-patterns check`, the demo).
    example = {}
    # The paper that defines the method.
    citation = ""
    # Fold BatchNormalization into the kernel map before it (rules that need the effective
    # linear map: patterns, LRP).
    fold_batchnorm = False
    # Whether the method reverses layers it has no rule for by their gradient (the gradient
    # family); the others refuse such ("opaque") layers, naming them.
    explains_any_layer = False

    def __init__(self, model, neuron_selection_mode="max_activation", output_index=None,
                 batch_size=64, jit_compile=False, allow_lambda_layers=False,
                 **innvestigate_keywords):
        unknown = accept_keywords(innvestigate_keywords)
        if unknown:
            raise self.unknown_parameter(unknown[0])
        self.model = load_model(model)
        self.allow_lambda_layers = bool(allow_lambda_layers)
        self.neuron_selection_mode = check_mode(neuron_selection_mode)
        self.output_index = output_index
        self.batch_size = check_batch_size(batch_size)
        self.jit_compile = bool(jit_compile)
        self._units = {}
        # the flattened, canonized graph; for a subclassed model None until `analyze` sees
        # the first batch (`_ensure_graph`)
        self.graph = None
        try:
            graph = prepare(self.model, output_index, fold=self.fold_batchnorm)
        except SubclassedModelError:
            if not self.explains_any_layer:
                raise
            return
        self._set_graph(graph)

    # -- what the method is --------------------------------------------------------------

    @classmethod
    def parameters(cls):
        """The method's keyword parameters and their defaults (`inspect.Parameter.empty`
        where none), its own first, then those every analyzer takes: the named parameters
        of each `__init__` along the class chain, as far as they pass on **kwargs."""
        out = {}
        for klass in cls.__mro__:
            if "__signature__" in vars(klass):
                signature = vars(klass)["__signature__"]
            elif "__init__" in vars(klass):
                signature = inspect.signature(vars(klass)["__init__"])
            else:
                continue
            params = list(signature.parameters.values())
            for p in params:
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in (
                        "self", "model"):
                    out.setdefault(p.name, p.default)
            if klass is Analyzer or not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return out

    @classmethod
    def unknown_parameter(cls, name):
        """The error for a keyword argument `name` the method does not take."""
        params = list(cls.parameters())
        close = difflib.get_close_matches(name, params + list(KEYWORDS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        return UnknownParameterError(
            f"'{cls.name}' has no parameter {name!r}{hint} Its parameters are "
            f"{', '.join(params)}.")

    @classmethod
    def needs_fit_with(cls, **kwargs):
        """Whether an instance created with these keyword arguments needs `fit` (the class
        fact, unless the arguments change it: the pattern analyzers' `pattern_type`)."""
        return cls.needs_fit

    @property
    def is_fitted(self):
        """Whether `analyze` can run as far as fitting goes: always for a method that needs
        no fit; a method that needs fit overrides this to say when it has been fitted (the
        pattern analyzers: once their patterns are set)."""
        return not self.needs_fit

    # -- the model's graph ---------------------------------------------------------------

    def _set_graph(self, graph):
        """Check `graph` (layers no rule covers, then `_check_model`), adopt it and derive
        the method's state from it (`_prepare`)."""
        for node in graph.nodes:
            if node.role != OPAQUE:
                continue
            if isinstance(node.op, keras.layers.Lambda):
                if not self.allow_lambda_layers:
                    raise NotAnalyzableModelError(
                        f"Layer '{node.name}' (Lambda) runs arbitrary code; pass "
                        "allow_lambda_layers=True to explain it by its gradient.")
            elif not self.explains_any_layer:
                raise unsupported_error(node, self.name)
        self._check_model(graph)
        self.graph = graph
        self._prepare(graph)

    def _ensure_graph(self, arrays):
        """The one place a graph not built yet is built: for a subclassed model, a tape
        around it shaped by the first batch `arrays` (a list, one array per input)."""
        if self.graph is None:
            arrays = [np.asarray(x) for x in arrays]
            self._set_graph(wrap_model(self.model, arrays).select_output(self.output_index))
        return self.graph

    def _check_model(self, graph):
        """Raise `NotAnalyzableModelError` for nodes this method cannot explain (no state)."""

    def _prepare(self, graph):
        """Derive the method's state from its (checked) graph."""

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

    def _output_units(self, xs):
        """Units of the explained output for inputs shaped like `xs` (for an output whose
        size depends on the input size: found once per input shape by tracing)."""
        n = self.n_output_units
        if n is not None:
            return n
        key = tuple(tuple(x.shape[1:]) for x in xs)
        if key not in self._units:
            specs = [tf.TensorSpec((None,) + k, t.dtype) for k, t in zip(key, self.graph.inputs)]
            traced = compiled(self.graph.evaluate).get_concrete_function(specs)
            shape = traced.structured_outputs[0].shape[1:]
            self._units[key] = int(np.prod(shape)) if shape.is_fully_defined() else None
        return self._units[key]

    def _vocabularies(self):
        """Input index -> vocabulary size of the embedding that input feeds."""
        out = {}
        for i, t in enumerate(self.graph.inputs):
            for node in self.graph.consumers(t):
                if node.role == EMBEDDING:
                    out[i] = min(out.get(i, node.op.input_dim), node.op.input_dim)
        return out

    def _standardize(self, X):
        """The model inputs as a list of checked numpy arrays, and the form X was given in
        (`inputs.as_input_list`)."""
        if self.graph is None:
            self._ensure_graph(X if isinstance(X, (list, tuple)) else [X])
        return standardize(X, self.graph.inputs, self._vocabularies())

    def _selection(self, neuron_selection, xs):
        n = len(xs[0])
        if self.neuron_selection_mode == "index":
            n_out = self._output_units(xs)
            return normalize_index(neuron_selection, n, n_out if n_out else np.iinfo("int32").max)
        if neuron_selection is not None:
            raise InvalidInputError(
                "neuron_selection is only used with neuron_selection_mode='index'; this "
                f"analyzer was created with neuron_selection_mode="
                f"'{self.neuron_selection_mode}'."
            )
        return None

    # -- analysis -------------------------------------------------------------------------

    def fit(self, *args, disable_no_training_warning: bool = False, **kwargs) -> "Analyzer":
        """Learn what the method needs from data (the pattern analyzers: their patterns).

        Analyzers without learned state need no fitting: this is a no-op that warns, as in
        iNNvestigate, unless `disable_no_training_warning`.

        Returns:
            self.
        """
        if not disable_no_training_warning:
            warn(f"'{self.name}' does not need to be trained; fit() does nothing.",
                 RuntimeWarning)
        return self

    def analyze(self, X: Any, neuron_selection: Optional[Union[int, Sequence[int]]] = None,
                batch_size: Optional[int] = None, *, strategy: Any = None) -> Any:
        """Explain `X`.

        Args:
            X: one array, a list with one array per model input, a dict keyed by input
                name, or a `tf.data.Dataset` of such batches (or of (x, y) pairs; labels are
                ignored), streamed batch by batch.
            neuron_selection: with ``neuron_selection_mode="index"``, one int or one int
                per sample.
            batch_size: chunk size of the analysis (default: the analyzer's); under a
                strategy with R replicas each replica explains ceil(batch_size / R) of them.
            strategy: a `tf.distribute` strategy whose replicas share every chunk
                (`replicas`; default: the strategy of the current scope, so ``with
                strategy.scope(): analyzer.analyze(x)`` explains on all its devices). The
                explanation is the one a single device gives.

        Returns:
            An array shaped like `X` (a list or dict of arrays, one per input, for a list or
            dict); with `per_dimension=True` a token input's explanation has the embedding
            dimension last (`ReverseAnalyzer`).

        Raises:
            InvalidInputError: for inputs that do not fit the model (shape, count, dtype,
                NaN or inf, token ids), an empty batch or a bad `neuron_selection`.
        """
        bs = self.batch_size if batch_size is None else check_batch_size(batch_size)
        strategy = replicas.current(strategy)
        if isinstance(X, tf.data.Dataset):
            return self._analyze_dataset(X, neuron_selection, bs, strategy)
        xs, form = self._standardize(X)
        self._before_analyze()
        n = len(xs[0])
        index = self._selection(neuron_selection, xs)
        chunks = []
        for start in range(0, n, bs):
            part = [x[start : start + bs] for x in xs]
            idx = None if index is None else index[start : start + bs]
            chunks.append([np.asarray(e) for e in self._analyze_batch(part, idx, strategy)])
        result = [np.concatenate([c[i] for c in chunks]) for i in range(len(xs))]
        for e in result:
            if e.dtype.kind == "f" and not np.isfinite(e).all():
                sample = int(np.argmax(~np.isfinite(e.reshape(len(e), -1)).all(axis=1)))
                raise NumericalError(
                    f"The '{self.name}' explanation of sample {sample} came out NaN or inf: "
                    "the signal overflowed float32 inside the method (very large weights or "
                    "inputs, or a denominator that cancels to almost zero).")
        return in_form(result, form, self.graph.inputs)

    def _analyze_dataset(self, dataset, neuron_selection, batch_size, strategy):
        """Explain every batch of a tf.data.Dataset; one int or one int per sample (over
        the whole dataset) selects the neurons in index mode. For a subclassed model the
        dataset yields batches, read as Keras reads them: x, or (x, y[, w])."""
        if self.graph is None:
            for first in dataset.take(1):
                self._ensure_graph(features(first, 1))
        if self.graph is None:
            raise InvalidInputError("analyze() got an empty tf.data.Dataset.")
        n_inputs = len(self.graph.inputs)
        rank = len(self.graph.inputs[0].shape)
        first = tf.nest.flatten(features(dataset.element_spec, n_inputs))[0]
        if len(first.shape) == rank - 1:
            dataset = dataset.batch(batch_size)
        if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
            raise InvalidInputError("analyze() got a tf.data.Dataset of infinite cardinality; "
                                    "take a finite part of it (dataset.take(n)).")
        per_sample = neuron_selection is not None and np.ndim(neuron_selection) > 0
        parts, seen = [], 0
        for element in dataset:
            xs = [np.asarray(x) for x in features(element, n_inputs)]
            n = len(xs[0])
            selection = neuron_selection
            if per_sample:
                selection = np.asarray(neuron_selection)[seen : seen + n]
            out = self.analyze(xs if n_inputs > 1 else xs[0], selection, batch_size,
                               strategy=strategy)
            parts.append(out if n_inputs > 1 else [out])
            seen += n
        if not parts:
            raise InvalidInputError("analyze() got an empty tf.data.Dataset.")
        if per_sample and seen != len(neuron_selection):
            raise InvalidInputError(
                f"neuron_selection has {len(neuron_selection)} indices for a dataset of {seen} "
                "samples.")
        result = [np.concatenate([p[i] for p in parts]) for i in range(n_inputs)]
        return result if n_inputs > 1 else result[0]

    def _before_analyze(self):
        """Checks of the analyzer's state before an analysis: fitted if it needs fit."""
        if self.needs_fit and not self.is_fitted:
            raise InvalidInputError(f"'{self.name}' learns from data: call "
                                    "analyzer.fit(data) before analyze.")

    def _analyze_batch(self, xs, index, strategy):
        """The explanation of one chunk: numpy arrays or tensors, one per input."""
        raise NotImplementedError
