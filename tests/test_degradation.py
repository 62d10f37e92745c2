"""Image degradation (`keras_patterns.evaluate.degradation`) against independent
computations: a linear model whose only relevant patch is known, a one-image-at-a-time numpy
loop, the replaced pixels read back through a model that outputs its input, the AOPC formula
on known curves, and the number of forward passes counted inside the model."""

import math

import keras
import numpy as np
import pytest
from scipy import ndimage

from keras_patterns.evaluate.degradation import aopc, degradation, replacement_images


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def one_patch_model(size=9, patch=3, at=(1, 2), softmax_output=True):
    """Flatten -> Dense(2): class 0 reads only the pixels of patch `at` (weights 1..9),
    class 1 reads nothing."""
    w = np.zeros((size, size, 2), np.float32)
    r, c = at
    w[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch, 0] = np.arange(1, 10).reshape(3, 3)
    model = keras.Sequential([
        keras.Input((size, size, 1)), keras.layers.Flatten(),
        keras.layers.Dense(2, activation="softmax" if softmax_output else None)])
    model.layers[-1].set_weights([w.reshape(size * size, 2), np.zeros(2, np.float32)])
    return model, w[..., 0]


def test_the_known_patch_drops_the_score_at_step_one_only():
    model, w = one_patch_model()
    x = np.random.uniform(0.5, 1.0, (4, 9, 9, 1)).astype(np.float32)
    logit = (x[..., 0] * w).sum(axis=(1, 2))
    p0 = 1.0 / (1.0 + np.exp(-logit))  # softmax of (logit, 0)
    attribution = x * w[..., None]  # input x gradient of class 0
    steps = 9  # the 3 x 3 grid has 9 patches

    first = degradation(model, x, attribution, patch_size=3, steps=steps, replace="zero")
    assert (first.classes == 0).all()
    np.testing.assert_allclose(first.curves[:, 0], p0, rtol=1e-5)
    np.testing.assert_allclose(first.curves[:, 1:], 0.5, rtol=1e-6)  # logit 0 after step 1
    assert (first.patch_order[:, 0] == 1 * 3 + 2).all()

    last = degradation(model, x, attribution, patch_size=3, steps=steps, replace="zero",
                       order="least_relevant_first")
    np.testing.assert_allclose(last.curves[:, :steps], np.repeat(p0[:, None], steps, 1),
                               rtol=1e-5)
    np.testing.assert_allclose(last.curves[:, steps], 0.5, rtol=1e-6)

    # AOPC (Samek et al.): the mean over the steps + 1 points of curve[0] - curve[n]
    np.testing.assert_allclose(first.aopc, np.mean(p0 - 0.5) * steps / (steps + 1), rtol=1e-5)
    np.testing.assert_allclose(last.aopc, np.mean(p0 - 0.5) / (steps + 1), rtol=1e-5)
    assert first.aopc > last.aopc


def test_aopc_of_known_curves():
    assert aopc([1.0, 0.5, 0.25, 0.0]) == pytest.approx((0 + 0.5 + 0.75 + 1.0) / 4)
    np.testing.assert_allclose(aopc([[2.0, 2.0, 2.0], [1.0, 0.0, -1.0]]), [0.0, 1.0])


def test_score_logit_and_probability():
    """score='logit' strips a final softmax; a model without one is put through softmax."""
    with_softmax, w = one_patch_model()
    logits_model, _ = one_patch_model(softmax_output=False)
    x = np.random.uniform(0.5, 1.0, (3, 9, 9, 1)).astype(np.float32)
    a = np.random.normal(size=x.shape)
    logit = (x[..., 0] * w).sum(axis=(1, 2))
    for model in (with_softmax, logits_model):
        lg = degradation(model, x, a, patch_size=3, steps=0, score="logit",
                         neuron_selection=[0, 1, 0])
        np.testing.assert_allclose(lg.curves[:, 0], [logit[0], 0.0, logit[2]], rtol=1e-5,
                                   atol=1e-6)
        pr = degradation(model, x, a, patch_size=3, steps=0, neuron_selection=1)
        np.testing.assert_allclose(pr.curves[:, 0], softmax(np.stack(
            [logit, np.zeros(3)], 1))[:, 1], rtol=1e-5)

    # a softmax as a keras.ops call or inside a nested model is found too (not applied twice)
    inputs = keras.Input((9, 9, 1))
    by_op = keras.Model(inputs, keras.ops.softmax(logits_model(inputs)))
    nested = keras.Sequential([keras.Input((9, 9, 1)), with_softmax])
    want = softmax(np.stack([logit, np.zeros(3)], 1))[:, 0]
    for model in (by_op, nested):
        pr = degradation(model, x, a, patch_size=3, steps=0, neuron_selection=0)
        np.testing.assert_allclose(pr.curves[:, 0], want, rtol=1e-5)
    with pytest.raises(ValueError, match="keras.ops.softmax"):
        degradation(by_op, x, a, patch_size=3, steps=0, score="logit")
    with pytest.raises(ValueError, match="nested"):
        degradation(nested, x, a, patch_size=3, steps=0, score="logit")


