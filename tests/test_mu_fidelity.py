"""μ-fidelity (`keras_patterns.evaluate.mu_fidelity`) against closed forms and numpy: on a
linear model the exact attribution w * x predicts every output drop, so the correlation is
1; an attribution unrelated to the model correlates about 0; and the seeded subsets give
the numpy Pearson correlation recomputed by hand."""

import numpy as np
import pytest
from oracles import linear_case, token_model

from keras_patterns.evaluate import mu_fidelity


@pytest.fixture
def linear():
    return linear_case(3, (8, 8, 2))


def test_exact_attribution_of_a_linear_model_scores_one(linear):
    x, w, model = linear
    result = mu_fidelity(model, x, x * w, n_subsets=32, score="logit")
    np.testing.assert_allclose(result.per_sample, 1.0, atol=1e-5)
    np.testing.assert_allclose(result.drops, result.subset_sums, rtol=1e-4, atol=1e-4)
    assert result.subset_size == round(0.2 * 64) and not result.constant.any()


def test_a_random_attribution_scores_near_zero(linear):
    x, w, model = linear
    a = np.random.default_rng(5).normal(size=x.shape)
    result = mu_fidelity(model, x, a, n_subsets=256, score="logit", batch_size=256)
    # 256 subsets: the standard error of a null correlation is about 1 / 16
    assert abs(result.mu_fidelity) < 0.15 and np.all(np.abs(result.per_sample) < 0.25)


def test_the_seeded_subsets_give_the_numpy_correlation(linear):
    x, w, model = linear
    rng = np.random.default_rng(3)
    a = x * w + rng.normal(scale=0.5, size=x.shape)  # a noisy attribution: 0 < corr < 1
    result = mu_fidelity(model, x, a, subset_fraction=0.25, n_subsets=20, baseline=0.5,
                         granularity="patch", patch_size=3, score="logit", seed=7,
                         batch_size=6)
    ids = (np.arange(8)[:, None] // 3) * 3 + np.arange(8)[None, :] // 3  # 3 x 3 grid
    feat_a = np.stack([np.bincount(ids.ravel(), a[i].sum(-1).ravel()) for i in range(3)])
    m = round(0.25 * 9)
    want = []
    for i in range(3):
        sums, drops = [], []
        for k in range(1, 21):
            subset = np.random.default_rng([7, i, k]).choice(9, m, replace=False)
            inside = np.isin(ids, subset)[..., None]
            # f(x) - f(x with the subset at 0.5) = sum over the subset of w * (x - 0.5)
            drops.append((w * (x[i] - 0.5) * inside).sum())
            sums.append(feat_a[i, subset].sum())
        want.append(np.corrcoef(sums, drops)[0, 1])
    np.testing.assert_allclose(result.per_sample, want, rtol=1e-4, atol=1e-4)
    assert 0.0 < result.mu_fidelity < 0.999
    again = mu_fidelity(model, x, a, subset_fraction=0.25, n_subsets=20, baseline=0.5,
                        granularity="patch", patch_size=3, score="logit", seed=7,
                        batch_size=64)
    np.testing.assert_allclose(again.per_sample, result.per_sample, rtol=1e-6)


def test_tokens_with_their_exact_shares_score_one():
    model, emb, v = token_model()
    tokens = np.random.default_rng(4).integers(1, 11, size=(3, 6)).astype(np.int32)
    share = emb[tokens] @ v / 6.0  # removing token t (to id 0) lowers f by share[t]
    result = mu_fidelity(model, tokens, share, subset_fraction=0.5, n_subsets=12,
                         granularity="token", score="logit")
    np.testing.assert_allclose(result.drops, result.subset_sums, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.per_sample, 1.0, atol=1e-5)


def test_a_constant_attribution_has_no_correlation(linear):
    x, w, model = linear
    result = mu_fidelity(model, x, np.ones_like(x), n_subsets=4, score="logit")
    assert result.constant.all() and (result.per_sample == 0).all()


def test_bad_parameters_are_named(linear):
    x, w, model = linear
    with pytest.raises(ValueError, match="subset_fraction"):
        mu_fidelity(model, x, x, subset_fraction=1.0)
    with pytest.raises(ValueError, match="n_subsets"):
        mu_fidelity(model, x, x, n_subsets=1)
