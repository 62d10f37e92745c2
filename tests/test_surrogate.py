"""KernelSHAP and LIME on segments, against numpy: the exact Shapley values of a small
ReLU network (every coalition enumerated), the segment sums of w·(x − fill) of a linear
model (which any least-squares fit recovers, the masked output being linear in z), a
weighted ridge solve of the normal equations on the documented coalitions; the same
explanation for any batch size and a given seed; SLIC superpixels and user maps."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close

import keras_patterns as kp


def _network(shape, hidden=8, outputs=3, seed=0):
    """A Dense+ReLU network (hidden=0: linear) and its numpy forward pass."""
    keras.utils.set_random_seed(seed)
    stack = [layers.Dense(hidden, activation="relu")] if hidden else []
    model = keras.Sequential([keras.Input(shape), layers.Flatten(), *stack,
                              layers.Dense(outputs, bias_initializer="random_normal")])
    weights = [w.numpy().astype(np.float64) for w in model.weights]

    def forward(x):
        h = np.asarray(x, np.float64).reshape(len(x), -1)
        for k in range(0, len(weights), 2):
            h = h @ weights[k] + weights[k + 1]
            if k + 2 < len(weights):
                h = np.maximum(h, 0.0)
        return h

    return model, forward


def _x(n, shape, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype("float32")


def _masked(x, ids, z, fill):
    """x with the segments j where z_j = 0 set to fill, for every coalition z (rows)."""
    keep = np.asarray(z, np.float64)[:, ids][..., None]
    return x[None] * keep + fill * (1.0 - keep)


def _shapley(forward, x, ids, unit, fill):
    """Exact Shapley values: sum over S ∌ j of |S|! (M − |S| − 1)! / M! (v(S ∪ j) − v(S))."""
    m = int(ids.max()) + 1
    z = np.asarray(list(itertools.product([0, 1], repeat=m)))
    value = dict(zip(map(tuple, z), forward(_masked(x, ids, z, fill)) @ unit))
    phi = np.zeros(m)
    for s in z:
        for j in np.flatnonzero(s == 0):
            t = s.copy()
            t[j] = 1
            k = int(s.sum())
            weight = math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m)
            phi[j] += weight * (value[tuple(t)] - value[tuple(s)])
    return phi


def _spread(phi, ids, channels):
    return np.repeat(phi[ids][..., None], channels, axis=-1)


def _units(forward, x, k):
    return np.eye(k)[np.argmax(forward(x), axis=1)]


GRID = {(4, 4, 2): ((2, 2), np.array([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)),
        (6, 2): (6, np.arange(6))}


@pytest.mark.parametrize("shape", list(GRID))
def test_kernel_shap_with_every_coalition_is_the_exact_shapley_values(shape):
    grid, ids = GRID[shape]
    model, forward = _network(shape)
    x = _x(3, shape)
    for fill, mode, units in ((0.0, "max_activation", _units(forward, x, 3)),
                              (0.5, "index", np.eye(3)[[2, 0, 1]]),
                              (0.0, "all", np.ones((3, 3)))):
        analyzer = kp.create_analyzer("kernel_shap", model, grid_size=grid, fill=fill,
                                      n_samples=62, neuron_selection_mode=mode)
        got = analyzer.analyze(x, [2, 0, 1] if mode == "index" else None)
        phi = [_shapley(forward, x[i], ids, units[i], fill) for i in range(3)]
        assert_close(got, np.stack([_spread(p, ids, shape[-1]) for p in phi]), rtol=1e-5)
        # efficiency: the segments' values add up to f(x) − f(fill)
        drop = np.sum((forward(x) - forward(np.full_like(x, fill))) * units, axis=1)
        first = [int(np.argmax(ids.ravel() == j)) for j in range(int(ids.max()) + 1)]
        per_segment = got.reshape(3, -1, shape[-1])[:, first, 0]
        assert_close(per_segment.sum(axis=1), drop, rtol=1e-5)


def test_kernel_shap_sampled_is_efficient_and_exact_on_an_additive_model():
    shape = (4, 6, 1)
    x = _x(4, shape, seed=2)
    ids = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 2, axis=0), 2, axis=1)
    # a linear model: f(z) − f(∅) = sum_j z_j s_j for every coalition, so any weighted fit
    # on the 40 drawn coalitions (of 62) gives s_j, the segment sums of w·(x − fill)
    model, forward = _network(shape, hidden=0)
    w = np.stack([forward(np.eye(24).reshape(24, *shape))[:, c] - forward(
        np.zeros((1, *shape)))[0, c] for c in range(3)], axis=-1).reshape(*shape, 3)
    units = np.argmax(forward(x), axis=1)
    got = kp.create_analyzer("kernel_shap", model, grid_size=(2, 3), n_samples=40,
                             fill=0.25, seed=1).analyze(x)
    sums = [np.bincount(ids.ravel(), (w[..., u] * (x[i] - 0.25)).ravel())
            for i, u in enumerate(units)]
    assert_close(got, np.stack([_spread(s, ids, 1) for s in sums]), rtol=1e-5)
    # a ReLU network: the drawn coalitions' values still add up to f(x) − f(0)
    model, forward = _network(shape, hidden=6)
    got = kp.create_analyzer("kernel_shap", model, grid_size=(2, 3), n_samples=30,
                             seed=1).analyze(x)
    units = _units(forward, x, 3)
    drop = np.sum((forward(x) - forward(np.zeros_like(x))) * units, axis=1)
    per_segment = got[:, ::2, ::2, 0]  # one position of each of the 6 segments
    assert_close(per_segment.reshape(4, -1).sum(axis=1), drop, rtol=1e-5)


def _lime_coalitions(m, n_samples, seed, kernel_width):
    """The coalitions the LIME docstring describes: the full one, then uniform ones."""
    z = np.random.default_rng(seed).integers(0, 2, size=(n_samples, m))
    z[0] = 1
    norm = np.sqrt(z.sum(axis=1) * m)  # |z| |1|; the cosine of the empty coalition is 0
    d = 1.0 - np.divide(z.sum(axis=1), norm, out=np.zeros(len(z)), where=norm > 0)
    return z, np.exp(-(d**2) / kernel_width**2)


def _ridge(z, y, weights, alpha):
    """Normal equations of [z, 1] θ ≈ y with weights, the intercept not penalised."""
    a = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    penalty = alpha * np.diag(np.r_[np.ones(z.shape[1]), 0.0])
    return np.linalg.solve(a.T @ (weights[:, None] * a) + penalty,
                           a.T @ (weights * y))[:-1]


def test_lime_recovers_a_linear_model_and_equals_a_weighted_ridge_solve():
    shape = (4, 6, 2)
    x = _x(5, shape, seed=3)
    ids = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 2, axis=0), 2, axis=1)
    model, forward = _network(shape, hidden=0)
    units = np.argmax(forward(x), axis=1)
    for fill in (0.0, 0.5):
        want = []
        for i, u in enumerate(units):
            contribution = forward(_masked(x[i], ids, np.eye(6), fill))[:, u] - forward(
                np.full((1, *shape), fill))[0, u]
            want.append(_spread(contribution, ids, 2))
        for batch_size in (2, 64):
            got = kp.create_analyzer("lime", model, grid_size=(2, 3), n_samples=50,
                                     alpha=0.0, fill=fill, seed=4,
                                     batch_size=batch_size).analyze(x)
            assert_close(got, np.stack(want), rtol=1e-4)
    # a ReLU network and the ridge penalty: the solve on the documented coalitions
    model, forward = _network(shape, hidden=6, seed=1)
    z, weights = _lime_coalitions(6, 80, 5, 0.4)
    units = np.argmax(forward(x), axis=1)
    want = [_spread(_ridge(z, forward(_masked(x[i], ids, z, 0.0))[:, u], weights, 2.0),
                    ids, 2) for i, u in enumerate(units)]
    got = kp.create_analyzer("lime", model, grid_size=(2, 3), n_samples=80, seed=5,
                             kernel_width=0.4, alpha=2.0).analyze(x, batch_size=3)
    assert_close(got, np.stack(want), rtol=1e-4)


@pytest.mark.parametrize("method", ["kernel_shap", "lime"])
def test_the_seed_fixes_the_explanation_for_any_batch_size(method):
    shape = (8, 8, 1)
    model, _ = _network(shape)
    x = _x(5, shape)
    settings = {"grid_size": 4, "n_samples": 60}
    want = kp.create_analyzer(method, model, seed=3, **settings).analyze(x)
    for batch_size in (1, 3):
        got = kp.create_analyzer(method, model, seed=3, batch_size=batch_size,
                                 **settings).analyze(x)
        assert_close(got, want, rtol=1e-5)
    other = kp.create_analyzer(method, model, seed=4, **settings).analyze(x)
    assert np.abs(other - want).max() > 1e-4
    fresh = kp.create_analyzer(method, model, **settings)
    assert np.abs(fresh.analyze(x) - fresh.analyze(x)).max() > 1e-4


def test_segment_maps_given_by_the_user_and_by_slic():
    shape = (12, 12, 3)
    # images of a few coloured rectangles (SLIC finds no superpixels in noise)
    rng = np.random.default_rng(5)
    x = 0.05 * _x(3, shape, seed=5)
    for i in range(3):
        for _ in range(3 + i):
            top, left = rng.integers(0, 9, 2)
            x[i, top : top + 4, left : left + 5] = rng.uniform(size=3)
    model, forward = _network(shape, hidden=0)
    units = np.argmax(forward(x), axis=1)

    def segment_sums(maps):
        w = forward(np.eye(432).reshape(432, *shape)) - forward(np.zeros((1, *shape)))
        w = w.reshape(*shape, 3)
        out = []
        for i, u in enumerate(units):
            _, ids = np.unique(maps[i], return_inverse=True)
            ids = ids.reshape(maps[i].shape)
            out.append(_spread(np.bincount(ids.ravel(), np.sum(w[..., u] * x[i], -1).ravel()),
                               ids, 3))
        return np.stack(out)

    def lime(segments, **kwargs):
        return kp.create_analyzer("lime", model, segments=segments, n_samples=60, alpha=0.0,
                                  seed=0, **kwargs).analyze(x, batch_size=2)

    # one map for all samples, with ids that skip numbers; one map per sample
    shared = np.where(np.arange(12)[:, None] < 5, 7, 2) + 10 * (np.arange(12) >= 8)
    assert_close(lime(shared), segment_sums([shared] * 3), rtol=1e-4)
    own = np.stack([shared, shared.T, np.arange(144).reshape(12, 12) // 37])
    assert_close(lime(own), segment_sums(own), rtol=1e-4)
    batches = tf.data.Dataset.from_tensor_slices(x).batch(2)  # the maps follow the batches
    got = kp.create_analyzer("lime", model, segments=own, n_samples=60, alpha=0.0,
                             seed=0).analyze(batches)
    assert_close(got, segment_sums(own), rtol=1e-4)
    with pytest.raises(kp.InvalidInputError, match="segments holds 3 maps, one per sample, "
                                                   "but analyze got 2 samples"):
        kp.create_analyzer("lime", model, segments=own).analyze(x[:2])
    skimage = pytest.importorskip("skimage.segmentation")
    options = {"n_segments": 6, "compactness": 10.0}
    maps = [skimage.slic((s - s.min()) / np.ptp(s), channel_axis=-1, start_label=0,
                         **options) for s in x.astype(np.float64)]
    assert len({len(np.unique(m)) for m in maps}) > 1  # the samples' M differ
    assert_close(lime("slic", slic_options=options), segment_sums(maps), rtol=1e-4)


def test_bad_arguments_are_refused_by_name(monkeypatch):
    model, _ = _network((6, 6, 1))
    sequence, _ = _network((6, 2))
    cases = [({"segments": "felzenszwalb"}, "is not 'grid', 'slic' or an integer array"),
             ({"grid_size": 0}, "grid_size must be a positive int"),
             ({"grid_size": (2, 2, 2)}, "grid_size must be an int or 2 ints"),
             ({"segments": np.full((6, 6), -1)}, "negative ids"),
             ({"segments": np.zeros((5, 6), int)}, r"segments has shape \(5, 6\)"),
             ({"segments": np.zeros((6, 6))}, "integer array of segment ids"),
             ({"kernel_width": 0.0}, "kernel_width must be a finite number > 0"),
             ({"alpha": -1.0}, "alpha must be >= 0"),
             ({"seed": -1}, "seed must be None or an int >= 0"),
             ({"n_samples": 0}, "n_samples must be a positive int"),
             ({"fill": float("nan")}, "fill must be a finite number")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            kp.create_analyzer("lime", model, **kwargs)
    with pytest.raises(kp.NotAnalyzableModelError, match="'kernel_shap' with segments='slic' "
                                                         "cuts images"):
        kp.create_analyzer("kernel_shap", sequence, segments="slic")
    x = _x(1, (6, 6, 1))
    with pytest.raises(kp.InvalidInputError, match=r"needs n_samples >= 9 coalitions"):
        kp.create_analyzer("kernel_shap", model, grid_size=3, n_samples=8).analyze(x)
    with pytest.raises(kp.InvalidInputError, match=r"with alpha=0 .* needs n_samples > 9"):
        kp.create_analyzer("lime", model, grid_size=3, n_samples=9, alpha=0.0).analyze(x)
    monkeypatch.setitem(__import__("sys").modules, "skimage.segmentation", None)
    with pytest.raises(kp.errors.MissingExtraError, match="scikit-image"):
        kp.create_analyzer("kernel_shap", model, segments="slic")
