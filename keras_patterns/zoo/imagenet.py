"""The ImageNet classifiers of keras.applications, ending in logits, and their
preprocessing.

Models: VGG16, ResNet50, MobileNetV2, DenseNet121 and EfficientNetB0 from
``keras.applications``, built with ``classifier_activation=None`` so that they output the
logits the analyzers explain (a final softmax would be stripped by the analyzers, with a
warning). ``weights="imagenet"`` (the default) loads the trained weights, which Keras
downloads to ``~/.keras/models`` on first use (so the first call needs a connection);
``weights=None`` gives random weights (offline, any input size from 32 up, any number of
classes), which the tests use.

Preprocessing: each family's own ``keras.applications.<family>.preprocess_input``, whose
modes are

* ``"caffe"`` (VGG16, ResNet50): RGB -> BGR, then the ImageNet means
  (B, G, R) = (103.939, 116.779, 123.68) subtracted, no scaling;
* ``"tf"`` (MobileNetV2): ``v / 127.5 - 1``, pixels in [-1, 1];
* ``"torch"`` (DenseNet121): ``(v / 255 - mean) / std`` per RGB channel with mean
  (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225);
* ``"none"`` (EfficientNetB0): pixels 0..255 as they are (the network rescales and
  normalises them in its own first layers).

:func:`unpreprocess` inverts them (for display: the input image in its original colours);
:func:`to_rgb` puts the explanations of a "caffe" model (in its BGR input order) in RGB
order. The script ``applications/imagenet.py`` fits patterns over a folder of images and
draws the explanations.
"""

from typing import NamedTuple

import keras
import numpy as np

from ..inputs import positive_int

# ImageNet channel means subtracted by the "caffe" mode, in its (B, G, R) order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# Per-channel (R, G, B) mean and standard deviation of the "torch" mode (pixels / 255).
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
# The input size of the ImageNet weights (with the classifier on top).
IMAGENET_SIZE = 224
IMAGENET_CLASSES = 1000
# The smallest input size keras.applications builds these models for.
MIN_SIZE = 32

class Family(NamedTuple):
    """One model of keras.applications and its preprocessing."""

    # the constructor's name in keras.applications
    constructor: str
    # the module of its preprocess_input (keras.applications.<module>)
    module: str
    # the preprocess_input mode: "caffe", "tf", "torch" or "none"
    mode: str


# name (lower case, without '_' or '-') -> family
FAMILIES = {
    "vgg16": Family("VGG16", "vgg16", "caffe"),
    "resnet50": Family("ResNet50", "resnet50", "caffe"),
    "mobilenetv2": Family("MobileNetV2", "mobilenet_v2", "tf"),
    "densenet121": Family("DenseNet121", "densenet", "torch"),
    "efficientnetb0": Family("EfficientNetB0", "efficientnet", "none"),
}


