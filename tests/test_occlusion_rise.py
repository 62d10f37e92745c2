"""Occlusion and RISE on linear models f(x) = w·x + b, against their closed forms in numpy;
the same explanation for any batch size (the masked copies go through the model in other
groups); RISE reproducible by its seed."""

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close, bilinear_matrix

import keras_patterns as kp


def _linear(shape, outputs=3, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape), layers.Flatten(),
                              layers.Dense(outputs, bias_initializer="random_normal")])
    w = model.layers[-1].kernel.numpy().astype(np.float64).reshape(*shape, outputs)
    return model, w, model.layers[-1].bias.numpy().astype(np.float64)


def _x(n, shape, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype("float32")


def _occlusion(w, x, starts, patch, fill, units):
    """Per position, the mean over the patches covering it of sum_patch w_c (x − fill)."""
    total = np.zeros(x.shape[:-1])
    count = np.zeros(x.shape[1:-1])
    for corner in np.array(np.meshgrid(*starts, indexing="ij")).reshape(len(starts), -1).T:
        box = tuple(slice(s, s + p) for s, p in zip(corner, patch))
        for i in range(len(x)):
            drop = np.sum(w[box + (slice(None), units[i])] * (x[i][box] - fill))
            total[(i,) + box] += drop
        count[box] += 1
    assert count.min() >= 1  # every position is covered
    return np.repeat((total / count)[..., None], x.shape[-1], axis=-1)


def test_occlusion_equals_the_patch_sums_of_a_linear_model():
    shape = (7, 6, 2)
    model, w, b = _linear(shape)
    x = _x(4, shape)
    units = np.argmax(x.reshape(4, -1) @ w.reshape(-1, 3) + b, axis=1)
    # 7 positions, patches of 3 every 2: 0, 2, 4; 6 positions: 0, 2, and 3 for the last one
    starts = ([0, 2, 4], [0, 2, 3])
    for fill, batch_sizes in ((0.0, (1, 64)), (0.5, (5,))):
        want = _occlusion(w, x.astype(np.float64), starts, (3, 3), fill, units)
        for batch_size in batch_sizes:
            analyzer = kp.create_analyzer("occlusion", model, patch_size=3, stride=2,
                                          fill=fill, batch_size=batch_size)
            assert_close(analyzer.analyze(x), want, rtol=1e-5)
            assert_close(analyzer.analyze(x, batch_size=3), want, rtol=1e-5)
    # other patch shapes per axis, an index per sample, and "all" (the sum of the outputs)
    want = _occlusion(w, x.astype(np.float64), ([0, 1, 2, 3, 4, 5], [0, 3]), (2, 3), 0.0,
                      [1, 0, 2, 1])
    got = kp.create_analyzer("occlusion", model, patch_size=(2, 3), stride=(1, 3),
                             neuron_selection_mode="index").analyze(x, [1, 0, 2, 1])
    assert_close(got, want, rtol=1e-5)
    summed = w.sum(axis=-1, keepdims=True)
    want = _occlusion(summed, x.astype(np.float64), starts, (3, 3), 0.0, [0] * 4)
    got = kp.create_analyzer("occlusion", model, patch_size=3, stride=2,
                             neuron_selection_mode="all").analyze(x)
    assert_close(got, want, rtol=1e-5)


def test_occlusion_of_sequences_and_patches_longer_than_the_input():
    shape = (10, 2)
    model, w, b = _linear(shape, outputs=2)
    x = _x(3, shape)
    units = np.argmax(x.reshape(3, -1) @ w.reshape(-1, 2) + b, axis=1)
    want = _occlusion(w, x.astype(np.float64), ([0, 3, 6],), (4,), 0.0, units)
    assert_close(kp.create_analyzer("occlusion", model, patch_size=4, stride=3).analyze(x),
                 want, rtol=1e-5)
    # one patch covers everything: f(x) − f(fill) at every position
    whole = kp.create_analyzer("occlusion", model, patch_size=50, fill=0.25).analyze(x)
    drop = [np.sum(w[..., c] * (x[i] - 0.25)) for i, c in enumerate(units)]
    assert_close(whole, np.broadcast_to(np.asarray(drop)[:, None, None], x.shape), rtol=1e-5)


def test_occlusion_refuses_bad_arguments_by_name():
    model, _, _ = _linear((7, 6, 2))
    with pytest.raises(ValueError, match="patch_size must be an int or 2 ints"):
        kp.create_analyzer("occlusion", model, patch_size=(2, 2, 2))
    with pytest.raises(ValueError, match="stride must be a positive int"):
        kp.create_analyzer("occlusion", model, stride=0)
    with pytest.raises(ValueError, match="fill must be a finite number"):
        kp.create_analyzer("occlusion", model, fill=float("nan"))
    with pytest.raises(kp.NotAnalyzableModelError, match="'occlusion' needs an input with "
                                                         "spatial axes"):
        kp.create_analyzer("occlusion", keras.Sequential([keras.Input((5,)),
                                                          layers.Dense(2)]))


def _rise_closed_form(w, b, x, unit, resolution, p):
    """E[f(x ⊙ m) m(u)] / p for f = w·x + b and the masks of the docstring: a grid of
    Bernoulli(p) cells g, bilinear weights a(j) (rows of B, summing to 1) at the shifted
    positions, so E[m(j) m(u) | s] = p(1 − p) <a(j + s), a(u + s)> + p², separable over the
    axes and averaged over the shifts s = 0..c − 1; then
    S(u) = sum_j v_j E[m(j) m(u)] / p + b with v_j = sum over channels of w_j x_j."""
    kernels = []
    for size, g in zip(x.shape[:-1], resolution):
        c = -(-size // g)
        big = bilinear_matrix(g, (g + 1) * c)
        kernels.append(sum(big[s : s + size] @ big[s : s + size].T for s in range(c)) / c)
    v = np.sum(w[..., unit] * x, axis=-1)
    s = (1 - p) * kernels[0] @ v @ kernels[1].T + p * v.sum() + b[unit]
    return np.repeat(s[..., None], x.shape[-1], axis=-1)


def test_rise_converges_to_its_closed_form_on_a_linear_model():
    shape = (8, 8, 1)
    model, w, b = _linear(shape, outputs=2, seed=3)
    x = _x(2, shape, seed=1)
    want = np.stack([_rise_closed_form(w, b, x[i].astype(np.float64), 1, (3, 3), 0.5)
                     for i in range(2)])
    analyzer = kp.create_analyzer("rise", model, n_masks=20000, resolution=3,
                                  probability=0.5, seed=0, batch_size=8192,
                                  neuron_selection_mode="index")
    got = analyzer.analyze(x, neuron_selection=1)
    # within 5 % of the map's variation over the positions (the Monte Carlo error of
    # 20000 masks is about 1 %), so the varying part is resolved, not only the mean
    varying = np.ptp(want, axis=(1, 2, 3))
    error = np.abs(got - want).max(axis=(1, 2, 3))
    assert (error < 0.05 * varying).all(), (error, varying)


def test_rise_is_reproducible_by_its_seed_for_any_batch_size():
    shape = (8, 8, 2)
    model, _, _ = _linear(shape)
    x = _x(5, shape)
    first = kp.create_analyzer("rise", model, n_masks=50, resolution=(2, 4), seed=7)
    want = first.analyze(x)
    assert_close(first.analyze(x), want, rtol=0)
    # groups of one mask (chunks of 3, then 2 samples), then of two (chunks of 1)
    again = kp.create_analyzer("rise", model, n_masks=50, resolution=(2, 4), seed=7,
                               batch_size=3)
    assert_close(again.analyze(x), want, rtol=1e-6)
    assert_close(again.analyze(x, batch_size=1), want, rtol=1e-6)
    other = kp.create_analyzer("rise", model, n_masks=50, resolution=(2, 4), seed=8)
    assert np.abs(other.analyze(x) - want).max() > 1e-3
    fresh = kp.create_analyzer("rise", model, n_masks=50, resolution=(2, 4))
    assert np.abs(fresh.analyze(x) - fresh.analyze(x)).max() > 1e-3
    with pytest.raises(ValueError, match="probability must be in"):
        kp.create_analyzer("rise", model, probability=0.0)
    with pytest.raises(ValueError, match="n_masks must be a positive int"):
        kp.create_analyzer("rise", model, n_masks=0)


class Wrapper(keras.Model):
    """A subclassed model around another: no graph of layers, only its output."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def call(self, x):
        return self.inner(x)


def test_one_compiled_function_for_all_groups_and_subclassed_models():
    """100 masks in groups of 3 (batch_size 6, 2 samples): the group function is traced a
    few times, not once per group; a subclassed model is explained by its output alone."""
    shape = (7, 6, 2)
    model, w, b = _linear(shape)
    x = _x(2, shape)
    analyzer = kp.create_analyzer("rise", model, n_masks=100, resolution=3, seed=1,
                                  batch_size=6)
    want = analyzer.analyze(x)
    analyzer.analyze(_x(1, shape))
    assert analyzer._group_function.fn.experimental_get_tracing_count() <= 3
    wrapped = Wrapper(model)
    wrapped(x)
    got = kp.create_analyzer("rise", wrapped, n_masks=100, resolution=3, seed=1,
                             batch_size=6).analyze(x)
    assert_close(got, want, rtol=1e-5)
    units = np.argmax(x.reshape(2, -1) @ w.reshape(-1, 3) + b, axis=1)
    want = _occlusion(w, x.astype(np.float64), ([0, 2, 4], [0, 2, 3]), (3, 3), 0.0, units)
    got = kp.create_analyzer("occlusion", wrapped, patch_size=3, stride=2).analyze(x)
    assert_close(got, want, rtol=1e-5)
