"""The metric table (`keras_patterns.evaluate.compare`) on a linear model, where the exact
attribution w * x is known to beat noise: its deletion curve falls fastest, its insertion
curve rises fastest and its μ-fidelity is 1; the CSV reads back to the same numbers."""

import csv

import numpy as np
import pytest
from oracles import linear_case

from keras_patterns.evaluate import deletion
from keras_patterns.evaluate.compare import compare


def test_the_exact_attribution_wins_every_column():
    x, w, model = linear_case(4, (6, 6, 1), seed=4)
    x = np.abs(x) + 0.5  # positive inputs: every pixel moves the logit by w * x
    logit = {"score": "logit"}
    table = compare(model, x, {"exact": x * w},
                    metrics=("deletion", "insertion", "mu_fidelity"),
                    settings={"deletion": dict(logit, steps=6),
                              "insertion": dict(logit, steps=6, baseline="zero"),
                              "mu_fidelity": dict(logit, n_subsets=16)})
    assert list(table.rows) == ["exact", "random"]
    exact, rand = table.rows["exact"], table.rows["random"]
    assert exact["deletion AUC"] < rand["deletion AUC"]
    assert exact["deletion AOPC"] > rand["deletion AOPC"]
    assert exact["insertion AUC"] > rand["insertion AUC"]
    assert exact["mu-fidelity"] == pytest.approx(1.0, abs=1e-5)
    deleted = deletion(model, x, x * w, steps=6, score="logit")
    assert exact["deletion AUC"] == deleted.auc
    fractions, curve = table.curves["deletion"]["exact"]
    np.testing.assert_array_equal(fractions, np.arange(7) * 36 // 6 / 36)
    np.testing.assert_array_equal(curve, deleted.curve)
    assert set(table.curves) == {"deletion", "insertion"}
    rows = list(csv.reader(table.csv().splitlines()))
    assert rows[0][1:] == table.columns
    np.testing.assert_array_equal([float(v) for v in rows[1][1:]],
                                  [exact[c] for c in table.columns])
    assert table.markdown().count("\n") == 4  # header, rule, two rows


def test_an_unknown_metric_is_named():
    x, w, model = linear_case(1, (4, 4, 1))
    with pytest.raises(ValueError, match="pixel_flipping"):
        compare(model, x, {"a": x}, metrics=("pixel_flipping",))
