"""MTCNN's trained networks rebuilt as functional models (keras_patterns.zoo.faces), on LFW;
the command line applications/faces.py.

Oracles: the mtcnn package's own subclassed PNet/RNet/ONet with the weights loaded by its own
loader (the rebuilt networks must give the same outputs); the labels documented by
`skimage.data.lfw_subset` (first 100 faces, last 100 not); a tape gradient of ONet's face
logit for the `gradient` explanation (checks that the face output and class are the ones
explained, softmax stripped). Thresholds on p(face) are the measured values (ONet: 0.999 on
faces, 0.018 on non-faces, accuracy 1.00; RNet 0.999 / 0.009 / 1.00; PNet on 12x12 crops
0.927 / 0.022 / 0.975) with a margin.

Timing on 2 CPU cores: about 45 s (all 30 methods on 4 images ~13 s, the command line in a
subprocess ~15 s).
"""

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_patterns as kp  # noqa: E402
from keras_patterns.errors import MissingExtraError  # noqa: E402
from keras_patterns.zoo import faces  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.filterwarnings("ignore:The model ends in a softmax"),
    pytest.mark.filterwarnings("ignore:.*got a zero pattern"),
]

REFUSING = {"deconvnet", "guided_backprop", "deep_taylor", "deep_taylor.bounded"}
N_EXPLAINED = 4


def mtcnn_network(name):
    """The mtcnn package's own network `name`, with the weights its own loader reads."""
    from mtcnn.utils.tensorflow import load_weights

    module = importlib.import_module(f"mtcnn.network.{name}")
    net = getattr(module, name[:2].upper() + name[2:])()  # PNet, RNet, ONet
    net.build()
    net.set_weights(load_weights(f"{name}.lz4"))
    return net


def output_errors(ours, theirs, x):
    """Largest absolute difference per output; mtcnn orders them [box, (landmarks,) face],
    the rebuilt networks [face, box, (landmarks)]."""
    a = [np.asarray(t) for t in ours(x)]
    b = [np.asarray(t) for t in theirs(x)]
    b = [b[-1]] + b[:-1]
    assert [u.shape for u in a] == [v.shape for v in b]
    return [float(np.abs(u - v).max()) for u, v in zip(a, b)]


@pytest.fixture(scope="module")
def onet():
    return faces.build_onet()


@pytest.fixture(scope="module")
def data48():
    return faces.face_data(48)


@pytest.fixture(scope="module")
def explained(onet, data48):
    images, labels = data48
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return faces.explain(None, images[faces.pick(labels, N_EXPLAINED)], onet,
                             images[faces.pick(labels, 40)])


# -- the networks equal mtcnn's own -------------------------------------------------------

@pytest.mark.parametrize("name,shape", [
    ("onet", (48, 48, 3)),
    ("rnet", (24, 24, 3)),
    ("pnet", (12, 12, 3)),
    ("pnet", (37, 53, 3)),  # not square: catches exchanged height and width
])
def test_network_equals_mtcnn(name, shape):
    ours = faces.BUILDERS[name]()
    assert type(ours).__name__ == "Functional", type(ours)
    theirs = mtcnn_network(name)
    rng = np.random.default_rng(0)
    x = rng.uniform(*faces.INPUT_RANGE, size=(8,) + shape).astype("float32")
    if shape[0] == shape[1]:
        x = np.concatenate([x, faces.face_data(shape[0])[0][::25]])
    errors = output_errors(ours, theirs, x)
    assert max(errors) < 1e-5, errors


def test_onet_layers_and_outputs(onet):
    names = [layer.name for layer in onet.layers]
    for expected in ("conv1", "prelu1", "pool1", "conv4", "prelu4", "permute", "flatten",
                     "fc5", "prelu5", "face", "box", "landmarks"):
        assert expected in names
    assert [tuple(t.shape) for t in onet.outputs] == [(None, 2), (None, 4), (None, 10)]
    assert onet.get_layer("face").activation is keras.activations.softmax
    assert tuple(onet.get_layer("prelu1").shared_axes) == (1, 2)
    assert onet.get_layer("pool1").padding == "same" and onet.get_layer("pool2").padding == "valid"


# -- data ---------------------------------------------------------------------------------

def test_face_data(data48):
    from skimage.data import lfw_subset

    images, labels = data48
    assert images.shape == (200, 48, 48, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, np.r_[np.ones(100), np.zeros(100)])
    assert np.array_equal(images[..., 0], images[..., 1])
    assert np.array_equal(images[..., 0], images[..., 2])
    low, high = faces.INPUT_RANGE
    assert images.min() >= low - 1e-6 and images.max() <= high + 1e-6
    # at the native size no resizing: exactly (255 v - 127.5) / 128 of the skimage pixels
    native, _ = faces.face_data(25)
    expected = (lfw_subset().astype("float64") * 255.0 - 127.5) / 128.0
    np.testing.assert_allclose(native[..., 0], expected, atol=1e-6)


# -- the detector works on LFW ------------------------------------------------------------

