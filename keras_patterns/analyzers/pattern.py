"""PatternNet and PatternAttribution (paper sections 4.3 and appendix A).

    analyzer = kp.create_analyzer("pattern.attribution", model)
    analyzer.fit(images, batch_size=64)          # or patterns=... at creation
    heatmaps = analyzer.analyze(images)

Kernel layers propagate with the learned patterns (PatternNet: A, PatternAttribution:
W * A, formed once per pattern set); rectifiers pass the signal where the forward unit was
active, max-pooling routes it to the forward argmax, and the reverse pass starts with the
selected output value y. A BatchNormalization right after a kernel layer is folded into
it, so patterns describe the folded kernel and the regime is the normalised output's sign.
After an activation that does not block negative inputs (leaky ReLU, PReLU, ELU, ...)
neurons in the negative regime project back along a_- (times the activation's derivative).
"""

import numpy as np
import tensorflow as tf

from ..errors import PatternFileError
from ..graph import ACTIVATION, ATTENTION, KERNEL, NORM, PRODUCT, SCALE
from ..innvestigate import patterns_from_list
from ..patterns.estimators import ESTIMATORS, estimator
from ..patterns.fit import fit_patterns
from ..patterns.identity import fingerprints, layout, pattern_keys, probe
from ..patterns.patterns import Patterns, check_fit
from ..reverse import GatedGradient, HeldConstant, NormPattern, PatternReverse
from ..rules.attention import CP, Signal, attention_shares, factor_shares
from .catalog import register_analyzer
from .reverse import ReverseAnalyzer

PAPER = ("Kindermans, Schuett, Alber, Mueller, Erhan, Kim and Daehne, Learning how to explain "
         "neural networks: PatternNet and PatternAttribution, ICLR 2018")


