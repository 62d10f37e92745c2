"""`keras-patterns check`: one line per method, every method runs (the pattern methods on
patterns fitted by the check)."""

import numpy as np
import pytest

import keras_patterns as kp
from keras_patterns.cli import main


@pytest.mark.filterwarnings("ignore:.*zero pattern:UserWarning")
def test_check_explains_with_every_method(capsys):
    assert main(["check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == list(kp.list_analyzers())
    assert len(lines) == 2 + len(rows)
    for line in rows.values():
        assert "(4, 16, 16, 3)" in line and "failed" not in line, line
        mean_abs = float(line.split(")")[1].split()[1])
        assert np.isfinite(mean_abs) and mean_abs > 0, line
