"""PatternNet and PatternAttribution (paper sections 4.3 and appendix A).

    analyzer = kp.create_analyzer("pattern.attribution", model)
    analyzer.fit(images, batch_size=64)          # or patterns=... at creation
    heatmaps = analyzer.analyze(images)

Kernel layers propagate with the learned patterns (PatternNet: A, PatternAttribution:
W * A); rectifiers pass the signal where the forward unit was active, max-pooling routes it
to the forward argmax, and the reverse pass starts with the selected output value y.
A BatchNormalization right after a kernel layer is folded into it, so patterns describe the
folded kernel and the regime is the normalised output's sign. After an activation that does
not block negative inputs (leaky ReLU, PReLU, ELU, ...) neurons in the negative regime
project back along a_- (times the activation's derivative).
"""

import numpy as np
import tensorflow as tf

from ..errors import NotAnalyzableModelError, PatternFileError
from ..patterns import estimators
from ..patterns.fit import Patterns, compute_patterns, pattern_keys, rectified
from ..patterns.identity import fingerprints, layout, probe
from ..rules.pattern import PatternRule
from .base import ReverseAnalyzer


class _PatternAnalyzer(ReverseAnalyzer):
    """Shared parameters of PatternNet and PatternAttribution.

    patterns: a `Patterns` object (`kp.compute_patterns`) or the path of a saved patterns
        file; without it, call `fit(data)` before `analyze` (except for the unfitted
        pattern types "filter" and "random").
    pattern_type: the signal estimator, "relu" (S_a+-, default), "relu.eq8", "linear"
        (S_a), "filter" (S_w) or "random" (see `keras_patterns.patterns.estimators`).
    rescale: divide the signal by its largest magnitude per sample after each kernel
        layer's back-projection. In a very deep network the back-projected signal can shrink
        or grow geometrically with depth (each layer superposes the signals of its neurons)
        until float32 underflows or overflows; rescaling keeps it near 1. On a chain of
        layers (no branches) the rescaled explanation is a positive per-sample multiple of
        the plain one; where a tensor feeds several layers (residual or inception blocks)
        the branches' signals are rescaled separately before they are summed, which
        changes their relative weight.
    """

    start = "value"
    attribution = False
    fold_batchnorm = True

    def __init__(self, model, patterns=None, pattern_type="relu", rescale=False, **kwargs):
        if rescale not in (True, False):
            raise ValueError(f"rescale must be True or False, got {rescale!r}.")
        self.rescale = bool(rescale)
        if pattern_type not in estimators.PATTERN_TYPES:
            raise ValueError(
                f"pattern_type={pattern_type!r} is not one of "
                f"{', '.join(map(repr, estimators.PATTERN_TYPES))}.")
        self.pattern_type = pattern_type
        super().__init__(model, **kwargs)
        self._keys = pattern_keys(self.graph)
        names = ("a_plus", "a_minus") if pattern_type in estimators.RELU_TYPES else ("a",)
        self._variables = {}
        for node, key in self._keys.items():
            shape = tuple(node.info["kernel_map"].kernel.shape)
            self._variables.setdefault(key, {
                name: tf.Variable(tf.zeros(shape), trainable=False, name=name)
                for name in names})
        self.patterns = None
        if patterns is not None:
            self.set_patterns(patterns)
        elif pattern_type not in estimators.FITTED_TYPES:
            self.set_patterns(compute_patterns(model, None, pattern_type, graph=self.graph))

    def fit(self, data, batch_size=32, steps=None, verbose=0, strategy=None,
            negative_patterns="used", precision="float32", checkpoint=None,
            checkpoint_every=100, epochs=1, disable_no_training_warning=None,
            max_queue_size=None, workers=None, use_multiprocessing=None):
        """Fit the patterns on `data` (arrays, (x, y), tf.data, generator or PyDataset);
        see `kp.compute_patterns` for the parameters. Returns self.

        iNNvestigate's `epochs` (one pass: 1), `max_queue_size`, `workers`,
        `use_multiprocessing` and `disable_no_training_warning` are accepted and have no
        effect (a tf.data pipeline is the way to read data in parallel)."""
        if epochs != 1:
            raise ValueError(f"epochs={epochs!r}: patterns are sufficient statistics of one "
                             "pass over the data; more passes add nothing.")
        self.set_patterns(compute_patterns(
            self.model, data, self.pattern_type, batch_size=batch_size, steps=steps,
            verbose=verbose, strategy=strategy, graph=self.graph,
            negative_patterns=negative_patterns, precision=precision, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every))
        return self

    def set_patterns(self, patterns):
        """Use `patterns`: a `Patterns` object, the path of a saved patterns file, or
        iNNvestigate 1.x's list of arrays (one per kernel layer in model order, used for
        every regime)."""
        if isinstance(patterns, (list, tuple)):
            patterns = self._from_list(patterns)
        elif not isinstance(patterns, Patterns):
            from ..patterns.storage import load_patterns

            patterns = load_patterns(patterns, self.model)
        needed = sorted(set(self._keys.values()))
        missing = [k for k in needed if k not in patterns]
        if missing:
            raise NotAnalyzableModelError(
                f"The patterns lack the kernel layer(s) {', '.join(missing)} of this model.")
        for key in needed:
            kmap = next(n for n, k in self._keys.items() if k == key).info["kernel_map"]
            for name, a in patterns[key].items():
                if tuple(a.shape) != tuple(kmap.kernel.shape):
                    raise NotAnalyzableModelError(
                        f"Pattern '{name}' of layer '{key}' has shape {tuple(a.shape)}, the "
                        f"layer's kernel {tuple(kmap.kernel.shape)}.")
        if self.pattern_type in estimators.RELU_TYPES:
            lacking = sorted({key for node, key in self._keys.items()
                              if not self._gated(node) and "a_minus" not in patterns[key]})
            if lacking:
                raise NotAnalyzableModelError(
                    f"The patterns lack 'a_minus' for the layer(s) {', '.join(lacking)}, whose "
                    "negative regime passes a signal (no rectifier follows).")
        if patterns.pattern_type != self.pattern_type and (
                (patterns.pattern_type in estimators.RELU_TYPES)
                != (self.pattern_type in estimators.RELU_TYPES)):
            raise NotAnalyzableModelError(
                f"The patterns are of type {patterns.pattern_type!r}; this analyzer was "
                f"created with pattern_type={self.pattern_type!r}.")
        entries = layout(self.graph, self._keys)
        if patterns.fingerprint is not None:
            arch, weights = fingerprints(entries)
            if patterns.fingerprint[0] != arch:
                raise PatternFileError(
                    "The patterns were fitted for another architecture (kernel layers, their "
                    "order or shapes differ from this model's).")
            if patterns.fingerprint[1] != weights:
                raise PatternFileError(
                    "The patterns were fitted for other weights of this model (was it trained "
                    "since?); refit them: analyzer.fit(data).")
        for key in needed:
            for name, a in patterns[key].items():
                self._variables[key][name].assign(np.asarray(a, np.float32))
        self.patterns = patterns
        self._probe = probe(entries)

    def _from_list(self, arrays):
        """iNNvestigate 1.x's pattern list as `Patterns` (no fingerprint: it cannot be
        checked against the weights)."""
        entries = layout(self.graph, self._keys)
        if len(arrays) != len(entries):
            raise PatternFileError(
                f"Got {len(arrays)} patterns for the {len(entries)} kernel layers of this "
                f"model ({', '.join(key for _, key, _ in entries)}): give one per kernel "
                "layer, in model order.")
        out = {}
        for (_, key, kmap), a in zip(entries, arrays):
            a = np.asarray(a)
            if a.shape != tuple(kmap.kernel.shape):
                raise PatternFileError(
                    f"The pattern for layer '{key}' has shape {a.shape}, its kernel "
                    f"{tuple(kmap.kernel.shape)}.")
            relu = self.pattern_type in estimators.RELU_TYPES
            out[key] = {"a_plus": a, "a_minus": a} if relu else {"a": a}
        return Patterns(self.pattern_type, out,
                        stable_keys={stable: key for stable, key, _ in entries})

    def _before_analyze(self):
        """Refuse patterns whose model has changed its weights since (a sampled check)."""
        if self.patterns is None or self.patterns.fingerprint is None:
            return
        now = probe(layout(self.graph, self._keys))
        changed = [key for key, v in now.items() if not np.array_equal(v, self._probe[key])]
        if changed and self.pattern_type not in estimators.FITTED_TYPES:
            self.set_patterns(compute_patterns(self.model, None, self.pattern_type,
                                               graph=self.graph))  # computed from W alone
        elif changed:
            raise PatternFileError(
                f"The weights of layer(s) {', '.join(changed[:3])} changed since the patterns "
                f"were fitted; patterns describe the weights they were fitted for: refit them "
                "(analyzer.fit(data)).")

    def _gated(self, node):
        """True if only rectifiers consume the node's output (negative regime blocked)."""
        return rectified(self.graph, node)

    def rule_for(self, node):
        if node.role == "kernel":
            return PatternRule(node, self._variables[self._keys[node]], self.attribution,
                               self._gated(node), rescale=self.rescale)
        return super().rule_for(node)

    def _analyze_batch(self, xs, index):
        if self.patterns is None:
            raise NotAnalyzableModelError(
                f"'{self.name}' needs patterns: call analyzer.fit(data) first, or create it "
                "with patterns=<Patterns or path>.")
        return super()._analyze_batch(xs, index)


class PatternNet(_PatternAnalyzer):
    """PatternNet: the signal, back-projected along the patterns (paper A.2.3).

    `rescale` is off by default: the result is then the estimated signal in input units
    (on the paper's toy data exactly a_s y), linear in the start value, and visualisation
    (x / (2 max|x|) + 1/2) removes the per-sample scale anyway. Turn it on for very deep
    networks whose signal vanishes or overflows (at the price noted above for branches).
    """

    name = "pattern.net"
    description = "PatternNet: signal back-projected along learned patterns"

    @property
    def scaled_signal(self):
        """The signal travels with a per-sample scale (`keras_patterns.scaled`) unless
        `rescale` already normalises it after every kernel layer."""
        return not self.rescale


class PatternAttribution(_PatternAnalyzer):
    """PatternAttribution: contributions w * a of the signal (paper A.3.3).

    `rescale` is off by default: contributions are in the units of the explained output.
    """

    name = "pattern.attribution"
    description = "PatternAttribution: attribution with learned patterns (W * A)"
    attribution = True
