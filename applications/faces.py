"""A trained face detector explained: MTCNN's three networks as Keras functional models.

MTCNN (Zhang et al., *Joint face detection and alignment using multi-task cascaded
convolutional networks*, IEEE SPL 2016) detects faces with a cascade of three small
convolutional networks: PNet proposes windows (fully convolutional, 12x12 receptive field),
RNet refines them on 24x24 crops and ONet decides on 48x48 crops, also regressing the box
and five facial landmarks. Their trained weights ship with the MIT-licensed ``mtcnn`` 1.0.0
package (``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``: joblib pickles of the weight arrays,
lz4-compressed). This module rebuilds the networks as Keras 3 functional models (which the
analyzers need) with readable layer names and loads those weights into them; nothing is
downloaded.

    model = build_onet()                       # outputs: [face, box, landmarks]
    images, labels = face_data()               # 200 LFW crops, 48x48x3, labels 1 = face
    result = explain(["gradient", "pattern.attribution"], images)
    result.maps["pattern.attribution"]         # (200, 48, 48, 3)

Input convention (that of the ``mtcnn`` package): images as (batch, height, width, 3), rows
first and RGB (no transposition: the Caffe models' column-major order is handled inside the
network, by the Permute before the first dense layer), pixel values v in [0, 255] mapped to
(v - 127.5) / 128, so inputs lie in [-0.996, 0.996].

Outputs: ONet gives [face (2-way softmax: index 0 = not a face, 1 = face), box (4 offsets),
landmarks (10 coordinates)]; RNet [face, box]; PNet the same per 12x12 window (a map, stride
2). Explain one with ``output_index=`` (``FACE_OUTPUT`` = 0, then ``neuron_selection=1``);
the analyzers strip the final softmax (with a warning) and explain the face logit.

Data: ``skimage.data.lfw_subset()`` (shipped with scikit-image): 200 grayscale 25x25 crops
in [0, 1], the first 100 faces from Labeled Faces in the Wild and the last 100 background
patches from the same photographs (its docstring says so, and calls the array uint8; it is
float64 in [0, 1]). ``face_data`` resizes them bilinearly, repeats the gray channel three
times and maps them to the input convention.

Measured (scikit-image 0.26, TensorFlow 2.21, CPU), ONet on ``face_data(48)``: mean p(face)
0.999 on the 100 faces (lowest 0.982) and 0.018 on the 100 non-faces (highest 0.302);
accuracy at p > 0.5: 200/200 = 1.00. RNet on ``face_data(24)``: 0.999 and 0.009 (lowest face
0.981, highest non-face 0.155), accuracy 1.00. PNet on ``face_data(12)`` (one window):
0.927 and 0.022, accuracy 0.975. Transposing the images (height and width exchanged, the
original Caffe convention) drops ONet's mean p(face) on the faces to 0.30 (accuracy 0.60):
the networks of ``mtcnn`` 1.0.0 expect rows first. The rebuilt networks reproduce the
package's own subclassed models to within float32 round-off (tests/test_faces.py).

Methods: ONet's activations are PReLU, so DeConvNet, Guided Backprop and Deep Taylor
(defined for rectifier networks) refuse it with ``NotAnalyzableModelError``; ``explain``
reports their reasons. The pattern methods estimate the negative-regime patterns a_minus
that PReLU needs on their own.

Command line (from the repository root): ``python applications/faces.py --out DIR
[--methods NAME ...] [--n N]`` writes one ``<method>.npy`` per applicable method, the
explained inputs and labels (``images.npy``, ``labels.npy``) and ``faces.json`` (p(face)
statistics, refusals, timings).
"""

import argparse
import importlib.util
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

if not __package__:  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import joblib  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_patterns  # noqa: E402

#: output position of the face probability in every network's outputs
FACE_OUTPUT = 0
#: the face class of that output (index 0 is "not a face")
FACE_CLASS = 1
#: the input range of the networks: pixel values 0..255 after (v - 127.5) / 128
INPUT_RANGE = (-127.5 / 128.0, 127.5 / 128.0)
#: the square input size each network was trained on
INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}

