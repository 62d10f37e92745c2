"""Signal estimators (paper section 4.2): from statistics and weights to patterns.

Every pattern is normalised so that w_j^T a_j = 1 for each neuron j: the signal estimate
S(x) = a w^T x then reproduces the neuron's output, w^T S(x) = y. One small class per
estimator, declaring what it needs and returns, registered under its pattern type with
`register_estimator` (the `pattern_type=` of `compute_patterns` and the pattern analyzers):

- `TwoComponent` ("relu", S_a+-, the default): a_+ = cov_+[x, y] / w^T cov_+[x, y], the
  covariance taken within the positive regime (E_+[xy] - E_+[x] E_+[y]); a_- the same within
  the negative regime, estimated where that regime's statistics were gathered (see
  `fit.kernel_regimes`).
- `TwoComponentEq8` ("relu.eq8"): the paper's Eq. (8) literally, with E[y] over all samples
  in place of E_+[y]. It differs from "relu" when the distractor has a non-zero mean; kept
  to reproduce published numbers (see docs/design.md).
- `Linear` ("linear", S_a): a = cov[x, y] / sigma_y^2 over all samples (= cov / w^T cov).
- `Filter` ("filter", S_w): a = w / w^T w. No fitting.
- `Random` ("random"): a random direction scaled so that w^T a = 1. No fitting; seeded.

A neuron without observations in a regime, or whose covariance with the input vanishes
there, gets a zero pattern in that regime; such neurons are counted.
"""

import numpy as np

from ..registry import Registry


def _per_neuron(kmap, tensor):
    """Sum of a kernel-shaped array over each neuron's entries (numpy)."""
    return np.asarray(kmap.kernel_to_neuron(tensor, np.sum))


def _to_kernel(kmap, vector):
    return np.asarray(kmap.neuron_to_kernel(vector))


def normalise(kmap, w, direction, valid):
    """direction / (w^T direction) per neuron; zero where invalid or w^T direction ~ 0.

    Any positive multiple of a neuron's direction gives the same pattern. One kernel-sized
    array is allocated (VGG16's first dense layer holds 103 M weights): the products
    w * direction, whose buffer then takes the pattern; `direction` is only read.

    Args:
        kmap: the layer's kernel map.
        w: its kernel (float32 or float64).
        direction: a kernel-shaped array, one direction per neuron.
        valid: per neuron, whether it has a direction (a boolean vector).

    Returns:
        (the patterns, a kernel-shaped float64 array; per neuron whether it got one).
    """
    product = np.multiply(w, direction, dtype=np.float64)
    denom = _per_neuron(kmap, product)
    scale = _per_neuron(kmap, np.abs(product, out=product))
    ok = valid & (np.abs(denom) > 1e-12 * np.maximum(scale, 1e-300))
    inv = np.where(ok, 1.0 / np.where(ok, denom, 1.0), 0.0)
    return np.multiply(direction, _to_kernel(kmap, inv), out=product), ok


def _covariance(kmap, s):
    n = s["n"]
    return s["c_xy"] * _to_kernel(kmap, np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0))


class Estimator:
    """A signal estimator. `estimate(kmap, w, stats, rng)` -> (patterns, dead): patterns
    maps the names in `arrays` to float64 arrays shaped like the kernel `w` (float32 or
    float64; products are formed in float64), those of the regimes the statistics hold;
    dead counts the neurons that got a zero pattern."""

    name = None
    # whether it needs data (`fit`); the estimators without it compute patterns from the
    # weights alone
    needs_fit = True
    # the pattern arrays of a layer
    arrays = ("a",)
    # the regimes whose kernel-shaped statistics it needs ("plus"/"minus": split by the
    # sign of the pre-activation; "all": every observation)
    regimes = ("all",)
    # whether it needs the regimes' input means E_r[x]
    needs_mean_x = False

    @property
    def fitted(self):
        """The former name of `needs_fit`."""
        return self.needs_fit

    @property
    def two_component(self):
        """Whether it estimates one pattern per regime (a_plus, a_minus)."""
        return self.arrays == ("a_plus", "a_minus")

    def estimate(self, kmap, w, stats=None, rng=None):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