class _PatternAnalyzer(ReverseAnalyzer):
    """Shared parameters of PatternNet and PatternAttribution.

    Args:
        patterns: `Patterns` (`kp.compute_patterns`), the path of a saved patterns file, or
            iNNvestigate 1.x's list of arrays (one per kernel layer in model order, used for
            every regime). A file is read in float32, the precision the reverse pass
            uses, so `analyzer.patterns` then holds float32 arrays (`kp.load_patterns`
            reads them as stored). Without it, call `fit(data)` before `analyze` (except for the
            unfitted pattern types "filter" and "random").
        pattern_type: the signal estimator, "relu" (S_a+-, default), "relu.eq8", "linear"
            (S_a), "filter" (S_w) or "random" (`keras_patterns.patterns.estimators`).
        rescale: divide the signal by its largest magnitude per sample after each kernel
            layer's back-projection (off by default). On a chain of layers the rescaled
            explanation is a positive per-sample multiple of the plain one; where a tensor
            feeds several layers (residual or inception blocks) the branches' signals are
            rescaled separately before they are summed, which changes their relative weight.
    """

    start = "value"
    attribution = False
    needs_fit = True
    fold_batchnorm = True
    citation = PAPER

    def __init__(self, model, patterns=None, pattern_type="relu", rescale=False, **kwargs):
        if rescale not in (True, False):
            raise ValueError(f"rescale must be True or False, got {rescale!r}.")
        self.rescale = bool(rescale)
        self.estimator = estimator(pattern_type)
        self.needs_fit = self.estimator.needs_fit
        self.pattern_type = pattern_type
        self.patterns = None
        self._given_patterns = patterns
        super().__init__(model, **kwargs)

    @classmethod
    def needs_fit_with(cls, pattern_type="relu", **kwargs):
        return estimator(pattern_type).needs_fit

    @property
    def is_fitted(self):
        return self.patterns is not None

    def _prepare(self, graph):
        super()._prepare(graph)
        self._keys = pattern_keys(graph)
        self._entries = layout(graph, self._keys)
        # key -> {array name -> the kernel the reverse pass uses: A, or W * A}, created by
        # the first `set_patterns` (or as zeros by a reverse model built before it)
        self._kernels = {}
        patterns, self._given_patterns = self._given_patterns, None
        if patterns is not None:
            self.set_patterns(patterns)
        elif not self.needs_fit:
            self.set_patterns(fit_patterns(graph, None, self.pattern_type))

    def fit(self, data, batch_size=32, steps=None, verbose=0, strategy=None,
            negative_patterns="used", precision="float32", checkpoint=None,
            checkpoint_every=100, epochs=1, disable_no_training_warning=None,
            max_queue_size=None, workers=None, use_multiprocessing=None):
        """Fit the patterns on `data`.

        Args:
            data: arrays, (x, y), a tf.data.Dataset, a generator or a PyDataset.
            batch_size: samples per batch of arrays (see `kp.compute_patterns`).
            steps: at most this many batches.
            verbose: 1 shows a progress bar.
            strategy: a `tf.distribute` strategy whose replicas share every batch.
            negative_patterns: "used" (a_minus where the negative regime passes a
                signal) or "all".
            precision: "float32" (batch sums around fixed shifts) or "float64".
            checkpoint: a file that makes the fit resumable.
            checkpoint_every: batches between two checkpoints.
            epochs: iNNvestigate's; must be 1 (patterns are statistics of one pass).
            disable_no_training_warning: iNNvestigate's; without effect.
            max_queue_size: iNNvestigate's; without effect (a tf.data pipeline reads
                data in parallel).
            workers: iNNvestigate's; without effect.
            use_multiprocessing: iNNvestigate's; without effect.

        Returns:
            self.
        """
        if epochs != 1:
            raise ValueError(f"epochs={epochs!r}: patterns are sufficient statistics of one "
                             "pass over the data; more passes add nothing.")
        self.set_patterns(fit_patterns(
            self.graph, data, self.pattern_type, batch_size=batch_size, steps=steps,
            verbose=verbose, output_index=self.output_index, strategy=strategy,
            negative_patterns=negative_patterns, precision=precision, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every))
        return self

    def set_patterns(self, patterns):
        """Use `patterns`: `Patterns`, the path of a saved patterns file (read in float32),
        or iNNvestigate 1.x's list of arrays.

        Raises:
            PatternFileError: patterns that do not fit this model (layers, shapes, type, the
                negative regime's patterns where they are needed, other weights).
        """
        if isinstance(patterns, (list, tuple)):
            patterns = patterns_from_list(patterns, self._entries, self.pattern_type,
                                          self.estimator.arrays)
        elif not isinstance(patterns, Patterns):
            from ..patterns.storage import load_patterns

            # read in float32, the precision of the kernels the reverse pass reads: the
            # analyzer then holds half the memory a float64 copy would (W * A is still
            # formed in float64 from these values)
            patterns = load_patterns(patterns, self.model, dtype="float32")
        check_fit(patterns, self._entries, "The patterns")
        theirs = ESTIMATORS.get(patterns.pattern_type)
        if theirs is None or theirs.arrays != self.estimator.arrays:
            raise PatternFileError(
                f"The patterns are of type {patterns.pattern_type!r}; this analyzer was "
                f"created with pattern_type={self.pattern_type!r}.")
        if self.estimator.two_component:
            lacking = sorted({key for node, key in self._keys.items()
                              if not self.graph.only_rectifiers_consume(node)
                              and "a_minus" not in patterns[key]})
            if lacking:
                raise PatternFileError(
                    f"The patterns lack 'a_minus' for the layer(s) {', '.join(lacking)}, whose "
                    "negative regime passes a signal (no rectifier follows).")
        if patterns.fingerprint is not None:
            arch, weights = fingerprints(self._entries)
            if patterns.fingerprint[0] != arch:
                raise PatternFileError(
                    "The patterns were fitted for another architecture (kernel layers, their "
                    "order or shapes differ from this model's).")
            if patterns.fingerprint[1] != weights:
                raise PatternFileError(
                    "The patterns were fitted for other weights of this model (was it trained "
                    "since?); refit them: analyzer.fit(data).")
        for _, key, kmap in self._entries:
            w = np.asarray(tf.convert_to_tensor(kmap.kernel)) if self.attribution else None
            for name, a in patterns[key].items():
                # A, or W * A formed in float64 and rounded once, written straight into
                # the float32 array the reverse pass reads (one kernel-sized allocation)
                kernel = np.empty(np.shape(a), np.float32)
                if w is None:
                    kernel[...] = a
                else:
                    np.multiply(a, w, out=kernel, dtype=np.float64, casting="unsafe")
                self._set_kernel(key, name, kernel)
        self.patterns = patterns
        self._probe = probe(self._entries)

    def _before_analyze(self):
        """Refuse patterns whose model has changed its weights since (a sampled check);
        recompute the unfitted types, which follow the weights."""
        if self.patterns is None:
            raise PatternFileError(
                f"'{self.name}' needs patterns: call analyzer.fit(data) first, or create it "
                "with patterns=<Patterns, path or list>.")
        if self.patterns.fingerprint is None:
            return
        now = probe(self._entries)
        changed = [key for key, v in now.items() if not np.array_equal(v, self._probe[key])]
        if changed and not self.needs_fit:
            self.set_patterns(fit_patterns(self.graph, None, self.pattern_type))
        elif changed:
            raise PatternFileError(
                f"The weights of layer(s) {', '.join(changed[:3])} changed since the patterns "
                f"were fitted; patterns describe the weights they were fitted for: refit them "
                "(analyzer.fit(data)).")

    def _set_kernel(self, key, name, value):
        """Hold `value` as `key`'s reverse kernel `name`. A variable once created is kept
        for the analyzer's life (the reverse layers read it), so new patterns are assigned
        in place; it is created from the first value, without a zero-filled copy first."""
        kernels = self._kernels.setdefault(key, {})
        if name in kernels:
            kernels[name].assign(value)
        else:
            kernels[name] = tf.Variable(value, trainable=False, name=name)

    def _kernel_variables(self, key, shape, gated):
        """{array name -> variable} of `key`'s reverse layer, zeros for those no patterns
        have set yet (a reverse model built before `set_patterns`). Behind rectifiers only
        (`gated`) a two-component layer never reads a_minus."""
        names = [n for n in self.estimator.arrays if not (gated and n == "a_minus")]
        for name in names:
            if name not in self._kernels.get(key, {}):
                self._set_kernel(key, name, tf.zeros(shape))
        return self._kernels[key]

    def _gated_reverse(self, node):
        """Through attention and products the signal passes as the gradient does with the
        attention probabilities and normalisation scales held constant (per-sample gates,
        as a rectifier's mask is): to the values, not to the queries and keys. Through a
        LayerNormalization, along its pattern (`reverse.NormPattern`)."""
        if node.role == SCALE or node.role == ACTIVATION:  # a scale; the softmax
            return HeldConstant(node)
        if node.role == NORM:
            return NormPattern(node, self.attribution)
        if self._signal is None:
            self._signal = Signal(self.graph, CP)
        shares = (attention_shares if node.role == ATTENTION else factor_shares)(
            node, self._signal)
        return GatedGradient(node, [1.0 if share > 0 else 0.0 for share in shares])

    _signal = None

    def reverse_layer_for(self, node):
        if node.role in (PRODUCT, ATTENTION, NORM, SCALE) or (
                node.role == ACTIVATION and node.family == "softmax"):
            return self._gated_reverse(node)
        if node.role == KERNEL:
            gated = self.graph.only_rectifiers_consume(node)
            kernels = self._kernel_variables(self._keys[node], node.kernel_map.kernel.shape,
                                             gated)
            return PatternReverse(node, kernels, gated, self.rescale)
        return super().reverse_layer_for(node)


@register_analyzer("pattern.net")
class PatternNet(_PatternAnalyzer):
    """PatternNet: the signal, back-projected along the patterns (paper A.2.3).

    The signal travels with a per-sample scale (`reverse.scaled`): the result is the
    estimated signal in input units (on the paper's toy data exactly a_s y) wherever
    float32 holds it, and that signal up to one positive factor per sample where it would
    over- or underflow (deep networks); the display x / (2 max|x|) + 1/2 removes the factor.
    """

    returns = "signal"
    description = "PatternNet: signal back-projected along learned patterns"

    @property
    def scaled_signal(self):
        """Unless `rescale` already normalises the signal after every kernel layer."""
        return not self.rescale


@register_analyzer("pattern.attribution")
class PatternAttribution(_PatternAnalyzer):
    """PatternAttribution: contributions w * a of the signal (paper A.3.3), in the units of
    the explained output."""

    description = "PatternAttribution: attribution with learned patterns (W * A)"
    attribution = True