PATTERN_METHODS = ("pattern.net", "pattern.attribution")
#: parameters for the methods that need some on these networks' inputs
METHOD_KWARGS = {
    "smoothgrad": {"augment_by_n": 32, "noise_scale": 0.2, "seed": 0},  # 10% of the range
    "integrated_gradients": {"steps": 32},  # from the all-gray image (input 0)
    "random": {"seed": 0},
    "deep_taylor.bounded": {"low": INPUT_RANGE[0], "high": INPUT_RANGE[1]},
    "lrp.sequential_preset_b_flat_until_idx": {"until_layer_idx": 1},
    "lrp.bounded": {"low": INPUT_RANGE[0], "high": INPUT_RANGE[1]},
}
#: the generic forms "lrp" (needs a rule) and "lrp.alpha_beta" (needs alpha, beta) are left
#: out of the defaults; their named variants are in
DEFAULT_METHODS = tuple(
    name for name in keras_patterns.list_analyzers()
    if name not in ("lrp", "lrp.alpha_beta", "lrp.alpha_beta_IB"))


# -- weights ------------------------------------------------------------------------------

def weights_path(network):
    """Path of the shipped weight file of `network` ("pnet", "rnet" or "onet")."""
    if network not in INPUT_SIZE:
        raise ValueError(f"network must be one of {sorted(INPUT_SIZE)}, got {network!r}.")
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The MTCNN weights ship with the 'mtcnn' package (MIT licence): pip install "
            "mtcnn==1.0.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights" / (
        network + ".lz4")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mtcnn package.")
    return path


def load_weight_arrays(network):
    """The weight arrays of `network`, in the order the file stores them.

    The file is a joblib pickle of a list of numpy arrays, lz4-compressed (joblib recognises
    the lz4 frame and decompresses it; the lz4 package must be installed)."""
    arrays = joblib.load(weights_path(network))
    return [np.asarray(a, dtype="float32") for a in arrays]


# The files list the arrays layer by layer in this order (kernel then bias; PReLU alpha),
# the output heads as box, [landmarks,] face.
_FILE_ORDER = {
    "pnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "box", "face"],
    "rnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4",
             "box", "face"],
    "onet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4",
             "fc5", "prelu5", "box", "landmarks", "face"],
}


def _load_into(model, network):
    arrays = load_weight_arrays(network)
    order = _FILE_ORDER[network]
    expected = sum(len(model.get_layer(name).weights) for name in order)
    assert expected == len(arrays) == len(model.weights), (
        f"{network}: the file holds {len(arrays)} arrays, the model has "
        f"{len(model.weights)} weights ({expected} in the listed layers).")
    pos = 0
    for name in order:
        layer = model.get_layer(name)
        n = len(layer.weights)
        chunk = arrays[pos:pos + n]
        pos += n
        for w, a in zip(layer.weights, chunk):
            assert tuple(w.shape) == a.shape, (
                f"{network}: layer '{name}' weight {w.name} has shape {tuple(w.shape)}, the "
                f"file's array {a.shape}.")
        layer.set_weights(chunk)
    return model


# -- networks -----------------------------------------------------------------------------

def _conv(x, filters, kernel, index):
    """Convolution (valid, stride 1, linear) and its PReLU, one slope per channel."""
    x = keras.layers.Conv2D(filters, kernel, padding="valid", name=f"conv{index}")(x)
    return keras.layers.PReLU(shared_axes=[1, 2], name=f"prelu{index}")(x)


def _pool(x, size, padding, index):
    return keras.layers.MaxPooling2D(size, strides=2, padding=padding, name=f"pool{index}")(x)


def _dense(x, units, index):
    """Column-major flattening (as the Caffe originals), a dense layer and its PReLU."""
    x = keras.layers.Permute((2, 1, 3), name="permute")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(units, name=f"fc{index}")(x)
    return keras.layers.PReLU(name=f"prelu{index}")(x)


