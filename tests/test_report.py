"""The comparison report: ranks per metric against numpy, and the page the command writes."""

import keras
import numpy as np
from oracles import linear_case
from scipy.stats import rankdata

from keras_patterns import cli
from keras_patterns.evaluate.compare import MetricTable
from keras_patterns.evaluate.report import rank_columns, report


def test_ranks_follow_each_column_s_direction_with_ties_averaged():
    table = MetricTable(["a", "b"], {"m1": {"a": 0.9, "b": 0.2}, "m2": {"a": 0.1, "b": 0.2},
                                     "m3": {"a": 0.5, "b": np.nan}},
                        {"a": True, "b": False})
    ranks = rank_columns(table)
    assert [ranks[m]["a"] for m in ("m1", "m2", "m3")] == list(rankdata([-0.9, -0.1, -0.5]))
    assert [ranks[m]["b"] for m in ("m1", "m2", "m3")] == [1.5, 1.5, 3.0]  # NaN last


def test_the_exact_attribution_ranks_first_on_a_linear_model():
    x, w, model = linear_case(12, (6, 6, 1), seed=3)
    exact = x * w
    result = report(model, x, {"exact": exact, "opposite": -exact},
                    settings={m: {"batch_size": 16, "score": "logit",
                                  **({"patch_size": 2, "steps": 9} if m == "degradation"
                                     else {})}
                              for m in ("degradation", "deletion", "insertion",
                                        "mu_fidelity", "road")})
    perturbation = [c for c in result.table.columns if c not in ("complexity", "sparseness")]
    assert all(result.ranks["exact"][c] == 1.0 for c in perturbation)
    assert all(result.ranks["opposite"][c] == 3.0 for c in ("deletion AUC", "insertion AUC"))
    assert list(result.mean_rank)[0] == "exact"
    # the same |a|: the same concentration
    assert result.table.rows["exact"]["complexity"] == result.table.rows["opposite"][
        "complexity"]
    lines = result.markdown().splitlines()
    assert lines[2].startswith("| exact | ") and len(lines) == 5


def test_the_command_writes_the_ranking_page(tmp_path, capsys):
    x, w, model = linear_case(8, (6, 6, 1), seed=4)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    status = cli.main(["evaluate", str(tmp_path / "m.keras"), str(tmp_path / "x.npy"),
                       "--methods", "input_t_gradient", "gradient", "--report",
                       "--skip-quality", "--steps", "6", "--scale", "1", "--score",
                       "logit", "--patch-size", "2",
                       "--out", str(tmp_path / "out")])
    assert status == 0
    page = (tmp_path / "out" / "report.md").read_text()
    assert "max-sensitivity" in page and "| input_t_gradient |" in page
    csv = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert csv[0].startswith("method,mean rank,") and len(csv) == 4
    assert (tmp_path / "out" / "report.png").stat().st_size > 0
    keras.backend.clear_session()


def test_a_probability_of_one_unit_is_refused():
    import pytest

    from keras_patterns.evaluate import deletion

    x, w, model = linear_case(4, (6, 6, 1), seed=5)
    with pytest.raises(ValueError, match="one output unit.*score='logit'"):
        deletion(model, x, x * w)
