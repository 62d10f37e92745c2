"""Deletion, insertion and AOPC (`keras_patterns.evaluate.deletion`) against numpy: on a
linear model f(x) = w.x the attribution w * x is exact, so removing features changes the
output by the sum of their contributions and every curve is a cumulative sum; on a token
model Embedding -> mean -> Dense each token's contribution is known in closed form."""

import keras
import numpy as np
import pytest
from oracles import linear_case, token_model

from keras_patterns.evaluate import aopc, deletion, insertion


def numpy_curves(x, w, baseline, steps, ids, n_features, insert=False, order=-1):
    """The curves by hand: contributions per feature, sorted, cumulated at n_k."""
    n = len(x)
    contrib = ((x - baseline) * w).reshape(n, -1)  # each entry's share of f(x) - f(b)
    per_entry_feature = np.broadcast_to(ids[..., None], x.shape[1:]).ravel()
    feats = np.zeros((n, n_features))
    np.add.at(feats, (slice(None), per_entry_feature), contrib)
    relevance = np.zeros((n, n_features))
    np.add.at(relevance, (slice(None), per_entry_feature), (x * w).reshape(n, -1))
    idx = np.argsort(order * relevance, axis=1, kind="stable")
    sorted_contrib = np.take_along_axis(feats, idx, axis=1)
    cums = np.concatenate([np.zeros((n, 1)), np.cumsum(sorted_contrib, axis=1)], axis=1)
    counts = (np.arange(steps + 1) * n_features) // steps
    fx = (x * w).reshape(n, -1).sum(1)
    fb = (np.broadcast_to(baseline, x.shape) * w).reshape(n, -1).sum(1)
    if insert:
        return fb[:, None] + cums[:, counts], counts / n_features
    return fx[:, None] - cums[:, counts], counts / n_features


@pytest.fixture
def images():
    return linear_case(5, (6, 7, 2))


def test_deletion_pixels_is_the_cumulative_sum_of_sorted_contributions(images):
    x, w, model = images
    steps = 7  # 42 pixels: 6 per step
    result = deletion(model, x, x * w, steps=steps, score="logit", baseline="zero")
    want, fractions = numpy_curves(x, w, 0.0, steps, np.arange(42).reshape(6, 7), 42)
    np.testing.assert_allclose(result.curves, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.fractions, fractions)
    np.testing.assert_allclose(result.curve, want.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.auc_per_sample, np.trapezoid(want, fractions, axis=1),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.auc, np.trapezoid(want.mean(0), fractions),
                               rtol=1e-4, atol=1e-4)
    # AOPC (Samek et al. 2017): the mean over the steps + 1 points of f(x) - f(x_k)
    np.testing.assert_allclose(result.aopc, np.mean(want[:, :1] - want), rtol=1e-4)
    np.testing.assert_allclose(result.aopc_per_sample, aopc(want), rtol=1e-4, atol=1e-5)
    # removing everything leaves f(0) = 0; the most relevant first drops fastest
    np.testing.assert_allclose(result.curves[:, -1], 0.0, atol=1e-5)
    lerf = deletion(model, x, x * w, steps=steps, score="logit", order="least_relevant_first")
    want_lerf, _ = numpy_curves(x, w, 0.0, steps, np.arange(42).reshape(6, 7), 42, order=1)
    np.testing.assert_allclose(lerf.curves, want_lerf, rtol=1e-4, atol=1e-4)
    assert result.aopc > lerf.aopc and result.auc < lerf.auc