def build_pnet(input_shape=(None, None, 3), weights=True):
    """PNet, fully convolutional: outputs [face (h, w, 2) softmax, box (h, w, 4)] per
    12x12 window at stride 2 (a 12x12 input gives 1x1 maps)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, 10, 3, 1)
    x = _pool(x, 2, "same", 1)
    x = _conv(x, 16, 3, 2)
    x = _conv(x, 32, 3, 3)
    face = keras.layers.Conv2D(2, 1, activation="softmax", name="face")(x)
    box = keras.layers.Conv2D(4, 1, name="box")(x)
    model = keras.Model(inputs, [face, box], name="pnet")
    return _load_into(model, "pnet") if weights else model


def build_rnet(weights=True):
    """RNet on 24x24x3 crops: outputs [face (2-way softmax), box (4)]."""
    inputs = keras.Input(shape=(24, 24, 3), name="image")
    x = _conv(inputs, 28, 3, 1)
    x = _pool(x, 3, "same", 1)
    x = _conv(x, 48, 3, 2)
    x = _pool(x, 3, "valid", 2)
    x = _conv(x, 64, 2, 3)
    x = _dense(x, 128, 4)
    face = keras.layers.Dense(2, activation="softmax", name="face")(x)
    box = keras.layers.Dense(4, name="box")(x)
    model = keras.Model(inputs, [face, box], name="rnet")
    return _load_into(model, "rnet") if weights else model


def build_onet(weights=True):
    """ONet on 48x48x3 crops: outputs [face (2-way softmax), box (4), landmarks (10:
    x of the five points, then y)]."""
    inputs = keras.Input(shape=(48, 48, 3), name="image")
    x = _conv(inputs, 32, 3, 1)
    x = _pool(x, 3, "same", 1)
    x = _conv(x, 64, 3, 2)
    x = _pool(x, 3, "valid", 2)
    x = _conv(x, 64, 3, 3)
    x = _pool(x, 2, "same", 3)
    x = _conv(x, 128, 2, 4)
    x = _dense(x, 256, 5)
    face = keras.layers.Dense(2, activation="softmax", name="face")(x)
    box = keras.layers.Dense(4, name="box")(x)
    landmarks = keras.layers.Dense(10, name="landmarks")(x)
    model = keras.Model(inputs, [face, box, landmarks], name="onet")
    return _load_into(model, "onet") if weights else model


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


# -- data ---------------------------------------------------------------------------------

def to_network_input(pixels):
    """Pixel values in [0, 255] (..., 3) to the networks' input: (v - 127.5) / 128."""
    return ((np.asarray(pixels, dtype="float32") - 127.5) / 128.0).astype("float32")


def face_data(size=48):
    """LFW crops for the networks: (images (200, size, size, 3) float32, labels (200,) int)
    with labels 1 = face (the first 100), 0 = background (the last 100)."""
    import tensorflow as tf
    from skimage.data import lfw_subset

    gray = np.asarray(lfw_subset(), dtype="float32")  # (200, 25, 25) in [0, 1]
    if gray.shape != (200, 25, 25):
        raise ValueError(f"skimage.data.lfw_subset() has shape {gray.shape}, not (200, 25, 25).")
    resized = tf.image.resize(gray[..., None], (size, size), method="bilinear").numpy()
    images = to_network_input(np.repeat(np.clip(resized, 0.0, 1.0) * 255.0, 3, axis=-1))
    labels = np.r_[np.ones(100, dtype="int64"), np.zeros(100, dtype="int64")]
    return images, labels


def face_probability(model, images, batch_size=200):
    """p(face) per image: the face class of the face output (PNet: its maps' mean)."""
    out = model.predict(images, batch_size=batch_size, verbose=0)[FACE_OUTPUT]
    p = out[..., FACE_CLASS]
    return p.reshape(len(p), -1).mean(axis=1)


def score_summary(p, labels, threshold=0.5):
    """Mean p(face) on faces and non-faces, and the accuracy of p > threshold."""
    p, labels = np.asarray(p, dtype="float64"), np.asarray(labels)
    faces, others = p[labels == 1], p[labels == 0]
    return {
        "faces_mean": float(faces.mean()),
        "faces_min": float(faces.min()),
        "nonfaces_mean": float(others.mean()),
        "nonfaces_max": float(others.max()),
        "threshold": threshold,
        "accuracy": float(((p > threshold) == (labels == 1)).mean()),
        "n_faces": len(faces),
        "n_nonfaces": len(others),
    }


# -- explanations -------------------------------------------------------------------------

class Explanations(NamedTuple):
    """maps: {method: explanation shaped like the images}; refused: {method: the analyzer's
    error message}; seconds: {method: {"create", "fit", "analyze": seconds}}."""

    maps: dict
    refused: dict
    seconds: dict