def small_cnn(shape, classes=5):
    inputs = keras.Input(shape)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(classes)(h))


def loop_degradation(model, x, a, p, steps, replace, order):
    """One image at a time: explicit patch slices, sorting and replacement in numpy."""
    n, h, w, c = x.shape
    slices = [(slice(r, min(r + p, h)), slice(q, min(q + p, w)))
              for r in range(0, h, p) for q in range(0, w, p)]
    curves = np.zeros((n, steps + 1))
    for i in range(n):
        sums = np.array([a[i][s].sum() for s in slices])
        ranked = np.argsort(-sums if order == "most_relevant_first" else sums, kind="stable")
        image = x[i].astype(np.float64)
        cls = None
        for k in range(steps + 1):
            copy = image.copy()
            for j in ranked[:k]:
                s = slices[j]
                if replace == "patch_mean":
                    copy[s] = image[s].mean(axis=(0, 1))
                elif replace == "image_mean":
                    copy[s] = image.mean(axis=(0, 1))
                else:
                    copy[s] = 0.0
            out = softmax(np.asarray(model(copy[None].astype(np.float32)))[0].astype(
                np.float64))
            cls = int(np.argmax(out)) if cls is None else cls
            curves[i, k] = out[cls]
    return curves


@pytest.mark.parametrize("replace,order", [("patch_mean", "most_relevant_first"),
                                           ("image_mean", "least_relevant_first"),
                                           ("zero", "most_relevant_first")])
def test_batched_equals_a_loop_over_images(replace, order):
    """10 x 11 images with 4 x 4 patches: a 3 x 3 grid whose last row and column are
    partial; 11 steps exceed the 9 patches (the curve then stays flat)."""
    x = np.random.normal(size=(5, 10, 11, 3)).astype(np.float32)
    a = np.random.normal(size=x.shape)
    model = small_cnn(x.shape[1:])
    got = degradation(model, x, a, patch_size=4, steps=11, replace=replace, order=order,
                      batch_size=7)
    want = loop_degradation(model, x, a, 4, 11, replace, order)
    np.testing.assert_allclose(got.curves, want, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got.curve, want.mean(axis=0), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got.curves[:, 9:], want[:, 9:10].repeat(3, 1), rtol=2e-5)
    assert got.grid == (3, 3)


def pixel_tracks(x, a, p, steps, replace, seed=0):
    """Each copy of the image is scored on one of its own pixels (a model whose output is
    its flattened input): curves[j, n] is pixel j after n patches are replaced."""
    model = keras.Sequential([keras.Input(x.shape), keras.layers.Flatten()])
    d = x.size
    result = degradation(model, np.repeat(x[None], d, 0), np.repeat(a[None], d, 0),
                         patch_size=p, steps=steps, replace=replace, score="logit",
                         neuron_selection=np.arange(d), seed=seed)
    return result.curves.reshape(x.shape + (steps + 1,)), result


