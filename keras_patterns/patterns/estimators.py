"""Signal estimators (paper section 4): from statistics and weights to patterns.

Every pattern is normalised so that w_j^T a_j = 1 for each neuron j: the signal estimate
S(x) = a w^T x then reproduces the neuron's output, w^T S(x) = y.

- ``relu`` (S_a+-, default): a_+ = cov_+[x, y] / w^T cov_+[x, y], the covariance taken within
  the positive regime (E_+[xy] - E_+[x] E_+[y]); a_- the same within the negative regime,
  estimated where that regime's statistics were gathered (see `fit.kernel_regimes`).
- ``relu.eq8``: the paper's Eq. (8) literally, with E[y] over all samples in place of
  E_+[y]. It differs from ``relu`` when the distractor has a non-zero mean; kept to
  reproduce published numbers.
- ``linear`` (S_a): a = cov[x, y] / sigma_y^2 over all samples (= cov / w^T cov).
- ``filter`` (S_w): a = w / w^T w. No fitting.
- ``random``: a random direction scaled so that w^T a = 1. No fitting; seeded.

A neuron without observations in a regime, or whose covariance with the input vanishes
there, gets a zero pattern in that regime; such neurons are counted.
"""

import numpy as np

RELU_TYPES = ("relu", "relu.eq8")
FITTED_TYPES = RELU_TYPES + ("linear",)
PATTERN_TYPES = FITTED_TYPES + ("filter", "random")


def _per_neuron(kmap, tensor):
    """Sum of a kernel-shaped array over each neuron's entries (numpy)."""
    return np.asarray(kmap.kernel_to_neuron(tensor, np.sum))


def _to_kernel(kmap, vector):
    return np.asarray(kmap.neuron_to_kernel(vector))


def _normalise(kmap, w, direction, valid):
    """direction / (w^T direction) per neuron; zero where invalid or w^T direction ~ 0."""
    product = w * direction
    denom = _per_neuron(kmap, product)
    scale = _per_neuron(kmap, np.abs(product, out=product))
    del product
    ok = valid & (np.abs(denom) > 1e-12 * np.maximum(scale, 1e-300))
    inv = np.where(ok, 1.0 / np.where(ok, denom, 1.0), 0.0)
    return direction * _to_kernel(kmap, inv), ok


def _covariance(kmap, s):
    n = s["n"]
    return s["c_xy"] * _to_kernel(kmap, np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0))


def estimate(pattern_type, kmap, w, stats=None, rng=None):
    """Patterns of one kernel map.

    Returns (patterns, dead): patterns maps "a_plus"/"a_minus" (relu types) or "a" (others)
    to float64 arrays shaped like `w`; dead counts the neurons that got a zero pattern.
    """
    w = np.asarray(w, np.float64)
    if pattern_type == "filter":
        a, ok = _normalise(kmap, w, w, np.ones(kmap.output_channels, bool))
        return {"a": a}, int((~ok).sum())
    if pattern_type == "random":
        rng = rng or np.random.default_rng(0)
        a, ok = _normalise(kmap, w, rng.normal(size=w.shape), np.ones(kmap.output_channels, bool))
        return {"a": a}, int((~ok).sum())
    if pattern_type == "linear":
        both = stats["all"]
        a, ok = _normalise(kmap, w, _covariance(kmap, both), both["n"] > 1)
        return {"a": a}, int((~ok).sum())
    plus, minus = stats["plus"], stats["minus"]
    if pattern_type == "relu":
        out = {}
        out["a_plus"], ok = _normalise(kmap, w, _covariance(kmap, plus), plus["n"] > 1)
        if "c_xy" in minus:  # estimated where the negative regime is used (see fit)
            out["a_minus"], _ = _normalise(kmap, w, _covariance(kmap, minus), minus["n"] > 1)
        return out, int((~ok).sum())
    if pattern_type == "relu.eq8":
        n = plus["n"] + minus["n"]
        mean_y = np.where(n > 0, (plus["n"] * plus["mean_y"] + minus["n"] * minus["mean_y"])
                          / np.maximum(n, 1), 0.0)
        out = {}
        for name, s in (("a_plus", plus), ("a_minus", minus)):
            if "c_xy" not in s:
                continue
            # E_r[xy] - E_r[x] E[y] = cov_r + E_r[x] (E_r[y] - E[y])
            shift = _to_kernel(kmap, s["mean_y"] - mean_y)
            direction = _covariance(kmap, s) + s["mean_x"] * shift
            out[name], ok_r = _normalise(kmap, w, direction, s["n"] > 0)
            if name == "a_plus":
                ok = ok_r
        return out, int((~ok).sum())
    raise ValueError(
        f"pattern_type={pattern_type!r} is not one of {', '.join(map(repr, PATTERN_TYPES))}."
    )
