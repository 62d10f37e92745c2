"""Baselines that ignore the model's function: the input itself and random noise."""

import numpy as np

from .base import Analyzer


class InputAnalyzer(Analyzer):
    """Returns the input: the explanation that assumes everything is signal."""

    name = "input"
    description = "the input itself (baseline)"

    def _analyze_batch(self, xs, index):
        return [np.asarray(x, dtype="float32") for x in xs]


class RandomAnalyzer(Analyzer):
    """Gaussian noise N(0, stddev^2) shaped like the input (baseline); `seed` for repeats."""

    name = "random"
    description = "Gaussian noise shaped like the input (baseline)"

    def __init__(self, model, stddev=1.0, seed=None, **kwargs):
        self.stddev = float(stddev)
        self._rng = np.random.default_rng(seed)
        super().__init__(model, **kwargs)

    def _analyze_batch(self, xs, index):
        return [self._rng.normal(0.0, self.stddev, size=x.shape).astype("float32") for x in xs]
