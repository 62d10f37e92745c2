"""`Patterns`: the learned patterns of a model, layer by layer."""

from collections.abc import Mapping

import numpy as np

from ..errors import PatternFileError


class Patterns(Mapping):
    """Patterns of a model: layer key -> {"a_plus", "a_minus"} or {"a"} (kernel-shaped
    arrays; "a_minus" where it was estimated, see `compute_patterns`).

    Attributes:
        pattern_type: the estimator ("relu", "relu.eq8", "linear", "filter", "random").
        n_samples: input samples seen while fitting (0 for the unfitted types).
        counts: key -> {"plus": observations per neuron, "minus": ...}.
        dead: key -> number of neurons with a zero pattern.
        layer_names: key -> name of the Keras layer.
        stable_keys: stable key (position and class, used in files) -> key.
        fingerprint: (architecture, weights) fingerprints of the model they were fitted for
            (`identity`), or None where unknown (iNNvestigate 1.x pattern lists).
    """

    def __init__(self, pattern_type, arrays, n_samples=0, counts=None, dead=None,
                 layer_names=None, stable_keys=None, fingerprint=None):
        self.pattern_type = pattern_type
        self._arrays = dict(arrays)
        self.n_samples = int(n_samples)
        self.counts = counts or {}
        self.dead = dead or {}
        self.layer_names = layer_names or {k: k for k in arrays}
        self.stable_keys = stable_keys or {}
        self.fingerprint = fingerprint

    def __getitem__(self, key):
        return self._arrays[key]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __repr__(self):
        return (f"Patterns(type={self.pattern_type!r}, layers={len(self)}, "
                f"samples={self.n_samples})")


def all_finite(a):
    """Whether every entry of `a` is finite. A sum is finite when every entry is (read once,
    nothing allocated); only where it overflowed are the entries checked one by one."""
    return bool(np.isfinite(np.sum(a)) or np.all(np.isfinite(a)))


def check_fit(arrays, entries, where):
    """Refuse pattern arrays (key -> {name: array}) that do not fit the kernel maps of
    `identity.layout` entries: missing layers, other shapes, NaN or inf (naming them)."""
    missing = [entry.key for entry in entries if entry.key not in arrays]
    if missing:
        raise PatternFileError(f"{where}: no patterns for the kernel layer(s) "
                               f"{', '.join(missing)} of this model.")
    for entry in entries:
        key, kernel = entry.key, entry.kernel_map.kernel
        for name, a in arrays[key].items():
            shape = tuple(np.shape(a))
            if shape != tuple(kernel.shape):
                raise PatternFileError(
                    f"{where}: pattern '{name}' of layer '{key}' has shape {shape}, the "
                    f"layer's kernel {tuple(kernel.shape)}.")
            if not all_finite(a):
                raise PatternFileError(
                    f"{where}: pattern '{name}' of layer '{key}' holds NaN or inf; refit the "
                    "patterns on finite data.")