@pytest.mark.parametrize("name,min_faces,max_others,min_accuracy", [
    ("onet", 0.97, 0.10, 0.95),
    ("rnet", 0.97, 0.10, 0.95),
    ("pnet", 0.85, 0.10, 0.93),
])
def test_p_face(name, min_faces, max_others, min_accuracy):
    model = faces.BUILDERS[name]()
    images, labels = faces.face_data(faces.INPUT_SIZE[name])
    s = faces.score_summary(faces.face_probability(model, images), labels)
    assert s["faces_mean"] > min_faces, s
    assert s["nonfaces_mean"] < max_others, s
    assert s["accuracy"] >= min_accuracy, s
    # the same numbers from mtcnn's own network
    theirs = np.asarray(mtcnn_network(name)(images)[-1])[..., 1].reshape(200, -1).mean(1)
    ref = faces.score_summary(theirs, labels)
    assert abs(ref["faces_mean"] - s["faces_mean"]) < 1e-5


def test_rows_first(onet, data48):
    """Transposed images (the Caffe original's convention) are not what these weights see."""
    images, labels = data48
    p = faces.face_probability(onet, images.transpose(0, 2, 1, 3))
    assert faces.score_summary(p, labels)["faces_mean"] < 0.6  # measured 0.30


# -- explanations -------------------------------------------------------------------------

def test_methods_apply_or_refuse(explained):
    assert set(explained.maps) | set(explained.refused) == set(faces.default_methods())
    assert set(explained.refused) == REFUSING
    for name, why in explained.refused.items():
        assert "prelu1" in why and "PReLU" in why, (name, why)
    for name, heatmap in explained.maps.items():
        assert heatmap.shape == (N_EXPLAINED, 48, 48, 3), name
        assert np.isfinite(heatmap).all(), name
        if name != "input":
            assert np.abs(heatmap).max() > 0, name


@pytest.mark.parametrize("name", sorted(REFUSING))
def test_refusals(onet, name):
    with pytest.raises(kp.NotAnalyzableModelError, match="PReLU"):
        kp.create_analyzer(name, onet, output_index=faces.FACE_OUTPUT,
                           neuron_selection_mode="index", **faces.METHOD_KWARGS.get(name, {}))


def test_gradient_is_the_face_logit_gradient(onet, data48, explained):
    images, labels = data48
    x = tf.constant(images[faces.pick(labels, N_EXPLAINED)])
    features = keras.Model(onet.inputs, onet.get_layer("prelu5").output)
    kernel, bias = onet.get_layer("face").get_weights()
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = tf.linalg.matvec(features(x), kernel[:, faces.FACE_CLASS]) + bias[faces.FACE_CLASS]
    expected = tape.gradient(logit, x).numpy()
    got = explained.maps["gradient"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_patterns_have_a_minus(onet, data48):
    images, _ = data48
    analyzer = kp.create_analyzer("pattern.attribution", onet, output_index=faces.FACE_OUTPUT,
                                  neuron_selection_mode="index")
    analyzer.fit(images[::10])
    for layer in ("conv1", "conv2", "conv3", "conv4", "fc5"):  # all followed by a PReLU
        assert "a_minus" in analyzer.patterns[layer], layer


# -- without the demo extra ---------------------------------------------------------------

def one_sentence_naming(error, module):
    message = str(error.value)
    assert module in message, message
    assert 'pip install "keras-patterns[demo]"' in message, message
    assert "\n" not in message and ". " not in message and message.endswith("."), message


@pytest.mark.parametrize("module", ["mtcnn", "joblib", "lz4"])
def test_missing_weight_modules_raise_one_sentence(monkeypatch, module):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as error:
        faces.build_onet()
    one_sentence_naming(error, module)


def test_missing_scikit_image_raises_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(MissingExtraError) as error:
        faces.face_data()
    one_sentence_naming(error, "scikit-image")


# -- command line -------------------------------------------------------------------------

@pytest.mark.slow  # the faces script in a subprocess
def test_command_line(tmp_path, data48):
    out = tmp_path / "faces"
    # the script imports the keras_patterns of this checkout, as the tests do
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, "applications/faces.py", "--out", str(out), "--methods", "gradient",
         "pattern.attribution", "deconvnet", "--n", "4", "--fit-n", "20"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("gradient", "pattern.attribution"):
        heatmap = np.load(out / f"{name}.npy")
        assert heatmap.shape == (4, 48, 48, 3) and np.isfinite(heatmap).all(), name
    assert not (out / "deconvnet.npy").exists()
    images, _ = data48
    np.testing.assert_array_equal(np.load(out / "labels.npy"), [1, 1, 0, 0])
    np.testing.assert_allclose(np.load(out / "images.npy"), images[[0, 1, 100, 101]])
    summary = json.loads((out / "faces.json").read_text())
    assert set(summary["methods"]) == {"gradient", "pattern.attribution"}
    assert set(summary["refused"]) == {"deconvnet"}
    theirs = np.asarray(mtcnn_network("onet")(images)[-1])[:, 1]
    assert abs(summary["p_face"]["faces_mean"] - theirs[:100].mean()) < 1e-5
    assert abs(summary["p_face"]["nonfaces_mean"] - theirs[100:].mean()) < 1e-5
