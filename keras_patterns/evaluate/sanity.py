"""Sanity checks: does an explanation depend on the class it explains and on the model?

Explanations that stay the same when the explained class changes, or when the model's
weights are replaced by random ones, do not describe the model (Adebayo et al. 2018,
"Sanity checks for saliency maps"; Sixt et al. 2020 for LRP and PatternAttribution).

    cs = class_sensitivity("lrp.z", model, images)             # mean correlation between classes
    mr = model_randomization("gradient", model, images)       # correlation per randomised layer

The method is given by name (`kp.list_analyzers()`) with its parameters as keyword
arguments (the pattern methods are fitted on `fit_data`, by default the images explained),
or as a callable ``factory(model) -> analyzer`` that returns an analyzer created with
``neuron_selection_mode="index"`` (an unfitted pattern analyzer it returns is fitted as
above).

Correlation measures (per sample, between flattened explanations, all channels):
"pearson" (default), "spearman" (Pearson correlation of the ranks, ties given their average
rank), and "pearson_abs" / "spearman_abs" (the same on |e|). Where an explanation is
constant (zero variance) the correlation is undefined; it is taken as 1 when both are
constant and 0 when only one is, so every number is finite.
"""

import dataclasses
from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np

from ..analyzers import create_analyzer
from ..inputs import check_batch_size
from ..visualize.batches import check_batch
from .correlation import (  # noqa: F401 - part of this module's interface
    MEASURES,
    correlation,
    correlation_matrix,
    ranks,
)

# the weights that make a layer one that model randomisation re-draws: a kernel or an
# embedding matrix
RANDOMIZED_WEIGHTS = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")


# -- analyzers ------------------------------------------------------------------------------


def _needs_fit(analyzer):
    """Analyzers that learn from data (`needs_fit`) and are not fitted yet."""
    return analyzer.needs_fit and not analyzer.is_fitted


def make_analyzer(method: Union[str, Callable], model: keras.Model, fit_data=None,
                  batch_size: int = 64, **kwargs):
    """The analyzer of `method` for `model` in index mode, fitted if it needs patterns.

    Args:
        method: a method name (with `kwargs` its parameters) or a callable
            ``factory(model) -> analyzer`` (created with ``neuron_selection_mode="index"``).
        model: the model to explain.
        fit_data: the data the methods that need fitting (the pattern methods) are fitted
            on.
        batch_size: the analysis and fit batch size.
        **kwargs: the method's parameters (for a name only).

    Returns:
        The analyzer.
    """
    if isinstance(method, str):
        analyzer = create_analyzer(method, model, neuron_selection_mode="index",
                                   batch_size=batch_size, **kwargs)
    elif callable(method):
        if kwargs:
            raise TypeError(f"Parameters {sorted(kwargs)} are for a method name; a factory "
                            "sets its analyzer's parameters itself.")
        analyzer = method(model)
        if getattr(analyzer, "neuron_selection_mode", None) != "index":
            raise ValueError("The analyzer factory must create its analyzer with "
                             "neuron_selection_mode='index'.")
    else:
        raise TypeError(f"method must be a method name or a callable, got {method!r}.")
    if _needs_fit(analyzer):
        if fit_data is None:
            raise ValueError(f"'{analyzer.name}' learns from data: pass fit_data.")
        analyzer.fit(fit_data, batch_size=batch_size)
    return analyzer


def _output_units(model):
    shape = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) \
        else tuple(model.output_shape[0][1:])
    if any(d is None for d in shape):
        raise ValueError("The model's output size depends on the input: pass classes.")
    return int(np.prod(shape))


def _images(x):
    return check_batch(x, "x", images=False)


# -- class sensitivity ----------------------------------------------------------------------


@dataclasses.dataclass
class ClassSensitivity:
    """The outcome of `class_sensitivity`.

    Attributes:
        mean: the mean over samples and class pairs (i < j) of the correlation between the
            explanations of classes i and j of the same input (1: the explanation does not
            depend on the class).
        per_sample: (N,) the mean over class pairs for each sample.
        matrices: (N, C, C) the correlation matrix of each sample (diagonal 1).
        classes: (C,) the classes explained.
        measure: the correlation measure.
    """

    mean: float
    per_sample: np.ndarray
    matrices: np.ndarray
    classes: np.ndarray
    measure: str