def family(name):
    """The :class:`Family` of a model name.

    Args:
        name: "vgg16", "ResNet50", "mobilenet_v2", ... (case, '_' and '-' ignored), or a
            model built by :func:`build` (its ``name`` starts with the family's, e.g.
            Keras's "mobilenetv2_1.00_224").

    Returns:
        Family.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if isinstance(name, keras.Model):
        name = name.name
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}")
    key = name.lower().replace("_", "").replace("-", "")
    if key in FAMILIES:
        return FAMILIES[key]
    for known, fam in FAMILIES.items():  # Keras model names carry suffixes
        if key.startswith(known):
            return fam
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(FAMILIES)}")


def _preprocess_function(fam):
    return getattr(keras.applications, fam.module).preprocess_input


def _check_channels_last():
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "The ImageNet classifiers work with keras.config.image_data_format() == "
            f"'channels_last', got {keras.config.image_data_format()!r}"
        )


def build(name, weights="imagenet", input_size=IMAGENET_SIZE, classes=IMAGENET_CLASSES):
    """Builds a keras.applications classifier ending in logits.

    Args:
        name: "vgg16", "resnet50", "mobilenetv2", "densenet121" or "efficientnetb0".
        weights: "imagenet" (downloaded by Keras on first use, then cached in
            ``~/.keras/models``), None for random weights, or the path of a weights file.
        input_size: the side of the square input, at least 32; 224 with the ImageNet
            weights.
        classes: number of classes; 1000 with the ImageNet weights.

    Returns:
        keras.Model: inputs ``(None, input_size, input_size, 3)`` preprocessed with
        :func:`preprocess`, outputs ``(None, classes)`` logits (``classifier_activation``
        None).

    Raises:
        ValueError: an unknown name, a bad size or class count (or one the ImageNet
            weights do not fit).
        RuntimeError: the ImageNet weights could not be loaded (offline and not cached).
    """
    fam = family(name)
    _check_channels_last()
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < MIN_SIZE:
        raise ValueError(f"input_size must be an int of at least {MIN_SIZE}, got {input_size!r}")
    classes = positive_int(classes, "classes")
    if weights == "imagenet" and (input_size != IMAGENET_SIZE or classes != IMAGENET_CLASSES):
        raise ValueError(
            f"the ImageNet weights of {fam.constructor} (with its classifier) need "
            f"input_size={IMAGENET_SIZE} and classes={IMAGENET_CLASSES}; got "
            f"input_size={input_size}, classes={classes} (use weights=None for other sizes)"
        )
    constructor = getattr(keras.applications, fam.constructor)
    try:
        return constructor(
            include_top=True,
            weights=weights,
            input_shape=(input_size, input_size, 3),
            classes=classes,
            classifier_activation=None,
        )
    except Exception as e:  # a failed download surfaces as several exception types
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"could not load the ImageNet weights of {fam.constructor} ({e}); Keras downloads "
            "them to ~/.keras/models on first use, which needs a connection. Use "
            "weights=None (--weights none) for random weights."
        ) from e


def preprocess(name, images):
    """The model's inputs for RGB images: the family's ``preprocess_input``.

    Args:
        name: the model name (or model) whose preprocessing to apply.
        images: RGB images ``(N, H, W, 3)`` with values 0..255 (uint8 or float); not
            modified.

    Returns:
        float32 array ``(N, H, W, 3)``.

    Raises:
        ValueError: not a batch of RGB images.
    """
    fam = family(name)
    _check_channels_last()
    x = np.array(images, dtype=np.float32, copy=True)  # preprocess_input works in place
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be RGB images (N, H, W, 3), got shape {np.shape(images)}")
    return np.asarray(_preprocess_function(fam)(x), dtype=np.float32)


def unpreprocess(name, x, as_uint8=False):
    """RGB images (0..255) from the model's inputs: the inverse of :func:`preprocess`.

    Args:
        name: the model name (or model).
        x: model inputs ``(N, H, W, 3)``.
        as_uint8: round to the nearest integer and clip to 0..255 (uint8).

    Returns:
        float64 array ``(N, H, W, 3)`` of RGB values on the 0..255 scale (float32 round-off
        of the forward map included), or uint8 with ``as_uint8``.
    """
    mode = family(name).mode
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"x must be model inputs (N, H, W, 3), got shape {np.shape(x)}")
    if mode == "caffe":
        rgb = (x + np.asarray(CAFFE_MEAN_BGR))[..., ::-1]
    elif mode == "tf":
        rgb = (x + 1.0) * 127.5
    elif mode == "torch":
        rgb = (x * np.asarray(TORCH_STD) + np.asarray(TORCH_MEAN)) * 255.0
    else:
        rgb = x.copy()
    if as_uint8:
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return rgb


def to_rgb(name, explanation):
    """An explanation in RGB channel order (reverses a "caffe" model's BGR inputs).

    Args:
        name: the model name (or model).
        explanation: array ``(N, H, W, 3)`` in the model's input layout.

    Returns:
        The same values with the channels in R, G, B order.
    """
    explanation = np.asarray(explanation)
    return explanation[..., ::-1] if family(name).mode == "caffe" else explanation
