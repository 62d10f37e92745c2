"""The report's plots (matplotlib, an optional extra)."""

import numpy as np

from ..zoo.extras import require


def _pyplot():
    """matplotlib's pyplot drawing to files, or MissingExtraError when it is missing."""
    matplotlib = require("matplotlib", "the report's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


ESTIMATOR_LABELS = {"random": "random", "filter": "S_w (filter)", "linear": "S_a (linear)",
                    "relu": "S_a+- (two-component)"}


def plot_quality(results, path, title):
    """Fig. 3 analogue: rho(S) per layer (x axis in layer order), one line per estimator.

    results: {estimator: {layer: rho}} (`evaluate.signal_quality`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    layers = list(next(iter(results.values())))
    for name, per_layer in results.items():
        ax.plot(range(len(layers)), [per_layer.get(layer, np.nan) for layer in layers],
                marker="o", label=ESTIMATOR_LABELS.get(name, name))
    ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right")
    ax.set_ylabel("rho(S)  (higher is better)")
    ax.set_title(title)
    ax.axhline(0, color="gray", lw=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_degradation(curves, path, title, xlabel="patches replaced (most relevant first)"):
    """Fig. 4 analogue: the mean score against the number of patches replaced.

    curves: {label: (steps + 1,) mean curve, or (x, curve)}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        style = {"ls": "--", "color": "gray"} if label.startswith("random") else {}
        x, y = curve if isinstance(curve, tuple) else (np.arange(len(curve)), curve)
        ax.plot(x, y, label=label, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("softmax probability of the initial class")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
