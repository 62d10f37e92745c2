"""notebooks/: the four notebooks run from top to bottom and show what they promise.

Each notebook is copied into a temporary folder and executed there with nbclient
(``notebooks/run.py``: a fresh kernel of this interpreter, at most 300 s per cell, the
temporary folder as working directory); the committed notebooks are never written, which the
test checks. A cell that raises fails the test. The executed copy must hold at least one PNG
picture, no TensorFlow start-up log lines, and the key numbers the prose relies on: the digits
CNN's test accuracy, the two-pixel example's learned pattern, LRP-z = input x gradient, the
saved and reloaded patterns giving the same explanation, ONet's p(face) statistics, its four
refusals (PReLU) and PatternNet's gray signal on gray faces; for the evaluation notebook the
paper's claims its prose discusses, read from its printed tables: the learned estimator S_a
beats the filter S_w and random directions in every layer (rho of Eq. 1), every attribution
degrades the digits faster than the random patch order, and Guided Backprop fails the sanity
checks that the pattern methods pass; for the transformers notebook the digits ViT's test
accuracy, the text model's accuracy, and its table of how often each method's most relevant
token is a planted one (AttnLRP and CP-LRP find it nearly always, the gradient well above
chance), with the token heat maps as PNG and inline HTML.

The committed notebooks are checked too, without running them: stored with their outputs (every
code cell executed, no errors, pictures present), so that they can be read without a kernel.

Each notebook takes 15-35 s on two CPU cores (kernel start included; the transformers one
about 45 s once its models are cached), the four together about two minutes, so running them
is marked slow (the check of the stored notebooks is not).
"""

import base64
import importlib.util
import io
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from PIL import Image

