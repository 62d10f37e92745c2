"""A trained face detector: MTCNN's three networks as Keras functional models.

MTCNN (Zhang et al., *Joint face detection and alignment using multi-task cascaded
convolutional networks*, IEEE SPL 2016) detects faces with a cascade of three small
convolutional networks: PNet proposes windows (fully convolutional, 12x12 receptive field),
RNet refines them on 24x24 crops and ONet decides on 48x48 crops, also regressing the box
and five facial landmarks. Their trained weights ship with the MIT-licensed ``mtcnn`` 1.0.0
package (``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``: joblib pickles of the weight arrays,
lz4-compressed). This module rebuilds the networks as Keras 3 functional models (which the
analyzers need) with readable layer names and loads those weights into them; nothing is
downloaded.

    from keras_patterns.zoo import faces
    model = faces.build_onet()                 # outputs: [face, box, landmarks]
    images, labels = faces.face_data()               # 200 LFW crops, 48x48x3, labels 1 = face
    result = faces.explain(["gradient", "pattern.attribution"], images)
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

The weights need the optional modules mtcnn, joblib and lz4, the data scikit-image (the
demo extra); without them the functions that need them raise
``keras_patterns.errors.MissingExtraError``. The script ``applications/faces.py`` explains
ONet from the command line.
"""

import importlib.util
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from ..analyzers import create_analyzer, list_analyzers
from ..errors import NotAnalyzableModelError
from .extras import missing_extra, require

# output position of the face probability in every network's outputs
FACE_OUTPUT = 0
# the face class of that output (index 0 is "not a face")
FACE_CLASS = 1
# the input range of the networks: pixel values 0..255 after (v - 127.5) / 128
INPUT_RANGE = (-127.5 / 128.0, 127.5 / 128.0)
# the square input size each network was trained on
INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}

# parameters for the methods that need some on these networks' inputs
METHOD_KWARGS = {
    "smoothgrad": {"augment_by_n": 32, "noise_scale": 0.2, "seed": 0},  # 10% of the range
    "squaregrad": {"augment_by_n": 32, "noise_scale": 0.2, "seed": 0},
    "vargrad": {"augment_by_n": 32, "noise_scale": 0.2, "seed": 0},
    "integrated_gradients": {"steps": 32},  # from the all-gray image (input 0)
    "random": {"seed": 0},
    "rise": {"n_masks": 500, "seed": 0},  # a few masks per cell of its 7x7 grid
    "deep_taylor.bounded": {"low": INPUT_RANGE[0], "high": INPUT_RANGE[1]},
    "lrp.sequential_preset_b_flat_until_idx": {"until_layer_idx": 1},
    "lrp.bounded": {"low": INPUT_RANGE[0], "high": INPUT_RANGE[1]},
}
# the generic forms "lrp" (needs a rule) and "lrp.alpha_beta" (needs alpha, beta) are left
# out of the defaults; their named variants are in
GENERIC_METHODS = ("lrp", "lrp.alpha_beta", "lrp.alpha_beta_IB")


def default_methods():
    """The methods :func:`explain` uses by default: every registered analyzer but the
    generic forms of LRP (which need a rule or alpha and beta).

    Returns:
        tuple of analyzer names, in the registry's order.
    """
    return tuple(name for name in list_analyzers() if name not in GENERIC_METHODS)


# -- weights ------------------------------------------------------------------------------

def weights_path(network):
    """The shipped weight file of a network.

    Args:
        network: "pnet", "rnet" or "onet".

    Returns:
        pathlib.Path of the file inside the installed mtcnn package.

    Raises:
        ValueError: an unknown network.
        MissingExtraError: mtcnn is not installed.
        FileNotFoundError: the installed package lacks the file.
    """
    if network not in INPUT_SIZE:
        raise ValueError(f"network must be one of {sorted(INPUT_SIZE)}, got {network!r}.")
    spec = importlib.util.find_spec("mtcnn")  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra("mtcnn", "the MTCNN weights (shipped with the mtcnn package)")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights" / (
        network + ".lz4")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mtcnn package.")
    return path


def load_weight_arrays(network):
    """The weight arrays of `network`, in the order the file stores them.

    The file is a joblib pickle of a list of numpy arrays, lz4-compressed (joblib recognises
    the lz4 frame and decompresses it; the lz4 package must be installed).

    Raises:
        MissingExtraError: mtcnn, joblib or lz4 is not installed.
    """
    path = weights_path(network)
    feature = "reading the MTCNN weights"
    joblib = require("joblib", feature)
    require("lz4.frame", feature)  # joblib decompresses the lz4 frames with it
    arrays = joblib.load(path)
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

# The convolutional trunks: ("conv", filters, kernel) is a valid convolution and its PReLU
# (one slope per channel), ("pool", size, padding) a max pooling of stride 2; layers are
# numbered in order, conv1, prelu1, pool1, ...
TRUNKS = {
    "pnet": [("conv", 10, 3), ("pool", 2, "same"), ("conv", 16, 3), ("conv", 32, 3)],
    "rnet": [("conv", 28, 3), ("pool", 3, "same"), ("conv", 48, 3), ("pool", 3, "valid"),
             ("conv", 64, 2)],
    "onet": [("conv", 32, 3), ("pool", 3, "same"), ("conv", 64, 3), ("pool", 3, "valid"),
             ("conv", 64, 3), ("pool", 2, "same"), ("conv", 128, 2)],
}
# the dense layer (with its PReLU) after the trunk of RNet and ONet
DENSE_UNITS = {"rnet": 128, "onet": 256}


