"""The paper's linear toy (section 2, Fig. 2): the weights are not the signal.

Data x = s + d with the signal s = a_s y, a_s = (1, 0), y ~ U[-1, 1], and the distractor
d = a_d eps, a_d = (1, 1), eps ~ N(mu, sigma^2). The linear model y = w^T x with
w = (1, -1) extracts y exactly: it cancels the distractor (w^T a_d = 0) and w^T a_s = 1.
Every method explains this model; a method that returns a signal is right when it returns
the signal a_s y, one that returns an attribution when it puts y on the signal's coordinate
and nothing on the other (what a method returns is its class's `returns`).
"""

import numpy as np

SIGNAL = np.array([1.0, 0.0])
DISTRACTOR = np.array([1.0, 1.0])
FILTER = np.array([1.0, -1.0])
# the methods of the experiment, signals first
METHODS = ("gradient", "deconvnet", "guided_backprop", "pattern.net", "input_t_gradient",
           "lrp.z", "lrp.epsilon", "pattern.attribution")


def toy_data(n=2000, mu=0.0, sigma=1.0, seed=0):
    """(x, y): n samples of the toy, float32."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1.0, 1.0, n)
    eps = rng.normal(mu, sigma, n)
    x = y[:, None] * SIGNAL + eps[:, None] * DISTRACTOR
    return x.astype("float32"), y.astype("float32")


def toy_model():
    """The linear model y = w^T x (a Dense layer without bias, w = (1, -1))."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)],
                             name="toy")
    model.layers[0].kernel.assign(FILTER[:, None].astype("float32"))
    return model


def toy_experiment(n=2000, seed=0):
    """Every method on the toy.

    Returns:
        dict with "pattern" (the learned linear pattern, fitted on the data), "cosine"
        (methods that return a signal: mean |cos| between the explanation and the signal
        a_s y) and "signal_share" (methods that return an attribution: the mean fraction of
        |attribution| on the signal's coordinate), and "explanations" of 200 samples per
        method (the methods that need fitting fitted on the data, with linear patterns).
    """
    import keras_patterns as kp

    x, y = toy_data(n, seed=seed)
    model = toy_model()
    patterns = kp.compute_patterns(model, x, pattern_type="linear")
    pattern = patterns[model.layers[0].name]["a"][:, 0]
    sample = x[:200]
    signal = y[:200, None] * SIGNAL
    out = {"pattern": pattern, "cosine": {}, "signal_share": {}, "explanations": {},
           "x": sample, "y": y[:200]}
    for name in METHODS:
        cls = kp.analyzers.analyzer_class(name)
        kwargs = {"pattern_type": "linear"} if "pattern_type" in cls.parameters() else {}
        analyzer = cls(model, **kwargs)
        if analyzer.needs_fit:
            analyzer.fit(x)
        e = analyzer.analyze(sample).astype(np.float64)
        out["explanations"][name] = e
        if analyzer.returns == "signal":
            norms = np.linalg.norm(e, axis=1) * np.linalg.norm(signal, axis=1)
            cos = np.abs((e * signal).sum(axis=1)) / np.where(norms > 0, norms, 1.0)
            out["cosine"][name] = float(cos[norms > 0].mean())
        else:
            total = np.abs(e).sum(axis=1)
            share = np.abs(e[:, 0]) / np.where(total > 0, total, 1.0)
            out["signal_share"][name] = float(share[total > 0].mean())
    return out


def plot_toy(result, path):
    """Fig. 2 analogue: the data coloured by y with w, a_s, a_d and the learned pattern;
    and how close each method comes to the signal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    x, y = result["x"], result["y"]
    left.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=8, alpha=0.7)
    for vector, label, colour, dy in ((FILTER, "filter w", "black", 0.0),
                                      (SIGNAL, "signal a_s", "green", 0.15),
                                      (DISTRACTOR, "distractor a_d", "gray", 0.0),
                                      (result["pattern"], "learned pattern a", "orange",
                                       -0.2)):
        left.annotate("", xy=vector, xytext=(0, 0),
                      arrowprops={"arrowstyle": "->", "color": colour, "lw": 2})
        left.text(vector[0] * 1.08, vector[1] * 1.08 + dy, label, color=colour, fontsize=9)
    left.set_aspect("equal")
    left.set_title("x = a_s y + a_d eps, coloured by y")
    names = list(result["cosine"]) + list(result["signal_share"])
    values = list(result["cosine"].values()) + list(result["signal_share"].values())
    colours = ["tab:blue"] * len(result["cosine"]) + ["tab:red"] * len(result["signal_share"])
    right.barh(names, values, color=colours)
    right.set_xlim(0, 1.05)
    right.invert_yaxis()
    right.set_title("blue: |cos(e, a_s y)|   red: share of |e| on the signal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
