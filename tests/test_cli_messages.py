"""What the `keras-patterns` command prints besides its results, called in-process: each
warning as one line naming the command (no Python source location), and a missing
optional dependency as a one-line error with exit status 2."""

import warnings

import keras
import numpy as np
import pytest
from keras import layers

from keras_patterns import cli
from keras_patterns.cli import commands
from keras_patterns.errors import MissingExtraError


@pytest.fixture
def softmax_model(tmp_path):
    """A small CNN ending in a softmax, saved, and data for it."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "net.keras")
    x = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    return tmp_path


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_a_warning_of_a_command_is_one_line(softmax_model, capsys):
    """Fitting a model that ends in a softmax warns that the softmax is removed: one line,
    `keras-patterns fit: warning: ...`, and nothing of Python's format (the file and line
    of the call, the category, the source line)."""
    shown = warnings.showwarning
    folder = softmax_model
    status = cli.main(["fit", str(folder / "net.keras"), str(folder / "x.npy"),
                       "--out", str(folder / "net.patterns.h5"), "--batch-size", "10"])
    assert status == 0
    err = capsys.readouterr().err
    softmax = [line for line in _lines(err) if "ends in a softmax" in line]
    assert len(softmax) == 1, err
    assert softmax[0].startswith("keras-patterns fit: warning: The model ends in a softmax")
    assert "UserWarning" not in err and ".py:" not in err and "warn(" not in err, err
    assert (folder / "net.patterns.h5").exists()
    assert warnings.showwarning is shown  # Python's display is back after the command


def test_other_categories_are_named_and_long_messages_joined(monkeypatch, capsys):
    def list_methods(args):
        warnings.warn("first line\n   second line", DeprecationWarning, stacklevel=1)
        warnings.warn("plain", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(commands, "list_methods", list_methods)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # DeprecationWarning is hidden by default
        assert cli.main(["list"]) == 0
    assert _lines(capsys.readouterr().err) == [
        "keras-patterns list: warning: DeprecationWarning: first line second line",
        "keras-patterns list: warning: plain",
    ]


def test_a_missing_extra_is_one_line_with_status_2(monkeypatch, capsys, tmp_path):
    message = ("the reproduction needs the optional dependencies of the demo: "
               "pip install 'keras-patterns[demo]'")

    def reproduce(args):
        raise MissingExtraError(message)

    monkeypatch.setattr(commands, "reproduce", reproduce)
    assert cli.main(["reproduce", "--out", str(tmp_path / "report")]) == 2
    out = capsys.readouterr()
    assert _lines(out.err) == [f"keras-patterns reproduce: error: {message}"]
    assert "Traceback" not in out.err + out.out
