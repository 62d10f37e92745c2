"""`keras-patterns check`: one line per method, every method runs (the pattern methods on
patterns fitted by the check); `demo` and `reproduce` without the demo extra stop at once
with one sentence naming the missing module."""

import argparse
import sys

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


def test_the_demo_text_part_finds_the_planted_tokens(tmp_path, capsys):
    """The known answer: each sequence's class is set by its planted evidence tokens, so
    AttnLRP's most relevant token is a planted one (the trained model is exact on them)."""
    from keras_patterns.cli.demo import TEXT_METHODS, _explain_text

    path = _explain_text(tmp_path, 2, n_scored=60)
    out = capsys.readouterr().out
    assert "test accuracy 1.000" in out
    line = next(line for line in out.splitlines() if "planted one in 60" in line)
    hits = dict(part.rsplit(" ", 1) for part in line.split("): ")[1].split(", "))
    assert list(hits) == list(TEXT_METHODS)
    chance = float(line.split("chance ")[1].split(")")[0])
    assert float(hits["attnlrp"]) >= 0.95 > 3 * chance
    assert path == tmp_path / "text.png" and path.exists()
    page = (tmp_path / "text.html").read_text()
    assert page.count("attnlrp, sequence") == 2 and "<script" not in page


# -- without the demo extra: one sentence naming the module and the pip command ----------

def assert_one_sentence(error, module):
    message = str(error.value)
    assert module in message, message
    assert 'pip install "keras-patterns[demo]"' in message, message
    assert "\n" not in message and ". " not in message and message.endswith("."), message


@pytest.mark.parametrize("module", ["mtcnn", "skimage", "sklearn", "lz4", "joblib"])
def test_demo_without_a_module_of_the_extra_stops_before_it_starts(monkeypatch, tmp_path,
                                                                   module):
    from keras_patterns.cli.demo import demo
    from keras_patterns.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "demo"
    args = argparse.Namespace(out=str(out), digits=2, faces=2, skip_faces=False)
    with pytest.raises(MissingExtraError) as error:
        demo(args)
    assert_one_sentence(error, module)
    assert not out.exists()  # nothing ran


def test_demo_digits_alone_need_no_face_modules(monkeypatch, tmp_path):
    from keras_patterns.zoo import DEMO_MODULES, check_installed

    monkeypatch.setitem(sys.modules, "mtcnn", None)
    check_installed(("sklearn",), "the demo")  # what --skip-faces needs: no error
    assert "mtcnn" in DEMO_MODULES


@pytest.mark.parametrize("module", ["mtcnn", "matplotlib", "sklearn"])
def test_reproduce_without_a_module_of_the_extra_stops_before_it_starts(monkeypatch, tmp_path,
                                                                        module):
    from keras_patterns.errors import MissingExtraError
    from keras_patterns.reproduce import reproduce

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as error:
        reproduce(tmp_path / "report", quick=True, verbose=0)
    assert_one_sentence(error, module)
    assert not (tmp_path / "report").exists()


def test_missing_extra_error_is_an_import_error_naming_the_package():
    from keras_patterns.errors import MissingExtraError
    from keras_patterns.zoo.extras import missing_extra

    error = missing_extra("skimage", "the LFW faces")
    assert isinstance(error, MissingExtraError) and isinstance(error, ImportError)
    assert str(error) == ("The module skimage (package scikit-image), needed for the LFW "
                          'faces, is not installed: pip install "keras-patterns[demo]" '
                          "installs it.")
