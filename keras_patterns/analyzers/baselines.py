"""Baselines that ignore the model's function: the input itself and random noise."""

import numpy as np

from ..noise import normal_like, sample_keys
from .base import Analyzer
from .catalog import register_analyzer


@register_analyzer("input")
class InputAnalyzer(Analyzer):
    """Returns the input: the explanation that assumes everything is signal (so it returns
    a signal, in input units, and is drawn like one)."""

    explains_any_layer = True
    returns = "signal"
    description = "the input itself (baseline)"

    def _analyze_batch(self, xs, index, strategy):  # no model: nothing to distribute
        return [np.asarray(x, dtype="float32") for x in xs]


@register_analyzer("random")
class RandomAnalyzer(Analyzer):
    """Gaussian noise N(0, stddev^2) shaped like the input (baseline).

    Args:
        stddev: the noise's standard deviation.
        seed: with a seed, the same sample gets the same noise in every call, whatever its
            batch or position; None: fresh noise every call.
    """

    explains_any_layer = True
    description = "Gaussian noise shaped like the input (baseline)"

    def __init__(self, model, stddev=1.0, seed=None, **kwargs):
        self.stddev = float(stddev)
        self.seed = seed
        super().__init__(model, **kwargs)

    def _analyze_batch(self, xs, index, strategy):  # no model: nothing to distribute
        keys = sample_keys(xs, self.seed)
        out = []
        for i, x in enumerate(xs):
            noise = [normal_like(x[j], key, i, self.stddev) for j, key in enumerate(keys)]
            out.append(np.asarray(noise, np.float32).reshape(x.shape))
        return out
