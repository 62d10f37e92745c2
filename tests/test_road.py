"""ROAD (`keras_patterns.evaluate.road`) and its noisy linear imputation against numpy: the
imputed values solve a dense system assembled here pixel by pixel from the paper's weights
(1/6 for direct, 1/12 for diagonal neighbours); an isolated removed pixel becomes the
weighted mean of its neighbours; and on a linear model the MoRF and LeRF curves are w . x
of the imputed images."""

import keras
import numpy as np
import pytest
from oracles import linear_case

from keras_patterns.evaluate import road
from keras_patterns.evaluate.imputation import linear_imputation


def dense_imputation(image, removed):
    """The paper's system, dense: for each removed p, x_p = sum_q w_pq x_q / sum_q w_pq over
    the neighbours inside the image, solved with np.linalg.solve."""
    h, w, c = image.shape
    where = [tuple(p) for p in np.argwhere(removed)]
    index = {p: j for j, p in enumerate(where)}
    a = np.zeros((len(where), len(where)))
    b = np.zeros((len(where), c))
    for j, (r, col) in enumerate(where):
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                q = (r + dr, col + dc)
                if (dr, dc) == (0, 0) or not (0 <= q[0] < h and 0 <= q[1] < w):
                    continue
                weight = 1 / 6 if dr == 0 or dc == 0 else 1 / 12
                a[j, j] += weight
                if q in index:
                    a[j, index[q]] -= weight
                else:
                    b[j] += weight * image[q]
    out = image.astype(np.float64).copy()
    out[removed] = np.linalg.solve(a, b)
    return out


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 9, 3)), rng.random((7, 9)) < 0.4


@pytest.mark.parametrize("use_scipy", [True, False])
def test_imputation_solves_the_papers_system(image, use_scipy):
    x, removed = image
    got = linear_imputation(x, removed, use_scipy=use_scipy)
    np.testing.assert_allclose(got, dense_imputation(x, removed), rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(got[~removed], x[~removed])


def test_an_isolated_pixel_is_the_weighted_mean_of_its_neighbours(image):
    x, _ = image
    removed = np.zeros((7, 9), bool)
    removed[3, 4] = True  # inside: 4 direct (1/6) and 4 diagonal (1/12) neighbours, sum 1
    removed[0, 0] = True  # a corner: 2 direct, 1 diagonal, sum 5/12
    got = linear_imputation(x, removed)
    direct = x[2, 4] + x[4, 4] + x[3, 3] + x[3, 5]
    diagonal = x[2, 3] + x[2, 5] + x[4, 3] + x[4, 5]
    np.testing.assert_allclose(got[3, 4], direct / 6 + diagonal / 12, rtol=1e-10)
    corner = ((x[0, 1] + x[1, 0]) / 6 + x[1, 1] / 12) / (5 / 12)
    np.testing.assert_allclose(got[0, 0], corner, rtol=1e-10)


def test_noise_is_added_to_the_imputed_pixels_only(image):
    x, removed = image
    noisy = linear_imputation(x, removed, noise=0.5, rng=np.random.default_rng(1))
    clean = linear_imputation(x, removed)
    np.testing.assert_array_equal(noisy[~removed], x[~removed])
    diff = (noisy - clean)[removed]
    assert abs(diff.std() - 0.5) < 0.1 and abs(diff.mean()) < 0.15


def test_every_pixel_removed_is_refused(image):
    x, _ = image
    with pytest.raises(ValueError, match="every pixel"):
        linear_imputation(x, np.ones((7, 9), bool))


def test_morf_and_lerf_curves_of_a_linear_model():
    x, wgt, model = linear_case(3, (6, 6, 2), seed=2)
    a = x * wgt
    fractions = (0.0, 0.25, 0.5, 0.75)
    result = road(model, x, a, percentages=fractions, noise=0.0, score="logit",
                  batch_size=5)
    relevance = a.sum(-1).reshape(3, -1)
    for order, got in (("morf", result.morf), ("lerf", result.lerf)):
        sign = -1 if order == "morf" else 1
        want = np.zeros((3, len(fractions)))
        for i in range(3):
            ranked = np.argsort(sign * relevance[i], kind="stable")
            for j, p in enumerate(fractions):
                removed = np.zeros(36, bool)
                removed[ranked[:round(p * 36)]] = True
                imputed = dense_imputation(x[i].astype(np.float64), removed.reshape(6, 6))
                want[i, j] = (imputed * wgt).sum()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.original, a.sum((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(result.morf_curve, result.morf.mean(0))
    assert result.forward_passes == 6  # ceil(3 samples * (1 + 2 * 4) copies / 5)
    again = road(model, x, a, percentages=fractions, noise=0.0, score="logit", batch_size=64)
    np.testing.assert_allclose(again.morf, result.morf, rtol=1e-6)


def test_bad_parameters_are_named():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="percentages"):
        road(model, x, x, percentages=(0.5, 1.0))
    with pytest.raises(ValueError, match="needs images"):
        road(model, np.zeros((1, 16), np.float32), np.zeros((1, 16)))