def test_insertion_and_patches_with_a_mean_baseline(images):
    x, w, model = images
    steps = 4
    # 3 x 3 patches on 6 x 7: a 2 x 3 grid, the last column 1 pixel wide
    ids = (np.arange(6)[:, None] // 3) * 3 + np.arange(7)[None, :] // 3
    result = insertion(model, x, x * w, steps=steps, score="logit", granularity="patch",
                       patch_size=3, baseline="mean")
    mean = x.mean(axis=(1, 2), keepdims=True)
    want, fractions = numpy_curves(x, w, mean, steps, ids, 6, insert=True)
    np.testing.assert_allclose(result.curves, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.auc, np.trapezoid(want.mean(0), fractions), rtol=1e-4)
    assert result.aopc is None
    # the class is picked on x in ceil(5 / 64) passes, then 5 * (steps + 1) copies
    assert result.forward_passes == 2
    # inserting everything gives f(x) back
    np.testing.assert_allclose(result.curves[:, -1], (x * w).sum((1, 2, 3)), rtol=1e-4)


def test_blur_baseline_of_insertion_is_the_gaussian_blur(images):
    from scipy import ndimage

    x, w, model = images
    result = insertion(model, x, x * w, steps=2, score="logit", blur_sigma=1.0)
    blurred = ndimage.gaussian_filter(x.astype(np.float64), sigma=(0, 1, 1, 0),
                                      mode="reflect", truncate=3.0)
    np.testing.assert_allclose(result.curves[:, 0], (blurred * w).sum((1, 2, 3)),
                               rtol=1e-4, atol=1e-4)


def test_batch_size_does_not_change_the_curves(images):
    x, w, model = images
    a = np.random.default_rng(1).normal(size=x.shape)
    runs = [deletion(model, x, a, steps=5, batch_size=b, score="logit") for b in (1, 4, 64)]
    for r in runs[1:]:
        np.testing.assert_allclose(r.curves, runs[0].curves, rtol=1e-5, atol=1e-6)
    assert [r.forward_passes for r in runs] == [30, 8, 1]  # ceil(5 * 6 / batch)


def test_tokens_deletion_and_insertion_in_closed_form():
    model, emb, v = token_model()
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, 11, size=(4, 6)).astype(np.int32)
    share = emb[tokens] @ v / 6.0  # (N, T): each token's contribution
    f = share.sum(1) + 0.3
    steps = 3
    order = np.argsort(-share, axis=1, kind="stable")
    cums = np.concatenate([np.zeros((4, 1)), np.cumsum(np.take_along_axis(share, order, 1), 1)],
                          axis=1)
    counts = np.arange(steps + 1) * 6 // steps
    d = deletion(model, tokens, share, steps=steps, granularity="token", score="logit")
    np.testing.assert_allclose(d.curves, f[:, None] - cums[:, counts], rtol=1e-5, atol=1e-5)
    ins = insertion(model, tokens, share, steps=steps, granularity="token", score="logit")
    np.testing.assert_allclose(ins.curves, 0.3 + cums[:, counts], rtol=1e-5, atol=1e-5)
    # per-dimension attributions (N, T, D) are summed over D; another baseline token id
    per_dim = emb[tokens] * v / 6.0
    other = deletion(model, tokens, per_dim, steps=steps, granularity="token", score="logit",
                     baseline=5)
    lost = np.take_along_axis(share - (emb[5] @ v) / 6.0, order, 1)
    want = f[:, None] - np.concatenate([np.zeros((4, 1)), np.cumsum(lost, 1)], 1)[:, counts]
    np.testing.assert_allclose(other.curves, want, rtol=1e-5, atol=1e-5)


def test_bad_inputs_name_the_problem(images):
    x, w, model = images
    with pytest.raises(ValueError, match="attributions of shape"):
        deletion(model, x, x[:, :3], score="logit")
    with pytest.raises(ValueError, match="granularity"):
        deletion(model, x, x, granularity="superpixel")
    with pytest.raises(ValueError, match="integer token ids"):
        deletion(model, x, x, granularity="token")
    with pytest.raises(ValueError, match="steps"):
        deletion(model, x, x, steps=0)
    with pytest.raises(ValueError, match="needs attributions"):
        deletion(model, x, None)
    tm, _, _ = token_model()
    with pytest.raises(ValueError, match="baseline token id"):
        deletion(tm, np.ones((2, 6), np.int32), np.ones((2, 6)), granularity="token",
                 baseline="blur")


def test_one_compiled_function_per_model_that_does_not_keep_the_model_alive():
    import gc
    import weakref

    from keras_patterns.evaluate.scoring import score_function

    x, w, model = linear_case(2, (3, 3, 1))
    first = score_function(model, "logit")
    assert score_function(model, "logit") is first  # reused by every metric and call
    with pytest.raises(ValueError, match="one output unit"):  # a softmax of one unit: 1
        score_function(model, "probability")
    deletion(model, x, x * w, steps=2, score="logit")
    ref = weakref.ref(model)
    del model, first
    gc.collect()
    assert ref() is None


def test_a_model_with_two_outputs_is_refused():
    inp = keras.Input((4,))
    model = keras.Model(inp, [keras.layers.Dense(2)(inp), keras.layers.Dense(3)(inp)])
    x = np.ones((2, 4), np.float32)
    for metric in (deletion, insertion):  # the second call reuses the cached function
        with pytest.raises(ValueError, match="one output; this one has 2"):
            metric(model, x, x, steps=2)
