"""The `keras-patterns` command, through subprocess calls as a user runs it: help on every
subcommand, fit and explain on files (their output checked against the library called
directly), and a one-line error with exit status 2 for every user error."""

import csv
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers
from oracles import assert_close
from PIL import Image

import keras_patterns as kp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ["demo", "fit", "explain", "list", "check"]


def run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command quiets TensorFlow itself
    return subprocess.run([sys.executable, "-m", "keras_patterns", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small trained-looking CNN on 8x8 gray images, saved, and a folder of PNGs."""
    folder = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3)])
    path = folder / "net.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    images = folder / "images"
    images.mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p, mode="L").save(images / f"img{i}.png")
    x = pixels[..., None].astype(np.float32) * (1 / 255.0) + 0.0  # as the command scales
    np.save(folder / "x.npy", x)
    return {"folder": folder, "model": path, "images": images, "x": x, "keras": model}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0 and f"keras-patterns {command}" in result.stdout
    assert result.stderr == ""


def test_list_names_every_method_and_its_parameters():
    result = run("list")
    assert result.returncode == 0
    for name in kp.list_analyzers():
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines()), name
    assert "epsilon=1e-07" in result.stdout and "augment_by_n=64" in result.stdout


@pytest.mark.parametrize("source", ["folder", "npy"])
def test_fit_streams_data_and_writes_the_patterns_beside_the_model(saved, source, tmp_path):
    data = saved["images"] if source == "folder" else saved["folder"] / "x.npy"
    out = tmp_path / "p.patterns.h5"
    result = run("fit", saved["model"], data, "--batch-size", 4, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    got = kp.load_patterns(out, saved["keras"])
    want = kp.compute_patterns(saved["keras"], saved["x"], batch_size=4)
    for key in want:
        for name in want[key]:
            assert_close(got[key][name], want[key][name], rtol=1e-6)
    assert got.n_samples == 6


def test_explain_writes_the_pictures_the_library_draws(saved, tmp_path):
    out = tmp_path / "maps"
    result = run("explain", saved["model"], saved["images"], "--method", "lrp.epsilon",
                 "--param", "epsilon=0.1", "--out", out, "--npy", "--batch-size", 4)
    assert result.returncode == 0, result.stderr[-2000:]
    e = kp.create_analyzer("lrp.epsilon", saved["keras"], epsilon=0.1).analyze(saved["x"])
    pictures = kp.visualize.heatmap(e, cmap="seismic")
    for i in range(6):
        assert_close(np.load(out / f"img{i}.lrp.epsilon.npy"), e[i])
        png = np.asarray(Image.open(out / f"img{i}.lrp.epsilon.png").convert("RGB"))
        assert np.array_equal(png, pictures[i])


def test_explain_with_patterns_fitted_by_the_command(saved, tmp_path):
    fitted = run("fit", saved["model"], saved["folder"] / "x.npy")
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    assert os.path.exists(kp.patterns_path(saved["model"]))
    out = tmp_path / "signal"
    result = run("explain", saved["model"], saved["images"] / "img0.png",
                 "--method", "pattern.net", "--out", out, "--npy")
    assert result.returncode == 0, result.stderr[-2000:]
    patterns = kp.load_patterns(kp.patterns_path(saved["model"]), saved["keras"])
    want = kp.create_analyzer("pattern.net", saved["keras"], patterns=patterns).analyze(
        saved["x"][:1])
    assert_close(np.load(out / "img0.pattern.net.npy"), want[0])


@pytest.mark.slow  # one process per bad input: about a minute on 2 cores
def test_user_errors_are_one_line_with_status_2(saved, tmp_path):
    _one_line_error(run("fit", tmp_path / "missing.keras", saved["images"]),
                    "missing.keras", "does not exist")
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    _one_line_error(run("explain", junk, saved["images"], "--method", "gradient"),
                    "junk.keras", "not a Keras model")
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((9, 7), np.uint8), mode="L").save(big / "odd.png")
    _one_line_error(run("explain", saved["model"], big, "--method", "gradient"),
                    "odd.png", "7x9", "8x8", "--resize")
    _one_line_error(run("explain", saved["model"], saved["images"], "--method", "gradiant"),
                    "gradiant", "did you mean 'gradient'")
    _one_line_error(run("fit", saved["model"], tmp_path / "nothing_here"),
                    "nothing_here", "does not exist")
    _one_line_error(run("explain", saved["model"], saved["images"], "--method",
                        "lrp.epsilon", "--param", "epsilon=-1"), "epsilon must be > 0")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 5, 5, 1), "float32"))
    _one_line_error(run("fit", saved["model"], wrong), "wrong.npy", "(5, 5, 1)", "(8, 8, 1)")
    fresh = tmp_path / "fresh.keras"
    saved["keras"].save(fresh)
    _one_line_error(run("explain", fresh, saved["images"], "--method", "pattern.net"),
                    "needs patterns", "keras-patterns fit")


def test_resize_makes_other_sizes_usable(saved, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    Image.fromarray(np.full((16, 12), 200, np.uint8), mode="L").save(folder / "a.png")
    result = run("explain", saved["model"], folder, "--method", "gradient", "--resize",
                 "--out", tmp_path / "o")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "o" / "a.gradient.png").exists()


@pytest.mark.slow  # trains the digits CNN and fits patterns in a subprocess
def test_demo_digits_writes_a_picture(tmp_path):
    result = run("demo", "--out", tmp_path, "--skip-faces", "--skip-text", "--digits", 3)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test accuracy 0.9" in result.stdout
    picture = Image.open(tmp_path / "digits.png")
    assert picture.size[0] > 1000 and picture.size[1] > 100
    assert str(tmp_path / "digits.png") in result.stdout


@pytest.mark.slow
def test_the_whole_demo_writes_every_picture(tmp_path):
    result = run("demo", "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("digits.png", "faces.png"):
        assert Image.open(tmp_path / name).size[0] > 1000
    assert Image.open(tmp_path / "text.png").size[0] == 720
    assert (tmp_path / "text.html").read_text().startswith("<!DOCTYPE html>")
    assert "guided_backprop does not apply" in result.stdout
    assert "mean p(face) 0.99" in result.stdout


def test_evaluate_writes_the_quality_table_and_the_degradation_aopc(saved, tmp_path):
    data = np.random.default_rng(1).uniform(size=(90, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "eval.npy", data)
    result = run("evaluate", saved["model"], tmp_path / "eval.npy", "--methods", "gradient",
                 "--patch-size", 2, "--steps", 8, "--images", 10, "--out", tmp_path / "ev")
    assert result.returncode == 0, result.stderr[-2000:]
    report = (tmp_path / "ev" / "evaluation.md").read_text()
    quality = kp.evaluate.signal_quality(saved["keras"], data)
    for estimator in ("random", "filter", "linear", "relu"):
        assert estimator in report
    layer = saved["keras"].layers[0].name
    assert f"{quality['linear'][layer]:.3f}" in report
    e = kp.create_analyzer("gradient", saved["keras"]).analyze(data[:10])
    aopc = kp.evaluate.degradation(saved["keras"], data[:10], e, 2, 8).aopc
    assert f"| gradient | {aopc:.4f} |" in report


def test_evaluate_metric_writes_the_markdown_and_csv_tables(saved, tmp_path):
    from keras_patterns.cli import METRICS, main
    from keras_patterns.evaluate.compare import METRICS as EVALUATE_METRICS

    assert METRICS == EVALUATE_METRICS  # the parser's copy of the names
    data = np.random.default_rng(2).uniform(size=(6, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "m.npy", data)
    # in this process (a subprocess would spend ~20 s starting TensorFlow)
    assert main(["evaluate", str(saved["model"]), str(tmp_path / "m.npy"), "--methods",
                 "gradient", "--metric", "deletion", "mu_fidelity", "--skip-quality",
                 "--steps", "4", "--out", str(tmp_path / "ev")]) == 0
    rows = list(csv.reader((tmp_path / "ev" / "metrics.csv").read_text().splitlines()))
    assert rows[0] == ["explanation", "deletion AUC", "deletion AOPC", "mu-fidelity"]
    assert [r[0] for r in rows[1:]] == ["gradient", "random"]
    e = kp.create_analyzer("gradient", saved["keras"]).analyze(data)
    deleted = kp.evaluate.deletion(saved["keras"], data, e, steps=4, batch_size=32)
    fidelity = kp.evaluate.mu_fidelity(saved["keras"], data, e, batch_size=32)
    np.testing.assert_allclose([float(v) for v in rows[1][1:]],
                               [deleted.auc, deleted.aopc, fidelity.mu_fidelity], rtol=1e-5)
    markdown = (tmp_path / "ev" / "metrics.md").read_text()
    assert "| explanation | deletion AUC (↓) | deletion AOPC (↑) | mu-fidelity (↑) |" in markdown
    assert "Signal quality" not in (tmp_path / "ev" / "evaluation.md").read_text()
    assert Image.open(tmp_path / "ev" / "curve_deletion.png").size[0] > 200


@pytest.mark.slow  # every experiment of the report: about a minute
def test_reproduce_quick_writes_the_report_and_its_figures(tmp_path):
    result = run("reproduce", "--quick", "--out", tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    for heading in ("Fig. 2", "Fig. 3", "Fig. 4", "Fig. 6", "known signal", "Sanity checks",
                    "Where this agrees with the paper"):
        assert heading in report, heading
    for figure in ("toy.png", "quality_digits.png", "quality_onet.png",
                   "degradation_digits.png", "degradation_onet.png", "grid_digits.png",
                   "grid_onet.png"):
        assert Image.open(tmp_path / figure).size[0] > 200, figure
    # the toy's known answers: PatternNet returns the signal a_s y, the gradient w
    assert "| pattern.net | signal | 1.000 |" in report
    assert "| gradient | signal | 0.707 |" in report