@pytest.mark.parametrize("replace", ["patch_mean", "image_mean", "zero", "blur"])
def test_replaced_pixels_on_a_tiny_image(replace):
    """5 x 5 x 2 image, 2 x 2 patches (grid 3 x 3, partial border patches), attribution
    making the patch order known: patch ids 8, 7, ..., 0."""
    x = np.random.uniform(-1, 1, (5, 5, 2)).astype(np.float32)
    a = np.zeros((5, 5, 2))
    for r in range(3):
        for c in range(3):
            block = a[2 * r:2 * r + 2, 2 * c:2 * c + 2, :]
            block[...] = (r * 3 + c + 1) / block.size  # patch (r, c) sums to its id + 1
    tracks, result = pixel_tracks(x, a, 2, 9, replace)
    assert (result.patch_order == np.arange(8, -1, -1)).all()
    xd = x.astype(np.float64)
    if replace == "blur":  # independent oracle: scipy's Gaussian filter, sigma = p / 2
        new = np.stack([ndimage.gaussian_filter(xd[..., ch], sigma=1.0, mode="reflect",
                                                truncate=3.0) for ch in range(2)], -1)
    for r in range(5):
        for c in range(5):
            pid = (r // 2) * 3 + c // 2
            step = 8 - pid + 1  # the step from which this pixel's patch is replaced
            rows, cols = slice(2 * (r // 2), 2 * (r // 2) + 2), slice(2 * (c // 2),
                                                                      2 * (c // 2) + 2)
            for ch in range(2):
                if replace == "patch_mean":
                    value = xd[rows, cols, ch].mean()
                elif replace == "image_mean":
                    value = xd[..., ch].mean()
                elif replace == "zero":
                    value = 0.0
                else:
                    value = new[r, c, ch]
                np.testing.assert_allclose(tracks[r, c, ch, :step], x[r, c, ch], rtol=1e-6)
                np.testing.assert_allclose(tracks[r, c, ch, step:], value, rtol=1e-5,
                                           atol=1e-6)


def test_uniform_noise_is_in_range_and_seeded():
    x = np.random.uniform(-2, 3, (6, 7, 3)).astype(np.float32)
    a = np.random.normal(size=x.shape)
    tracks, _ = pixel_tracks(x, a, 3, 9, "uniform", seed=5)
    again, _ = pixel_tracks(x, a, 3, 9, "uniform", seed=5)
    other, _ = pixel_tracks(x, a, 3, 9, "uniform", seed=6)
    final = tracks[..., -1]  # every pixel replaced after the 9 patches
    assert final.min() >= x.min() - 1e-6 and final.max() <= x.max() + 1e-6
    assert np.array_equal(tracks, again)
    assert not np.allclose(final, other[..., -1])
    noise = replacement_images(np.zeros((1, 100, 100, 1)), "uniform", 3,
                               np.random.default_rng(0))
    assert np.all(noise == 0.0)  # a constant image's range is one value
    wide = replacement_images(np.linspace(-1, 1, 40000).reshape(1, 200, 200, 1), "uniform",
                              3, np.random.default_rng(0))
    assert abs(wide.mean()) < 0.02 and abs(wide.var() - 1 / 3) < 0.02  # U(-1, 1)


class CountCalls(keras.layers.Layer):
    """Identity that counts its executions and the images it saw (inside compiled code)."""

    def build(self, shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False)
        self.images = self.add_weight(shape=(), initializer="zeros", trainable=False)
        self.largest = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        b = keras.ops.cast(keras.ops.shape(x)[0], "float32")
        self.calls.assign_add(1.0)
        self.images.assign_add(b)
        self.largest.assign(keras.ops.maximum(self.largest, b))
        return x


def test_copies_share_forward_passes():
    n, steps, batch = 10, 12, 16
    x = np.random.normal(size=(n, 8, 8, 1)).astype(np.float32)
    counter = CountCalls()
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(counter(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    before = float(counter.calls.numpy())
    result = degradation(model, x, np.random.normal(size=x.shape), patch_size=2, steps=steps,
                         batch_size=batch)
    calls = float(counter.calls.numpy()) - before
    assert calls == math.ceil(n * (steps + 1) / batch) == result.forward_passes == 9
    assert calls < n * steps  # not one call per copy
    assert float(counter.largest.numpy()) == batch
    assert float(counter.images.numpy()) == n * (steps + 1)


def test_random_order_is_seeded():
    x = np.random.normal(size=(4, 9, 9, 1)).astype(np.float32)
    model = small_cnn(x.shape[1:])
    one = degradation(model, x, None, patch_size=3, steps=9, order="random", seed=3)
    two = degradation(model, x, None, patch_size=3, steps=9, order="random", seed=3)
    other = degradation(model, x, None, patch_size=3, steps=9, order="random", seed=4)
    assert np.array_equal(one.patch_order, two.patch_order)
    np.testing.assert_array_equal(one.curves, two.curves)
    assert not np.array_equal(one.patch_order, other.patch_order)
    for row in one.patch_order:
        assert sorted(row) == list(range(9))
    assert len({tuple(r) for r in one.patch_order}) > 1  # one permutation per sample


def test_two_dimensional_images_and_errors():
    """(N, H, W) inputs (one channel without its axis) give the same curve as (N, H, W, 1)."""
    x = np.random.normal(size=(3, 6, 6)).astype(np.float32)
    a = np.random.normal(size=x.shape)
    flat2 = keras.Sequential([keras.Input((6, 6)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    flat3 = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    flat3.set_weights(flat2.get_weights())
    two = degradation(flat2, x, a, patch_size=2, steps=9)
    three = degradation(flat3, x[..., None], a[..., None], patch_size=2, steps=9)
    np.testing.assert_allclose(two.curves, three.curves, rtol=1e-6)
    with pytest.raises(ValueError, match="replace"):
        degradation(flat2, x, a, replace="median")
    with pytest.raises(ValueError, match="attributions"):
        degradation(flat2, x, a[:, :5], patch_size=2)
    with pytest.raises(ValueError, match="needs attributions"):
        degradation(flat2, x, None)
    with pytest.raises(ValueError, match="neuron_selection"):
        degradation(flat2, x, a, patch_size=2, steps=1, neuron_selection=4)
