"""A benchmark whose true signal is known: a small nonlinear CNN trained on shapes hidden
under a stronger distractor.

Every image is the sum of three parts, returned separately (`GroundTruthData`):

- **signal**: the class's shape (a 5 x 5 binary template: cross, square, L, T, X, H) times
  an amplitude drawn from U(1, 2), at a position drawn uniformly over the image;
- **distractor**: a sinusoidal grating shared by all classes,
  ``strength * sin(2 pi f (col cos(theta) + row sin(theta)) + phase)`` with strength drawn
  from U(2, 4) (never weaker than the signal's amplitude, and spread over the whole image,
  so it carries far more energy), frequency f from U(0.04, 0.12) cycles per pixel,
  orientation theta from U(0, pi) and phase from U(0, 2 pi);
- **noise**: white Gaussian noise of standard deviation 0.2.

The distractor says nothing about the class, so a correct explanation of the class shows
the shape, not the grating. Methods are scored against the known signal, on held-out
images, explaining each image's true class:

- signal methods (PatternNet, Guided Backprop, DeConvNet, gradient, SmoothGrad, and the
  input as a baseline): the **cosine similarity** between the explanation and the signal
  image (signed: an explanation pointing against the signal scores below 0);
- attribution methods (PatternAttribution, the LRP rules, Deep Taylor, input x gradient,
  Integrated Gradients, and random noise as a baseline): the **relevance mass** inside the
  signal's support, ``sum_support max(R, 0) / sum max(R, 0)``: the fraction of the positive
  relevance that falls on the shape's pixels (1: all of it; the support's share of the
  image, about 0.04, is what relevance spread evenly gets).

Both scores (and the mass of |R|) are reported for every method; ``score`` is the one of
what it returns (its class's `returns`). An explanation that is zero everywhere scores 0 on
all of them.

    table = ground_truth()
    print(table.to_markdown())
"""

import dataclasses
import time
from typing import Dict, Optional, Sequence, Union

import keras
import numpy as np

from ..analyzers import analyzer_class, create_analyzer

# the class shapes, 5 x 5 ("#" is signal)
SHAPES = {
    "cross": ["..#..", "..#..", "#####", "..#..", "..#.."],
    "square": ["#####", "#...#", "#...#", "#...#", "#####"],
    "L": ["#....", "#....", "#....", "#....", "#####"],
    "T": ["#####", "..#..", "..#..", "..#..", "..#.."],
    "X": ["#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    "H": ["#...#", "#...#", "#####", "#...#", "#...#"],
}

# the default methods of `ground_truth`, signals first -> what each returns ("signal" or
# "attribution", read from its class)
METHODS = {name: analyzer_class(name).returns for name in (
    "input", "gradient", "smoothgrad", "deconvnet", "guided_backprop", "pattern.net",
    "random", "input_t_gradient", "integrated_gradients", "lrp.z", "lrp.epsilon",
    "lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1", "deep_taylor", "pattern.attribution")}

# parameters of the default methods (seeded noise)
METHOD_KWARGS = {"random": {"seed": 0}, "smoothgrad": {"seed": 0}}

# the generator's defaults
AMPLITUDE = (1.0, 2.0)
DISTRACTOR_STRENGTH = (2.0, 4.0)
FREQUENCY = (0.04, 0.12)
NOISE_STD = 0.2


def templates(classes: int) -> np.ndarray:
    """The first `classes` shapes of `SHAPES` as a (classes, 5, 5) float32 0/1 array."""
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"classes must lie in [2, {len(SHAPES)}], got {classes!r}.")
    rows = list(SHAPES.values())[:classes]
    return np.array([[[ch == "#" for ch in row] for row in shape] for shape in rows],
                    np.float32)


def grating(size: int, strength, angle, frequency, phase) -> np.ndarray:
    """The distractor images (n, size, size) for per-image parameters (n,) each:
    ``strength * sin(2 pi f (col cos(angle) + row sin(angle)) + phase)``."""
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    p = [np.asarray(v, np.float64)[:, None, None] for v in (strength, angle, frequency, phase)]
    strength, angle, frequency, phase = p
    arg = 2 * np.pi * frequency * (cols * np.cos(angle) + rows * np.sin(angle)) + phase
    return strength * np.sin(arg)