def class_sensitivity(method: Union[str, Callable], model: keras.Model, x: np.ndarray,
                      classes: Optional[Sequence[int]] = None, fit_data=None,
                      measure: str = "pearson", batch_size: int = 64,
                      **kwargs) -> ClassSensitivity:
    """How much the explanations of different classes of the same input agree.

    Every input is explained for every class in `classes`; the copies (sample, class) are
    explained together, about `batch_size` per reverse pass.

    Args:
        method: a method name or an analyzer factory (see the module docstring).
        model: the model.
        x: (N, ...) inputs.
        classes: the output units to compare (default: all; pass a few for large outputs,
            the explanations of all classes of `batch_size` samples are held at once).
        fit_data: the data pattern methods are fitted on (default: `x`).
        measure: "pearson" (default), "spearman", "pearson_abs" or "spearman_abs".
        batch_size: samples per reverse pass.
        **kwargs: the method's parameters.

    Returns:
        ClassSensitivity: `mean`, `per_sample`, `matrices`, `classes`.
    """
    batch_size = check_batch_size(batch_size)
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}.")
    x = _images(x)
    analyzer = make_analyzer(method, model, x if fit_data is None else fit_data,
                             batch_size, **kwargs)
    classes = np.arange(_output_units(model)) if classes is None else np.asarray(classes)
    if classes.ndim != 1 or len(classes) < 2:
        raise ValueError(f"classes must list at least two classes, got {classes!r}.")
    c = len(classes)
    per_chunk = max(1, batch_size // c)
    matrices = []
    for start in range(0, len(x), per_chunk):
        chunk = x[start:start + per_chunk]
        m = len(chunk)
        copies = np.repeat(chunk, c, axis=0)
        e = np.asarray(analyzer.analyze(copies, neuron_selection=np.tile(classes, m),
                                        batch_size=batch_size))
        e = e.reshape(m, c, -1)
        matrices.extend(correlation_matrix(e[i], measure) for i in range(m))
    matrices = np.stack(matrices)
    upper = np.triu_indices(c, k=1)
    per_sample = matrices[:, upper[0], upper[1]].mean(axis=1)
    return ClassSensitivity(mean=float(per_sample.mean()), per_sample=per_sample,
                            matrices=matrices, classes=classes, measure=measure)


# -- model randomisation --------------------------------------------------------------------


def randomized_layers(model: keras.Model) -> list:
    """The layers model randomisation re-draws: those with a kernel or an embedding matrix
    (Dense, convolutions, embeddings, ...), in the order of `model.layers`, nested models
    flattened in place."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(randomized_layers(layer))
        elif any(w.name in RANDOMIZED_WEIGHTS for w in layer.weights):
            out.append(layer)
    return out


def _initializer(layer, weight_name):
    names = [f"{weight_name}_initializer"]
    if weight_name.endswith("_kernel"):
        names.append(weight_name[: -len("_kernel")] + "_initializer")
    if weight_name == "kernel":
        names += ["depthwise_initializer"]
    for name in names:
        init = getattr(layer, name, None)
        if init is not None:
            return keras.initializers.get(init)
    if weight_name in RANDOMIZED_WEIGHTS:
        return keras.initializers.GlorotUniform()
    return keras.initializers.Zeros()


def reinitialize(layer: keras.layers.Layer, seed: int) -> None:
    """Draw new values for every weight of `layer` from its own initializers (seeded)."""
    for j, var in enumerate(layer.weights):
        init = _initializer(layer, var.name)
        config = init.get_config()
        if "seed" in config:
            init = type(init).from_config({**config, "seed": int(seed) * 1009 + j})
        var.assign(keras.ops.cast(init(tuple(var.shape), dtype=var.dtype), var.dtype))


def randomizable_copy(model: keras.Model) -> keras.Model:
    """A copy of `model` with its own layers and the same weights (the model is untouched)."""
    try:
        copy = keras.models.clone_model(model)
    except Exception as e:  # noqa: BLE001 - any cloning failure means the same thing here
        raise ValueError(f"Model '{model.name}' cannot be cloned ({type(e).__name__}: {e}); "
                         "model randomisation needs a Sequential or Functional model.") from None
    copy.set_weights(model.get_weights())
    return copy


@dataclasses.dataclass
class ModelRandomization:
    """The outcome of `model_randomization`.

    Attributes:
        steps: the layer re-initialised at each step, "" for step 0 (the trained model).
        randomized: for each step the layers whose weights are random at that step.
        correlations: measure -> (k + 1,) the mean over samples of the correlation between
            the explanation at that step and the original one (step 0 is 1 by definition).
        per_sample: measure -> (k + 1, N) the same per sample.
        classes: (N,) the output unit explained at every step.
        explanations: (k + 1, N, ...) the explanations, with ``return_explanations=True``.
        weights: for each step the copy's `get_weights()`, with ``return_weights=True``.
    """

    steps: list
    randomized: list
    correlations: dict
    per_sample: dict
    classes: np.ndarray
    explanations: Optional[np.ndarray] = None
    weights: Optional[list] = None


def model_randomization(method: Union[str, Callable], model: keras.Model, x: np.ndarray,
                        layers: Union[str, Sequence[str]] = "top-down",
                        k: Optional[int] = None, fit_data=None,
                        neuron_selection: Optional[Union[int, Sequence[int]]] = None,
                        measures: Sequence[str] = ("pearson", "spearman_abs"),
                        init_seed: int = 0, batch_size: int = 64,
                        return_explanations: bool = False, return_weights: bool = False,
                        **kwargs) -> ModelRandomization:
    """Cascading model-parameter randomisation (Adebayo et al. 2018).

    A copy of the model (`keras.models.clone_model` + `set_weights`; the user's model is
    never modified) has its kernel layers re-initialised one per step from their own
    initializers (kernel and bias; seeded), and the explanation of the same output unit is
    recomputed and correlated with the original one. Pattern methods are refitted on
    `fit_data` at every step (patterns describe the weights they were fitted for).

    Args:
        method: a method name or an analyzer factory (see the module docstring).
        model: the model (Sequential or Functional).
        x: (N, ...) inputs to explain.
        layers: "top-down" (cumulative, from the output layer down: step s has the top s
            kernel layers random), "independent" (step s has only the s-th layer from the top
            random, the others trained) or a list of layer names (cumulative, in that order).
        k: the number of steps (default: every kernel layer listed).
        fit_data: the data pattern methods are fitted on (default: `x`).
        neuron_selection: the output unit explained (one int or one per sample); default:
            the trained model's argmax for each sample, kept for every step.
        measures: correlation measures to report ("pearson", "spearman", "pearson_abs",
            "spearman_abs").
        init_seed: seeds the new weights (not called `seed`, which is a parameter of
            the "random" and "smoothgrad" methods).
        batch_size: samples per forward and reverse pass.
        return_explanations: keep every step's explanations.
        return_weights: keep every step's weights (for checking the new weights).
        **kwargs: the method's parameters.

    Returns:
        ModelRandomization: `steps`, `correlations`, `per_sample`, ...
    """
    batch_size = check_batch_size(batch_size)
    measures = tuple(measures)
    for m in measures:
        if m not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {m!r}.")
    x = _images(x)
    fit_data = x if fit_data is None else fit_data
    copy = randomizable_copy(model)
    in_copy = randomized_layers(copy)
    names = [layer.name for layer in in_copy]
    if [layer.name for layer in randomized_layers(model)] != names:
        raise ValueError("The copy of the model does not list the same kernel layers.")
    if isinstance(layers, str):
        if layers not in ("top-down", "independent"):
            raise ValueError(f"layers must be 'top-down', 'independent' or a list of layer "
                             f"names, got {layers!r}.")
        chosen = in_copy[::-1]
        cumulative = layers == "top-down"
    else:
        by_name = dict(zip(names, in_copy))
        missing = [name for name in layers if name not in by_name]
        if missing:
            raise ValueError(f"No kernel layer named {missing}; the kernel layers are {names}.")
        chosen = [by_name[name] for name in layers]
        cumulative = True
    k = len(chosen) if k is None else int(k)
    if not 0 <= k <= len(chosen):
        raise ValueError(f"k must lie in [0, {len(chosen)}], got {k}.")
    chosen = chosen[:k]

    if neuron_selection is None:
        out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
        classes = np.argmax(out.reshape(len(x), -1), axis=1)
    else:
        classes = np.broadcast_to(np.asarray(neuron_selection, np.int64), (len(x),)).copy()

    def explain():
        analyzer = make_analyzer(method, copy, fit_data, batch_size, **kwargs)
        return np.asarray(analyzer.analyze(x, neuron_selection=classes,
                                           batch_size=batch_size))

    original = explain()
    per_sample = {m: [np.ones(len(x))] for m in measures}
    kept = [original] if return_explanations else None
    weights = [copy.get_weights()] if return_weights else None
    steps, randomized = [""], [[]]
    trained = None
    for s, layer in enumerate(chosen):
        if not cumulative and trained is not None:
            previous, values = trained
            previous.set_weights(values)
        trained = (layer, layer.get_weights())
        reinitialize(layer, int(init_seed) * 100003 + s + 1)
        e = explain()
        for m in measures:
            per_sample[m].append(correlation(original, e, m))
        steps.append(layer.name)
        randomized.append([c.name for c in chosen[:s + 1]] if cumulative else [layer.name])
        if return_explanations:
            kept.append(e)
        if return_weights:
            weights.append(copy.get_weights())
    per_sample = {m: np.stack(v) for m, v in per_sample.items()}
    return ModelRandomization(
        steps=steps, randomized=randomized,
        correlations={m: v.mean(axis=1) for m, v in per_sample.items()},
        per_sample=per_sample, classes=classes,
        explanations=np.stack(kept) if return_explanations else None, weights=weights)


__all__ = ["ClassSensitivity", "ModelRandomization", "class_sensitivity",
           "model_randomization", "correlation", "correlation_matrix", "ranks",
           "randomized_layers", "reinitialize", "randomizable_copy", "make_analyzer", "MEASURES"]