def explain(methods=None, images=None, model=None, fit_images=None, *,
            output_index=FACE_OUTPUT, neuron_selection=FACE_CLASS, method_kwargs=None,
            batch_size=64):
    """Explain the face logit of `model` (default: ONet) on `images` (default: all of
    ``face_data()``) with each of `methods` (default: ``DEFAULT_METHODS``).

    Pattern methods are fitted first on `fit_images` (default: `images`). `method_kwargs`
    ({method: {parameter: value}}) overrides ``METHOD_KWARGS``. Methods that cannot explain
    the model (``NotAnalyzableModelError``) are listed in ``refused`` with the error message;
    other errors propagate.
    """
    model = build_onet() if model is None else model
    images = face_data(model.input_shape[1] or 48)[0] if images is None else images
    fit_images = images if fit_images is None else fit_images
    methods = DEFAULT_METHODS if methods is None else methods
    maps, refused, seconds = {}, {}, {}
    for name in methods:
        kwargs = {**METHOD_KWARGS.get(name, {}), **(method_kwargs or {}).get(name, {})}
        t0 = time.perf_counter()
        try:
            analyzer = keras_patterns.create_analyzer(
                name, model, neuron_selection_mode="index", output_index=output_index,
                batch_size=batch_size, **kwargs)
        except keras_patterns.NotAnalyzableModelError as err:
            refused[name] = str(err)
            continue
        t1 = time.perf_counter()
        if name in PATTERN_METHODS:
            analyzer.fit(fit_images, batch_size=batch_size)
        t2 = time.perf_counter()
        maps[name] = analyzer.analyze(images, neuron_selection=neuron_selection)
        t3 = time.perf_counter()
        seconds[name] = {"create": t1 - t0, "fit": t2 - t1, "analyze": t3 - t2}
    return Explanations(maps, refused, seconds)


def pick(labels, n):
    """Indices of n images: the first ceil(n/2) faces and the first floor(n/2) others."""
    faces, others = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n = min(int(n), len(labels))
    k = min((n + 1) // 2, len(faces))
    return np.r_[faces[:k], others[:n - k]]


# -- command line -------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Explain MTCNN's ONet (trained weights from the mtcnn package) on LFW "
                    "faces and non-faces; writes <method>.npy files and faces.json.")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="analyzer names (default: all but the generic 'lrp' and "
                             "'lrp.alpha_beta')")
    parser.add_argument("--n", type=int, default=200,
                        help="images to explain, half faces and half non-faces (default 200)")
    parser.add_argument("--fit-n", type=int, default=200,
                        help="images the patterns are fitted on (default all 200)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one analyzer per method: retracing notices
    if args.methods:
        unknown = sorted(set(args.methods) - set(keras_patterns.list_analyzers()))
        if unknown:
            parser.error(f"unknown method(s) {', '.join(unknown)}; available: "
                         f"{', '.join(keras_patterns.list_analyzers())}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = build_onet()
    build_s = time.perf_counter() - t0
    images, labels = face_data(48)
    scores = score_summary(face_probability(model, images), labels)
    chosen = pick(labels, args.n)
    fit_chosen = pick(labels, args.fit_n)
    with warnings.catch_warnings():  # the face softmax is stripped on purpose
        warnings.filterwarnings("ignore", message="The model ends in a softmax")
        result = explain(args.methods, images[chosen], model, images[fit_chosen],
                         batch_size=args.batch_size)

    np.save(out / "images.npy", images[chosen])
    np.save(out / "labels.npy", labels[chosen])
    files = {}
    for name, heatmap in result.maps.items():
        files[name] = f"{name}.npy"
        np.save(out / files[name], heatmap.astype("float32"))
    summary = {
        "model": "MTCNN ONet (weights of the mtcnn 1.0.0 package)",
        "data": "skimage.data.lfw_subset, 48x48x3, (v - 127.5) / 128; label 1 = face",
        "p_face": scores,
        "explained": {"n": len(chosen), "n_faces": int(labels[chosen].sum()),
                      "fit_n": len(fit_chosen), "output_index": FACE_OUTPUT,
                      "neuron_selection": FACE_CLASS, "explains": "the face logit"},
        "methods": {name: {"file": files[name], "seconds": result.seconds[name]}
                    for name in result.maps},
        "refused": result.refused,
        "build_seconds": build_s,
    }
    (out / "faces.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"p(face): faces {scores['faces_mean']:.3f}, non-faces {scores['nonfaces_mean']:.3f}, "
          f"accuracy {scores['accuracy']:.3f}")
    for name, s in result.seconds.items():
        print(f"{name:40s} fit {s['fit']:6.2f} s  analyze {s['analyze']:6.2f} s")
    for name, why in result.refused.items():
        print(f"{name:40s} refused: {why}")
    print(f"wrote {len(files)} explanation(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
