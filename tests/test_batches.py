"""The one check of a batch of images (or of any batch) that every argument check of
pictures, the callback, degradation and the sanity checks can use: what it accepts comes
back unchanged, what it refuses is named."""

import numpy as np
import pytest

from keras_patterns.visualize.batches import check_batch


@pytest.mark.parametrize("x", [np.zeros((2, 4, 4)), np.ones((1, 4, 4, 3), np.uint8),
                               np.zeros((3, 2, 2, 1), bool), [[[1, 2], [3, 4]]]])
def test_accepted_batches_come_back_as_they_are(x):
    out = check_batch(x, "images")
    np.testing.assert_array_equal(out, np.asarray(x))
    assert out.dtype == np.asarray(x).dtype


def test_a_copy_is_asked_for_a_view_otherwise():
    x = np.zeros((2, 4, 4, 1), np.float32)
    assert check_batch(x, "images") is x
    copied = check_batch(x, "images", copy=True)
    copied[0, 0, 0, 0] = 1
    assert x[0, 0, 0, 0] == 0


@pytest.mark.parametrize("x, kwargs, message", [
    ([[1, 2], [3]], {}, r"^images must be a numeric array: "),
    (np.zeros((1, 2, 2), complex), {}, r"^images must hold real numbers, got dtype complex128\.$"),
    (np.array([[["a"]]]), {}, r"^images must hold real numbers, got dtype <U1\.$"),
    (np.zeros((4, 4)), {}, r"^images must be a batch of images shaped \(N, H, W\) or "
                           r"\(N, H, W, C\); got shape \(4, 4\) \(rank 2\) \(a single sample\? "
                           r"pass x\[None\]\)\.$"),
    (np.zeros((1, 2, 3, 4, 5)), {"channels_first": True}, r"\(N, C, H, W\); got shape "
                                                          r"\(1, 2, 3, 4, 5\) \(rank 5\)\.$"),
    (np.zeros((0, 4, 4, 1)), {}, r"^images must hold at least one image, got shape "
                                 r"\(0, 4, 4, 1\)\.$"),
    (np.zeros(3), {"images": False}, r"^images must be a batch shaped \(N, \.\.\.\); got "
                                     r"shape \(3,\)\.$"),
    (np.zeros((0, 3)), {"images": False}, r"^images must hold at least one sample"),
])
def test_refusals_name_the_argument_and_the_problem(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_batch(x, "images", **kwargs)


def test_non_finite_values_are_counted():
    x = np.zeros((2, 3, 3))
    x[0, 1, 1], x[1, 2, 0], x[1, 0, 0] = np.nan, np.inf, -np.inf
    with pytest.raises(ValueError, match=r"^images has 3 non-finite value\(s\) \(NaN or inf\), "
                                         r"shape \(2, 3, 3\)\.$"):
        check_batch(x, "images")


def test_any_batch_and_empty_batches_when_asked():
    x = np.arange(6.0).reshape(3, 2)
    assert check_batch(x, "x", images=False) is x
    assert check_batch(np.zeros((0, 4, 4)), "x", empty=True).shape == (0, 4, 4)
