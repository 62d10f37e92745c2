"""Checkpoints of a running fit: the sufficient statistics so far, written atomically.

`compute_patterns(..., checkpoint="fit.ckpt.h5", checkpoint_every=k)` writes, every k
batches, every accumulator of the statistics pass (sums, counts and the fixed shifts they
are taken around), the number of batches and samples consumed, the fingerprints of the
model and the fit's settings. Started again with the same data and the same checkpoint,
the fit restores the accumulators, skips the batches already counted and goes on: the
float64 additions happen in the same order, so the patterns equal those of an
uninterrupted fit. A checkpoint of another model, other weights or other settings is
refused, naming the difference. The checkpoint is removed when the fit completes.
"""

import json
import os

import numpy as np

from ..errors import PatternFileError
from ..files import atomic_h5, checked_h5
from ..inputs import positive_int

KIND = "keras-patterns fit checkpoint"
FORMAT_VERSION = 1


class Checkpoint:
    """One checkpoint file of one fit.

    settings: a JSON-able dict of what the statistics depend on (pattern type, regimes,
    precision, batch size, ...); fingerprint: (architecture, weights) of the model.
    """

    def __init__(self, path, every, settings, fingerprint):
        self.path = os.fspath(path)
        self.every = positive_int(every, "checkpoint_every")
        self.settings = settings
        self.fingerprint = fingerprint

    def due(self, n_batches):
        return n_batches % self.every == 0

    def write(self, accumulators, n_batches, n_samples):
        """accumulators: stable key -> {name: tf.Variable}."""
        with atomic_h5(self.path, PatternFileError) as f:
            f.attrs["kind"] = KIND
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["architecture"], f.attrs["weights"] = self.fingerprint
            f.attrs["settings"] = json.dumps(self.settings, sort_keys=True)
            f.attrs["n_batches"] = int(n_batches)
            f.attrs["n_samples"] = int(n_samples)
            group = f.create_group("statistics")
            for stable, variables in accumulators.items():
                g = group.create_group(stable)
                for name, v in variables.items():
                    g.create_dataset(name, data=v.numpy())
            f.attrs["complete"] = True

    def restore(self, accumulators):
        """Load the accumulators if the checkpoint exists; returns (batches, samples)
        consumed, (0, 0) without a checkpoint."""
        path = self.path
        if not os.path.exists(path):
            return 0, 0
        with checked_h5(path, "Checkpoint", FORMAT_VERSION, self.fingerprint,
                        PatternFileError, kind=KIND,
                        stale="delete it to fit from the start") as f:
            attrs = dict(f.attrs)
            stored = json.loads(attrs["settings"])
            diff = sorted(k for k in set(stored) | set(self.settings)
                          if stored.get(k) != self.settings.get(k))
            if diff:
                what = ", ".join(f"{k}={stored.get(k)!r} there, {self.settings.get(k)!r} here"
                                 for k in diff)
                raise PatternFileError(
                    f"Checkpoint '{path}' was written by a fit with other settings ({what}); "
                    "resume with the same settings or delete it.")
            try:
                for stable, variables in accumulators.items():
                    g = f["statistics"][stable]
                    for name, v in variables.items():
                        value = g[name][()]
                        if value.shape != tuple(v.shape):
                            raise KeyError(f"{stable}/{name} has shape {value.shape}")
                        v.assign(np.asarray(value, v.dtype.as_numpy_dtype))
            except KeyError as e:
                raise PatternFileError(f"Checkpoint '{path}' is damaged ({e}).") from None
            return int(attrs["n_batches"]), int(attrs["n_samples"])

    def remove(self):
        if os.path.exists(self.path):
            os.remove(self.path)
