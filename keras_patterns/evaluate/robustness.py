"""Robustness of explanations to small input changes that leave the model's decision
alone: an explanation should not jump where the input barely moved.

- `max_sensitivity` (Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (in)fidelity and
  sensitivity of explanations", NeurIPS 2019): the largest relative change
  ‖e(x + δ) − e(x)‖ / ‖e(x)‖ over `n_samples` perturbations δ drawn uniformly from the
  L∞ ball of radius `radius`.
- `average_stability`: the mean of the same ratio over the perturbations (xplique's
  "average stability", the expected rather than the worst change).

The explained neuron stays the one chosen on the unperturbed input (its predicted class by
default), as the definition requires; the perturbed copies are explained `batch_size` at a
time.
"""

import dataclasses
from typing import Callable, Optional, Union

import keras
import numpy as np

from .sanity import _images, make_analyzer

__all__ = ["Sensitivity", "average_stability", "max_sensitivity", "sensitivity"]


@dataclasses.dataclass
class Sensitivity:
    """The outcome of `sensitivity`.

    Attributes:
        ratios: (N, n_samples) ‖e(x + δ) − e(x)‖ / ‖e(x)‖ per sample and perturbation.
        max: (N,) the largest ratio of each sample (max-sensitivity).
        mean: (N,) the mean ratio of each sample (average stability).
    """

    ratios: np.ndarray

    @property
    def max(self):
        return self.ratios.max(axis=1)

    @property
    def mean(self):
        return self.ratios.mean(axis=1)


def sensitivity(method: Union[str, Callable], model: keras.Model, x: np.ndarray,
                radius: float = 0.02, n_samples: int = 10, neuron_selection=None,
                seed: int = 0, fit_data=None, batch_size: int = 64,
                **kwargs) -> Sensitivity:
    """The relative changes of `method`'s explanations under uniform L∞ perturbations.

    Args:
        method: a method name (with `kwargs` its parameters) or a factory of an analyzer in
            index mode (`sanity.make_analyzer`).
        model: the model.
        x: (N, ...) inputs (floating point).
        radius: the perturbations' L∞ radius, in input units.
        n_samples: perturbations per sample.
        neuron_selection: the explained output per sample (default: the model's prediction
            on the unperturbed input).
        seed: the seed of the perturbations.
        fit_data: the data pattern methods are fitted on (default: `x`).
        batch_size: explanations per reverse pass.
        **kwargs: the method's parameters.

    Returns:
        Sensitivity: the ratios, their max and mean per sample.
    """
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}.")
    if not (isinstance(n_samples, int) and n_samples >= 1):
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
    x = _images(x).astype(np.float32)
    analyzer = make_analyzer(method, model, x if fit_data is None else fit_data,
                             batch_size, **kwargs)
    if neuron_selection is None:
        y = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
        neuron_selection = y.reshape(len(y), -1).argmax(axis=1)
    index = np.broadcast_to(np.asarray(neuron_selection), (len(x),))
    base = np.asarray(analyzer.analyze(x, neuron_selection=index, batch_size=batch_size))
    rng = np.random.default_rng(seed)
    ratios = np.empty((len(x), n_samples))
    norm = np.linalg.norm(base.reshape(len(x), -1), axis=1)
    per_chunk = max(1, batch_size // n_samples)
    for start in range(0, len(x), per_chunk):
        chunk = x[start:start + per_chunk]
        m = len(chunk)
        delta = rng.uniform(-radius, radius, size=(m, n_samples) + chunk.shape[1:])
        copies = (chunk[:, None] + delta).astype(np.float32).reshape((-1,) + chunk.shape[1:])
        e = np.asarray(analyzer.analyze(copies, neuron_selection=np.repeat(
            index[start:start + m], n_samples), batch_size=batch_size))
        change = e.reshape(m, n_samples, -1) - base[start:start + m].reshape(m, 1, -1)
        ratios[start:start + m] = np.linalg.norm(change, axis=2) / np.where(
            norm[start:start + m, None] > 0, norm[start:start + m, None], 1.0)
    return Sensitivity(ratios)


def max_sensitivity(method: Union[str, Callable], model: keras.Model, x: np.ndarray,
                    radius: float = 0.02, n_samples: int = 10, seed: int = 0,
                    neuron_selection: Optional[np.ndarray] = None,
                    **kwargs) -> np.ndarray:
    """Per sample, the largest relative change of the explanation (Yeh et al. 2019).

    Args:
        method: as for `sensitivity`.
        model: the model.
        x: (N, ...) inputs.
        radius: the L∞ radius of the perturbations.
        n_samples: perturbations per sample.
        seed: the seed of the perturbations.
        neuron_selection: the explained output per sample (default: the prediction).
        **kwargs: `fit_data`, `batch_size` and the method's parameters.

    Returns:
        (N,) ratios.
    """
    return sensitivity(method, model, x, radius, n_samples, neuron_selection, seed,
                       **kwargs).max


def average_stability(method: Union[str, Callable], model: keras.Model, x: np.ndarray,
                      radius: float = 0.02, n_samples: int = 10, seed: int = 0,
                      neuron_selection: Optional[np.ndarray] = None,
                      **kwargs) -> np.ndarray:
    """Per sample, the mean relative change of the explanation: `max_sensitivity`'s
    arguments, the mean over the perturbations in place of the max.
    """
    return sensitivity(method, model, x, radius, n_samples, neuron_selection, seed,
                       **kwargs).mean