def _trunk(x, network):
    """The convolutions, PReLUs and poolings of a network, from its input `x`."""
    counts = {"conv": 0, "pool": 0}
    for kind, size, option in TRUNKS[network]:
        counts[kind] += 1
        index = counts[kind]
        if kind == "conv":
            x = keras.layers.Conv2D(size, option, padding="valid", name=f"conv{index}")(x)
            x = keras.layers.PReLU(shared_axes=[1, 2], name=f"prelu{index}")(x)
        else:
            x = keras.layers.MaxPooling2D(size, strides=2, padding=option,
                                          name=f"pool{index}")(x)
    return x, counts["conv"] + 1


def _dense_network(network, size, landmarks, weights):
    """RNet or ONet: the trunk, column-major flattening (as the Caffe originals), a dense
    layer and its PReLU, then the face (2-way softmax), box (4) and landmarks (10) heads."""
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x, index = _trunk(inputs, network)
    x = keras.layers.Permute((2, 1, 3), name="permute")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(DENSE_UNITS[network], name=f"fc{index}")(x)
    x = keras.layers.PReLU(name=f"prelu{index}")(x)
    outputs = [keras.layers.Dense(2, activation="softmax", name="face")(x),
               keras.layers.Dense(4, name="box")(x)]
    if landmarks:
        outputs.append(keras.layers.Dense(10, name="landmarks")(x))
    model = keras.Model(inputs, outputs, name=network)
    return _load_into(model, network) if weights else model


def build_pnet(input_shape=(None, None, 3), weights=True):
    """PNet, fully convolutional, per 12x12 window at stride 2 (a 12x12 input gives 1x1
    maps).

    Args:
        input_shape: (height, width, 3); None for a free size.
        weights: load the trained weights of the mtcnn package (else random).

    Returns:
        keras.Model with outputs [face (h, w, 2) softmax, box (h, w, 4)].

    Raises:
        MissingExtraError: with ``weights``, mtcnn, joblib or lz4 is not installed.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x, _ = _trunk(inputs, "pnet")
    face = keras.layers.Conv2D(2, 1, activation="softmax", name="face")(x)
    box = keras.layers.Conv2D(4, 1, name="box")(x)
    model = keras.Model(inputs, [face, box], name="pnet")
    return _load_into(model, "pnet") if weights else model


def build_rnet(weights=True):
    """RNet on 24x24x3 crops.

    Args:
        weights: load the trained weights of the mtcnn package (else random).

    Returns:
        keras.Model with outputs [face (2-way softmax), box (4)].

    Raises:
        MissingExtraError: with ``weights``, mtcnn, joblib or lz4 is not installed.
    """
    return _dense_network("rnet", 24, False, weights)


def build_onet(weights=True):
    """ONet on 48x48x3 crops.

    Args:
        weights: load the trained weights of the mtcnn package (else random).

    Returns:
        keras.Model with outputs [face (2-way softmax), box (4), landmarks (10: x of the
        five points, then y)].

    Raises:
        MissingExtraError: with ``weights``, mtcnn, joblib or lz4 is not installed.
    """
    return _dense_network("onet", 48, True, weights)


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


# -- data ---------------------------------------------------------------------------------

def to_network_input(pixels):
    """Pixel values in [0, 255] (..., 3) to the networks' input: (v - 127.5) / 128."""
    return ((np.asarray(pixels, dtype="float32") - 127.5) / 128.0).astype("float32")


def face_data(size=48):
    """LFW crops for the networks, with labels 1 = face (the first 100), 0 = background
    (the last 100).

    Args:
        size: the side of the square images (48 for ONet, 24 for RNet, 12 for PNet).

    Returns:
        ``(images, labels)``: float32 ``(200, size, size, 3)`` in the networks' input
        range, int64 ``(200,)``.

    Raises:
        MissingExtraError: scikit-image is not installed.
    """
    import tensorflow as tf

    lfw_subset = require("skimage.data", "the LFW faces (shipped with scikit-image)").lfw_subset
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
    ``face_data()``) with each of `methods` (default: ``default_methods()``).

    Methods that need a fit (``analyzer.needs_fit``) are fitted first on `fit_images`
    (default: `images`). `method_kwargs`
    ({method: {parameter: value}}) overrides ``METHOD_KWARGS``. Methods that cannot explain
    the model (``NotAnalyzableModelError``) are listed in ``refused`` with the error message;
    other errors propagate.
    """
    model = build_onet() if model is None else model
    images = face_data(model.input_shape[1] or 48)[0] if images is None else images
    fit_images = images if fit_images is None else fit_images
    methods = default_methods() if methods is None else methods
    maps, refused, seconds = {}, {}, {}
    for name in methods:
        kwargs = {**METHOD_KWARGS.get(name, {}), **(method_kwargs or {}).get(name, {})}
        t0 = time.perf_counter()
        try:
            analyzer = create_analyzer(
                name, model, neuron_selection_mode="index", output_index=output_index,
                batch_size=batch_size, **kwargs)
        except NotAnalyzableModelError as err:
            refused[name] = str(err)
            continue
        t1 = time.perf_counter()
        if analyzer.needs_fit:
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