import keras_patterns as kp

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("quickstart.ipynb", "faces.ipynb", "evaluation.ipynb", "transformers.ipynb")
# what TensorFlow's C++ start-up log looks like (the notebooks keep it out of their outputs)
TF_LOG = re.compile(r"absl::InitializeLog|^[IWE]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def _runner():
    spec = importlib.util.spec_from_file_location("notebooks_run", NOTEBOOKS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _stdout(nb):
    return "".join(
        out.text for out in _outputs(nb) if out.output_type == "stream" and out.name == "stdout"
    )


def _pictures(nb):
    pictures = []
    for out in _outputs(nb):
        if out.output_type in ("display_data", "execute_result") and "image/png" in out.data:
            pictures.append(Image.open(io.BytesIO(base64.b64decode(out.data["image/png"]))))
    return pictures


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"no match for {pattern!r} in the notebook's output:\n{text}"
    return float(match.group(1))


def _check_common(nb):
    assert not [out for out in _outputs(nb) if out.output_type == "error"]
    pictures = _pictures(nb)
    assert pictures, "no image/png output"
    for picture in pictures:
        picture.load()  # a valid PNG
        assert 100 <= picture.width <= 2000 and 100 <= picture.height <= 2000, picture.size
    stderr = "".join(
        out.text for out in _outputs(nb) if out.output_type == "stream" and out.name == "stderr"
    )
    assert not TF_LOG.search(stderr), f"TensorFlow log lines in the output:\n{stderr}"


def _check_quickstart(nb):
    text = _stdout(nb)
    assert _number(r"test accuracy: (\d\.\d+)", text) >= 0.9
    assert int(_number(r"(\d+) methods on 8 test digits", text)) >= 30
    a0 = _number(r"learned pattern a: \[\s*(-?\d\.\d+)", text)
    a1 = _number(r"learned pattern a: \[\s*-?\d\.\d+\s+(-?\d\.\d+)", text)
    assert abs(a0 - 1.0) < 0.05 and abs(a1) < 0.05, (a0, a1)
    assert _number(r"largest \|lrp\.z - input_t_gradient\|: (\S+)", text) < 1e-4
    assert _number(r"largest difference from the explanation fitted above: (\S+)", text) < 1e-6
    assert "PatternFileError" in text and "refit" in text
    assert len(_pictures(nb)) == 3


def _check_faces(nb):
    text = _stdout(nb)
    assert _number(r"accuracy at p\(face\) > 0\.5: (\d\.\d+)", text) >= 0.95
    assert _number(r"100 faces:\s+mean p\(face\) (\d\.\d+)", text) >= 0.9
    assert _number(r"100 non-faces: mean p\(face\) (\d\.\d+)", text) <= 0.1
    for name in ("guided_backprop", "deconvnet", "deep_taylor", "deep_taylor.bounded"):
        assert re.search(rf"^{re.escape(name)}: NotAnalyzableModelError: .*PReLU", text, re.M), name
    assert _number(r"(?m)^pattern\.net\s+(\d\.\d+)", text) == 0.0  # gray signal
    assert _number(r"largest \|lrp\.epsilon - input_t_gradient\|: (\S+)", text) < 1e-3
    assert len(_pictures(nb)) == 1


def _rows(text, header, width):
    """The rows of the table printed under the line starting with `header`: name -> the
    first `width` numbers of the row."""
    lines = text[text.index(header):].splitlines()[1:]
    rows = {}
    for line in lines:
        parts = [part for part in line.split() if part != "/"]
        if not parts:
            if rows:
                break
            continue
        try:
            values = [float(v) for v in parts[-width:]]
        except ValueError:
            break
        rows[" ".join(parts[:-width])] = values
    return rows


def _check_evaluation(nb):
    text = _stdout(nb)
    rho = _rows(text, "layer  random filter linear   relu", 4)
    assert set(rho) == {"conv1", "conv2", "dense", "logits"}, rho
    for layer, (random, filter_, linear, relu) in rho.items():
        assert linear > max(random, filter_) + 0.3, (layer, rho[layer])
        assert all(-1e-9 <= v <= 1 for v in (random, filter_, linear, relu)), rho[layer]
    aopc = {name: values[0] for name, values in
            _rows(text, "attribution              AOPC", 4).items()}
    assert len(aopc) == 8 and "random order" in aopc, aopc
    for name, value in aopc.items():
        if name != "random order":
            assert value > aopc["random order"], (name, aopc)
    assert aopc["pattern.attribution"] > aopc["gradient"], aopc
    truth = {row.split()[0]: values for row, values in  # "method kind" -> [score]
             _rows(text, "method                 kind          score", 1).items()}
    assert truth["pattern.net"][0] > truth["gradient"][0] + 0.1, truth
    assert truth["pattern.attribution"][0] > 5 * _number(r"chance mass (\d\.\d+)", text)
    sanity = _rows(text, "method                class correlation  after top layer", 2)
    assert min(sanity["guided_backprop"]) > 0.5, sanity
    for name in ("gradient", "pattern.net", "pattern.attribution"):
        assert max(sanity[name]) < 0.5, (name, sanity)
    assert len(_pictures(nb)) == 2


def _check_transformers(nb):
    text = _stdout(nb)
    assert _number(r"test accuracy: (\d\.\d+)", text) >= 0.95
    assert _number(r"accuracy on 200 new sequences: (\d\.\d+)", text) >= 0.98
    chance = _number(r"\(chance (\d\.\d+)\)", text)
    assert 0.05 < chance < 0.15, chance
    found = _rows(text, "method                 signed    |r|", 2)
    assert set(found) == {"gradient", "input_t_gradient", "integrated_gradients", "attnlrp",
                          "cp_lrp", "pattern.net", "pattern.attribution"}, found
    assert min(found["attnlrp"] + found["cp_lrp"]) >= 0.9, found
    for name, values in found.items():
        assert min(values) > 2 * chance, (name, found)
    for name in ("guided_backprop", "occlusion"):
        assert re.search(rf"^{re.escape(name)}: NotAnalyzableModelError", text, re.M), name
    html = [out.data["text/html"] for out in _outputs(nb)
            if out.output_type == "display_data" and "text/html" in out.data]
    assert len(html) == 1 and html[0].count('class="token"') >= 4 * 16, html[:1]
    assert len(_pictures(nb)) == 3


CHECKS = {"quickstart.ipynb": _check_quickstart, "faces.ipynb": _check_faces,
          "evaluation.ipynb": _check_evaluation, "transformers.ipynb": _check_transformers}


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_its_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), "stored without being run"
    _check_common(nb)
    CHECKS[name](nb)


@pytest.mark.slow  # a kernel per notebook: 15-35 s each
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path):
    committed = (NOTEBOOKS / name).read_bytes()
    copy = tmp_path / name
    shutil.copyfile(NOTEBOOKS / name, copy)
    nb, seconds = _runner().execute(copy, out=copy, timeout=300)
    assert (NOTEBOOKS / name).read_bytes() == committed, "the committed notebook was written"
    assert seconds < 300, f"{name} took {seconds:.0f} s"
    _check_common(nb)
    CHECKS[name](nb)
    if name == "quickstart.ipynb":  # every method of the registry, none skipped
        text = _stdout(nb)
        assert "skipped" not in text, text
        assert int(_number(r"(\d+) methods on 8 test digits", text)) == len(kp.list_analyzers())
    # the written copy is the executed notebook
    assert _stdout(nbformat.read(copy, as_version=4)) == _stdout(nb)