ESTIMATORS = Registry("pattern type", error=ValueError, base=Estimator)


def register_estimator(name, cls=None, *, replace=False):
    """Register an estimator class under the pattern type `name` (which becomes its
    `name`); without `cls`, a class decorator.

    Args:
        name: the pattern type ("relu", "linear", ...).
        cls: a subclass of `Estimator`.
        replace: allow replacing the estimator of that name.

    Returns:
        The class.

    Raises:
        ValueError: a name taken (unless `replace`), or a class that is no Estimator.
    """
    if cls is None:
        return lambda decorated: register_estimator(name, decorated, replace=replace)
    return ESTIMATORS.register(name, cls, replace=replace)


@register_estimator("relu")
class TwoComponent(Estimator):
    arrays = ("a_plus", "a_minus")
    regimes = ("plus", "minus")

    def direction(self, kmap, stats, regime):
        """The unnormalised pattern of one regime (a positive multiple of it: the co-moment
        n_r cov_r[x, y], whose factor n_r the normalisation removes), and which neurons
        have one."""
        s = stats[regime]
        return s["c_xy"], s["n"] > 1

    def estimate(self, kmap, w, stats=None, rng=None):
        out, ok = {}, None
        for name, regime in zip(self.arrays, self.regimes):
            if "c_xy" not in stats[regime]:
                continue  # not gathered (a regime that never passes a signal)
            direction, valid = self.direction(kmap, stats, regime)
            out[name], ok_r = normalise(kmap, w, direction, valid)
            if regime == "plus":
                ok = ok_r
        return out, int((~ok).sum())


@register_estimator("relu.eq8")
class TwoComponentEq8(TwoComponent):
    needs_mean_x = True

    def direction(self, kmap, stats, regime):
        plus, minus, s = stats["plus"], stats["minus"], stats[regime]
        n = plus["n"] + minus["n"]
        mean_y = np.where(n > 0, (plus["n"] * plus["mean_y"] + minus["n"] * minus["mean_y"])
                          / np.maximum(n, 1), 0.0)
        # E_r[xy] - E_r[x] E[y] = cov_r + E_r[x] (E_r[y] - E[y])
        shift = _to_kernel(kmap, s["mean_y"] - mean_y)
        return _covariance(kmap, s) + s["mean_x"] * shift, s["n"] > 0


@register_estimator("linear")
class Linear(Estimator):
    def estimate(self, kmap, w, stats=None, rng=None):
        # the co-moment n cov[x, y]: the normalisation removes the factor n
        both = stats["all"]
        a, ok = normalise(kmap, w, both["c_xy"], both["n"] > 1)
        return {"a": a}, int((~ok).sum())


class FromWeights(Estimator):
    """An estimator without fitting: a direction per neuron computed from the weights,
    normalised."""

    needs_fit = False
    regimes = ()

    def direction(self, w, rng):
        raise NotImplementedError

    def estimate(self, kmap, w, stats=None, rng=None):
        a, ok = normalise(kmap, w, self.direction(w, rng), np.ones(kmap.output_channels,
                                                                     bool))
        return {"a": a}, int((~ok).sum())


@register_estimator("filter")
class Filter(FromWeights):
    def direction(self, w, rng):
        return w


@register_estimator("random")
class Random(FromWeights):
    def direction(self, w, rng):
        return (rng or np.random.default_rng(0)).normal(size=w.shape)


def estimator(pattern_type):
    """The estimator of a pattern type ("relu", "relu.eq8", "linear", "filter", "random", or
    one registered since).

    Raises:
        ValueError: an unknown pattern type, naming the registered ones.
    """
    cls = ESTIMATORS.get(pattern_type) if isinstance(pattern_type, str) else None
    if cls is None:
        raise ValueError(f"pattern_type={pattern_type!r} is not one of "
                         f"{', '.join(map(repr, ESTIMATORS))}.")
    return cls()


def __getattr__(name):
    if name == "PATTERN_TYPES":  # the former frozen list; now read from the registry
        return ESTIMATORS.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