@dataclasses.dataclass
class GroundTruthData:
    """Images and their parts: ``x == signal + distractor + noise`` (float32, in that
    order of addition).

    Attributes:
        x: (n, size, size, 1) images.
        y: (n,) classes.
        signal, distractor, noise: (n, size, size, 1) the parts.
        support: (n, size, size, 1) bool, where the signal's shape is.
        amplitude: (n,) the signal's amplitude.
        position: (n, 2) the (row, column) of the shape's top-left corner.
        strength, angle, frequency, phase: (n,) the grating's parameters.
        templates: (classes, 5, 5) the shapes.
        names: the shapes' names.
    """

    x: np.ndarray
    y: np.ndarray
    signal: np.ndarray
    distractor: np.ndarray
    noise: np.ndarray
    support: np.ndarray
    amplitude: np.ndarray
    position: np.ndarray
    strength: np.ndarray
    angle: np.ndarray
    frequency: np.ndarray
    phase: np.ndarray
    templates: np.ndarray
    names: list

    def __len__(self):
        return len(self.y)


def make_dataset(n: int, size: int = 16, classes: int = 4, seed: int = 0,
                 amplitude: Sequence[float] = AMPLITUDE,
                 distractor_strength: Sequence[float] = DISTRACTOR_STRENGTH,
                 frequency: Sequence[float] = FREQUENCY,
                 noise_std: float = NOISE_STD) -> GroundTruthData:
    """Draw `n` images of signal + distractor + noise (see the module docstring).

    Args:
        n: the number of images.
        size: their side (at least 5).
        classes: the number of classes (2..6), shapes in the order of `SHAPES`.
        seed: seeds everything drawn (a numpy generator).
        amplitude: the signal amplitude's uniform range.
        distractor_strength: the grating amplitude's uniform range.
        frequency: the grating frequency's uniform range (cycles per pixel).
        noise_std: the Gaussian noise's standard deviation.

    Returns:
        GroundTruthData.
    """
    if size < 5:
        raise ValueError(f"size must be at least 5 (the shapes are 5 x 5), got {size!r}.")
    shapes = templates(classes)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    amp = rng.uniform(*amplitude, n)
    position = rng.integers(0, size - 4, (n, 2))
    support = np.zeros((n, size, size), bool)
    for i, (r, c) in enumerate(position):
        support[i, r:r + 5, c:c + 5] = shapes[y[i]] > 0
    signal = (amp[:, None, None] * support).astype(np.float32)
    strength = rng.uniform(*distractor_strength, n)
    angle = rng.uniform(0.0, np.pi, n)
    freq = rng.uniform(*frequency, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    distractor = grating(size, strength, angle, freq, phase).astype(np.float32)
    noise = (noise_std * rng.standard_normal((n, size, size))).astype(np.float32)
    x = signal + distractor + noise
    return GroundTruthData(
        x=x[..., None], y=y, signal=signal[..., None], distractor=distractor[..., None],
        noise=noise[..., None], support=support[..., None], amplitude=amp, position=position,
        strength=strength, angle=angle, frequency=freq, phase=phase, templates=shapes,
        names=list(SHAPES)[:classes])


def build_model(size: int = 16, classes: int = 4, architecture: str = "cnn") -> keras.Model:
    """The benchmark's network: "cnn", Conv 5x5 (16, ReLU) -> Conv 3x3 (32, ReLU) -> global
    max pooling -> Dense (logits, no softmax); or "vit", the zoo's small ViT
    (`zoo.transformers.build_vit`: 4x4 patches, two pre-norm attention blocks of width 32,
    GELU MLPs, mean pooling, logits)."""
    if architecture == "vit":
        from ..zoo.transformers import build_vit

        return build_vit(width=32, heads=4, blocks=2, input_shape=(size, size, 1),
                         classes=classes, patch=4, name="ground_truth_vit")
    if architecture != "cnn":
        raise ValueError(f"architecture must be 'cnn' or 'vit', got {architecture!r}.")
    return keras.Sequential([
        keras.Input((size, size, 1)),
        keras.layers.Conv2D(16, 5, activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
        keras.layers.GlobalMaxPooling2D(name="pool"),
        keras.layers.Dense(classes, name="logits"),
    ], name="ground_truth_cnn")


def train_model(data: Optional[GroundTruthData] = None, n_train: int = 3000, size: int = 16,
                classes: int = 4, seed: int = 0, epochs: int = 10, batch_size: int = 64,
                learning_rate: float = 3e-3, verbose: int = 0,
                architecture: str = "cnn") -> keras.Model:
    """Train `build_model` on `data` (default: ``make_dataset(n_train, size, classes,
    seed)``) with Adam and the cross-entropy of the logits; seeded with
    `keras.utils.set_random_seed(seed)` (reproducible up to the float round-off of
    multi-threaded kernels).

    Returns:
        The trained model (it outputs logits).
    """
    if data is None:
        data = make_dataset(n_train, size=size, classes=classes, seed=seed)
    keras.utils.set_random_seed(seed)
    model = build_model(data.x.shape[1], len(data.templates), architecture)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x, data.y, batch_size=batch_size, epochs=epochs, verbose=verbose,
              shuffle=True)
    return model


def accuracy(model: keras.Model, data: GroundTruthData, batch_size: int = 256) -> float:
    """The fraction of `data` the model classifies correctly."""
    out = np.asarray(model.predict(data.x, batch_size=batch_size, verbose=0))
    return float(np.mean(np.argmax(out, axis=1) == data.y))


# -- scores ---------------------------------------------------------------------------------


def cosine_similarity(explanation: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Per sample ``<e, s> / (|e| |s|)`` of the flattened arrays; 0 where either is zero."""
    e = np.asarray(explanation, np.float64).reshape(len(explanation), -1)
    s = np.asarray(signal, np.float64).reshape(len(signal), -1)
    norm = np.linalg.norm(e, axis=1) * np.linalg.norm(s, axis=1)
    dot = np.sum(e * s, axis=1)
    return np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), 0.0)


def relevance_mass(relevance: np.ndarray, support: np.ndarray,
                   mode: str = "positive") -> np.ndarray:
    """Per sample the share of the relevance that lies inside `support`.

    Args:
        relevance: (n, ...) relevance maps.
        support: (n, ...) bool, the signal's pixels.
        mode: "positive": ``sum_support max(R, 0) / sum max(R, 0)``; "absolute": the same
            with |R|.

    Returns:
        (n,) in [0, 1]; 0 where there is no (positive) relevance at all.
    """
    r = np.asarray(relevance, np.float64).reshape(len(relevance), -1)
    m = np.asarray(support, bool).reshape(len(support), -1)
    if mode == "positive":
        r = np.maximum(r, 0.0)
    elif mode == "absolute":
        r = np.abs(r)
    else:
        raise ValueError(f"mode must be 'positive' or 'absolute', got {mode!r}.")
    total = r.sum(axis=1)
    inside = (r * m).sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)


def score_explanations(explanation: np.ndarray, data: GroundTruthData) -> dict:
    """The per-sample scores of explanations of `data`: "cosine", "mass_pos", "mass_abs"."""
    return {"cosine": cosine_similarity(explanation, data.signal),
            "mass_pos": relevance_mass(explanation, data.support, "positive"),
            "mass_abs": relevance_mass(explanation, data.support, "absolute")}


# -- the benchmark --------------------------------------------------------------------------


@dataclasses.dataclass
class GroundTruthTable:
    """The outcome of `ground_truth`.

    Attributes:
        rows: one dict per method: "method", "returns" ("signal" or "attribution"; also
            under its former name "kind"), "score" (cosine for signal methods,
            positive mass for attribution methods), "cosine", "mass_pos", "mass_abs" (means
            over the test images), "cosine_std", "mass_pos_std", "seconds".
        accuracy: the CNN's accuracy on the test images.
        train_accuracy: its accuracy on the training images.
        train_seconds: the training time (0 for a model passed in).
        chance_mass: the support's mean share of the image (the mass of evenly spread
            relevance).
        n_train, n_test: the numbers of images.
    """

    rows: list
    accuracy: float
    train_accuracy: float
    train_seconds: float
    chance_mass: float
    n_train: int
    n_test: int

    def row(self, method: str) -> dict:
        """The row of `method`."""
        for r in self.rows:
            if r["method"] == method:
                return r
        raise KeyError(method)

    def to_markdown(self) -> str:
        """The table in Markdown, with the accuracy and the chance level below it."""
        lines = ["| method | returns | score | cosine | mass (R>0) | mass (abs R) |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['method']} | {r['returns']} | {r['score']:.3f} | "
                         f"{r['cosine']:.3f} | {r['mass_pos']:.3f} | {r['mass_abs']:.3f} |")
        lines.append("")
        lines.append(f"CNN accuracy {self.accuracy:.3f} on {self.n_test} test images "
                     f"({self.train_accuracy:.3f} on {self.n_train} training images, trained "
                     f"in {self.train_seconds:.1f} s); chance mass {self.chance_mass:.3f}.")
        return "\n".join(lines)


def _methods(methods):
    if methods is None:
        return {name: dict(METHOD_KWARGS.get(name, {})) for name in METHODS}
    if isinstance(methods, str):
        methods = [methods]
    if isinstance(methods, dict):
        return {name: dict(kw or {}) for name, kw in methods.items()}
    return {name: dict(METHOD_KWARGS.get(name, {})) for name in methods}


def returns_of(method: str) -> str:
    """What `method` returns: "signal" or "attribution" (its class's `returns`)."""
    return analyzer_class(method).returns


kind_of = returns_of  # the former name


def ground_truth(methods: Optional[Union[Sequence[str], Dict[str, dict]]] = None,
                 n_train: int = 3000, n_test: int = 300, size: int = 16, classes: int = 4,
                 seed: int = 0, epochs: int = 10, model: Optional[keras.Model] = None,
                 batch_size: int = 64, verbose: int = 0,
                 architecture: str = "cnn") -> GroundTruthTable:
    """Train the CNN on generated images and score each method against the true signal.

    Args:
        methods: method names (default: `METHODS`), or a dict name -> parameters.
        n_train: training images (also the data the pattern methods are fitted on).
        n_test: held-out images explained and scored (their true class is explained).
        size: the image side in pixels.
        classes: the number of classes.
        seed: seeds the data (training set `seed`, test set `seed + 1`) and the training.
        epochs: training epochs.
        model: a model already trained by `train_model` with the same settings (skips the
            training).
        batch_size: analysis batch size.
        verbose: print each row as it is computed.
        architecture: the network trained, "cnn" or "vit" (`build_model`).

    Returns:
        GroundTruthTable (`rows`, `accuracy`, `to_markdown()`).
    """
    train = make_dataset(n_train, size=size, classes=classes, seed=seed)
    test = make_dataset(n_test, size=size, classes=classes, seed=seed + 1)
    seconds = 0.0
    if model is None:
        start = time.perf_counter()
        model = train_model(train, seed=seed, epochs=epochs, architecture=architecture)
        seconds = time.perf_counter() - start
    rows = []
    for name, kwargs in _methods(methods).items():
        start = time.perf_counter()
        analyzer = create_analyzer(name, model, neuron_selection_mode="index",
                                   batch_size=batch_size, **kwargs)
        if analyzer.needs_fit and not analyzer.is_fitted:
            analyzer.fit(train.x, batch_size=256)
        e = np.asarray(analyzer.analyze(test.x, neuron_selection=test.y))
        scores = score_explanations(e, test)
        returns = analyzer.returns
        # "kind": the former name of "returns"
        row = {"method": name, "returns": returns, "kind": returns,
               "score": float(np.mean(scores["cosine" if returns == "signal" else "mass_pos"])),
               **{k: float(np.mean(v)) for k, v in scores.items()},
               "cosine_std": float(np.std(scores["cosine"])),
               "mass_pos_std": float(np.std(scores["mass_pos"])),
               "seconds": time.perf_counter() - start}
        rows.append(row)
        if verbose:
            print(f"{name:24s} {returns:12s} score {row['score']:.3f}  cosine {row['cosine']:.3f}"
                  f"  mass {row['mass_pos']:.3f}  ({row['seconds']:.1f} s)")
    return GroundTruthTable(
        rows=rows, accuracy=accuracy(model, test), train_accuracy=accuracy(model, train),
        train_seconds=seconds, chance_mass=float(test.support.mean()), n_train=n_train,
        n_test=n_test)


__all__ = ["GroundTruthData", "GroundTruthTable", "SHAPES", "METHODS", "make_dataset",
           "build_model", "train_model", "accuracy", "ground_truth", "cosine_similarity",
           "relevance_mass", "score_explanations", "templates", "grating", "kind_of",
           "returns_of"]
