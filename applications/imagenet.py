"""ImageNet classifiers of keras.applications explained, with patterns fitted on a folder.

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

:func:`unpreprocess` inverts them (for display: the input image in its original colours).

Images: :func:`load_folder` streams the images of a folder (PNG, JPEG, BMP, GIF, TIFF,
WebP; read with Pillow, turned upright by their EXIF orientation, converted to RGB, the
shorter side resized to the model's input size and the centre cropped) as uint8 batches;
only one batch is in memory at a time, whatever the number of images.
:func:`fit_patterns` fits the patterns of PatternNet / PatternAttribution over such a folder
in one streaming pass (a tf.data pipeline reading the next batch while the current one is
counted; ``verbose=1`` shows a progress bar: measured on 2 CPU cores, VGG16 at 224x224
takes ~0.5 s per image plus ~15 s of tracing, so 32 images ~33 s; deeper networks more).

    model = build("vgg16")                                   # weights="imagenet"
    patterns = fit_patterns(model, "photos/", verbose=1)     # kp.Patterns
    images = next(load_folder("photos/", 224, batch_size=8))  # uint8 (8, 224, 224, 3)
    result = explain(model, preprocess("vgg16", images), patterns=patterns)
    draw("vgg16", images, result.maps, path="vgg16_grid.png")

Display (the conventions of Kindermans et al., ICLR 2018): signal methods (gradient,
SmoothGrad, DeConvNet, Guided Backprop, PatternNet) are shown with
``keras_patterns.visualize.project`` on the colour channels, in RGB order (the explanations
of a "caffe" model are in its BGR input order; :func:`to_rgb` reverses them); attribution
methods (PatternAttribution, LRP, Deep Taylor, ...) as heat maps; the first column shows the
input in its original colours (:func:`unpreprocess`; ``visualize.grid`` stretches each
image from its min..max).

Command line (from the repository root)::

    python applications/imagenet.py --model vgg16 --images DIR --out DIR \\
        [--weights imagenet|none|FILE] [--methods NAME ...] [--size 224] [--n 8] \\
        [--fit-images DIR] [--fit-limit N] [--classes K] [--batch-size B] [--cell PX]

builds the model, fits the patterns over ``--fit-images`` (default: ``--images``) with a
progress bar when a pattern method is chosen, explains the first ``--n`` images of
``--images`` with each method (methods that refuse the model, e.g. Guided Backprop on
EfficientNetB0's swish, are reported and left out) and writes ``DIR/<model>_grid.png``.
"""

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if not __package__:  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

#: ImageNet channel means subtracted by the "caffe" mode, in its (B, G, R) order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: Per-channel (R, G, B) mean and standard deviation of the "torch" mode (pixels / 255).
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
#: The input size of the ImageNet weights (with the classifier on top).
IMAGENET_SIZE = 224
IMAGENET_CLASSES = 1000
#: The smallest input size keras.applications builds these models for.
MIN_SIZE = 32
#: File name endings :func:`list_images` reads (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Methods the command line explains with by default (the paper's comparison).
DEFAULT_METHODS = (
    "gradient",
    "deconvnet",
    "guided_backprop",
    "pattern.net",
    "pattern.attribution",
    "deep_taylor",
    "lrp.sequential_preset_a_flat",
)
PATTERN_METHODS = ("pattern.net", "pattern.attribution")
#: pattern types computed from the weights alone (no fit)
UNFITTED_PATTERN_TYPES = ("filter", "random")


class Family(NamedTuple):
    """One model of keras.applications and its preprocessing."""

    #: the constructor's name in keras.applications
    constructor: str
    #: the module of its preprocess_input (keras.applications.<module>)
    module: str
    #: the preprocess_input mode: "caffe", "tf", "torch" or "none"
    mode: str


#: name (lower case, without '_' or '-') -> family
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
            "applications/imagenet.py works with keras.config.image_data_format() == "
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
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive int, got {classes!r}")
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


# --------------------------------------------------------------------------------------
# images


def list_images(folder, recursive=False):
    """The image files of a folder, sorted by path.

    Args:
        folder: the folder.
        recursive: include subfolders.

    Returns:
        list of pathlib.Path (files whose name ends in one of :data:`IMAGE_SUFFIXES`).

    Raises:
        FileNotFoundError: no such folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {str(folder)!r}")
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _size_pair(size):
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ValueError(f"size must be a positive int or a (height, width) pair, got {size!r}")
    return int(size[0]), int(size[1])


def load_image(path, size):
    """One image as RGB uint8, its shorter side resized to fit and the centre cropped.

    The image is turned upright by its EXIF orientation, converted to RGB (gray, palette
    and alpha images too; alpha is dropped), scaled (bicubic) so that it just covers
    ``size`` and cropped to it around the centre.

    Args:
        path: an image file Pillow reads.
        size: an int (square) or ``(height, width)``.

    Returns:
        uint8 array ``(height, width, 3)``.

    Raises:
        ValueError: a file Pillow cannot read, naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    height, width = _size_pair(size)
    try:
        with Image.open(path) as picture:
            picture = ImageOps.exif_transpose(picture).convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read the image {str(path)!r}: {e}") from None
    scale = max(height / picture.height, width / picture.width)
    resized = (max(width, round(picture.width * scale)), max(height, round(picture.height * scale)))
    picture = picture.resize(resized, Image.Resampling.BICUBIC)
    left = (picture.width - width) // 2
    top = (picture.height - height) // 2
    picture = picture.crop((left, top, left + width, top + height))
    return np.asarray(picture, dtype=np.uint8)


def load_folder(folder, size, batch_size=32, limit=None, recursive=False, with_paths=False,
                skip_unreadable=False):
    """Streams the images of a folder in batches (one batch in memory at a time).

    Args:
        folder: the folder (files as in :func:`list_images`, in sorted order).
        size: the model's input size: an int (square) or ``(height, width)``.
        batch_size: images per batch (the last batch may be smaller).
        limit: read at most this many images (None: all).
        recursive: include subfolders.
        with_paths: yield ``(batch, paths)`` pairs instead of batches.
        skip_unreadable: skip files Pillow cannot read, with a warning (default: raise).

    Returns:
        A generator of uint8 arrays ``(n, height, width, 3)`` (RGB), or of
        ``(array, list of paths)`` with ``with_paths``.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no images in it, bad ``size``, ``batch_size`` or ``limit`` (raised at
            the call); an unreadable file (raised when it is reached, unless
            ``skip_unreadable``).
    """
    size = _size_pair(size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or a positive int, got {limit!r}")
    paths = list_images(folder, recursive)
    if not paths:
        raise ValueError(
            f"no images in {str(folder)!r} (file names ending in {', '.join(IMAGE_SUFFIXES)})"
        )
    if limit is not None:
        paths = paths[:limit]

    def batches():
        pixels, names = [], []
        for path in paths:
            try:
                pixels.append(load_image(path, size))
            except ValueError as e:
                if not skip_unreadable:
                    raise
                warnings.warn(f"skipped: {e}", UserWarning, stacklevel=2)
                continue
            names.append(path)
            if len(pixels) == batch_size:
                yield (np.stack(pixels), names) if with_paths else np.stack(pixels)
                pixels, names = [], []
        if pixels:
            yield (np.stack(pixels), names) if with_paths else np.stack(pixels)

    return batches()


def _input_size(model):
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(f"the model must have one input, got {len(shape)}")
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:3]:
        raise ValueError(f"the model must take RGB images (None, H, W, 3), got {shape}")
    return int(shape[1]), int(shape[2])


def fit_patterns(model, folder, name=None, batch_size=16, limit=None, pattern_type="relu",
                 verbose=1, recursive=False, skip_unreadable=False, **kwargs):
    """Fits the patterns of ``model`` on the images of a folder, streamed in batches.

    The images are read as :func:`load_folder` does, at the model's input size, and
    preprocessed with :func:`preprocess`; a tf.data pipeline prepares the next batch while
    the current one is counted, and memory does not depend on the number of images.

    Args:
        model: a model from :func:`build`.
        folder: the folder of training images (any sizes).
        name: the model family (default: from ``model.name``).
        batch_size: images per batch.
        limit: use at most this many images.
        pattern_type: see ``keras_patterns.compute_patterns``.
        verbose: 1 shows a progress bar (with the number of batches).
        recursive: include subfolders.
        skip_unreadable: skip files Pillow cannot read (with a warning).
        **kwargs: more arguments of ``keras_patterns.compute_patterns`` (``precision``,
            ``checkpoint``, ...).

    Returns:
        keras_patterns.Patterns, for ``explain(..., patterns=...)`` (or
        ``kp.create_analyzer("pattern.net", model, patterns=...)``).
    """
    import tensorflow as tf

    import keras_patterns as kp

    fam = family(name if name is not None else model)
    height, width = _input_size(model)
    count = len(list_images(folder, recursive))
    if limit is not None:
        count = min(count, limit)

    def batches():
        return load_folder(folder, (height, width), batch_size, limit, recursive,
                           skip_unreadable=skip_unreadable)

    batches()  # checks the arguments and the folder now, not when the pass starts

    def inputs():  # a fresh generator every time the dataset is iterated
        for pixels in batches():
            yield preprocess(fam.constructor, pixels)

    data = tf.data.Dataset.from_generator(
        inputs, output_signature=tf.TensorSpec((None, height, width, 3), tf.float32)
    ).prefetch(1)
    return kp.compute_patterns(model, data, pattern_type=pattern_type, batch_size=batch_size,
                               steps=math.ceil(count / batch_size), verbose=verbose, **kwargs)


class Explained(NamedTuple):
    """What :func:`explain` returns."""

    #: method name -> explanation shaped like the inputs (model input layout)
    maps: dict
    #: method name -> why it cannot explain this model (NotAnalyzableModelError)
    refused: dict
    #: method name -> seconds taken (analyzer creation and analysis)
    seconds: dict


def explain(model, x, methods=DEFAULT_METHODS, patterns=None, method_kwargs=None):
    """Explains preprocessed images with several methods.

    Args:
        model: a model from :func:`build` (logits).
        x: model inputs ``(N, H, W, 3)`` (:func:`preprocess`).
        methods: analyzer names (``keras_patterns.list_analyzers()``).
        patterns: ``keras_patterns.Patterns`` from :func:`fit_patterns` (or the path of a
            saved patterns file); required by the pattern methods (except with the
            unfitted ``pattern_type`` "filter" or "random" in ``method_kwargs``).
        method_kwargs: optional ``{method name: create_analyzer keyword arguments}``.

    Returns:
        Explained: ``maps`` (in the order of ``methods``, refused methods left out),
        ``refused`` (method -> reason) and ``seconds``.

    Raises:
        ValueError: a pattern method without ``patterns``.
    """
    import keras_patterns as kp

    method_kwargs = dict(method_kwargs or {})
    maps, refused, seconds = {}, {}, {}
    for name in methods:
        kwargs = dict(method_kwargs.get(name, {}))
        fitted = kwargs.get("pattern_type", "relu") not in UNFITTED_PATTERN_TYPES
        if name in PATTERN_METHODS and fitted and kwargs.get("patterns") is None:
            if patterns is None:
                raise ValueError(
                    f"{name} needs patterns: fit them with fit_patterns(model, folder)"
                )
            kwargs["patterns"] = patterns
        start = time.perf_counter()
        try:
            analyzer = kp.create_analyzer(name, model, **kwargs)
        except kp.NotAnalyzableModelError as e:
            refused[name] = str(e)
            continue
        maps[name] = analyzer.analyze(x)
        seconds[name] = time.perf_counter() - start
    return Explained(maps, refused, seconds)


def draw(name, images, maps, path=None, row_labels=None, cell=None):
    """The grid of images and explanations, in the paper's display conventions.

    Args:
        name: the model name (or model): fixes the channel order of the explanations.
        images: the original RGB images ``(N, H, W, 3)`` (0..255; e.g. from
            :func:`load_folder`, or ``unpreprocess(name, x)``).
        maps: ``{method name: explanation}`` in the model's input layout (as
            :func:`explain` returns them).
        path: also write the picture there (PNG).
        row_labels: ``N`` labels, or None.
        cell: picture size (see ``keras_patterns.visualize.grid``).

    Returns:
        PIL.Image.Image.
    """
    from keras_patterns import visualize

    shown = {method: to_rgb(name, e) for method, e in maps.items()}
    return visualize.grid(np.asarray(images), shown, row_labels=row_labels, path=path, cell=cell)


def _class_names(logits, weights):
    """Row label text per image: the top class (its ImageNet name with ImageNet weights)."""
    probabilities = np.asarray(keras.ops.softmax(logits, axis=-1))
    top = np.argmax(probabilities, axis=-1)
    names = [f"class {k}" for k in top]
    if weights == "imagenet":
        try:
            decoded = keras.applications.imagenet_utils.decode_predictions(probabilities, top=1)
            names = [entry[0][1] for entry in decoded]
        except Exception:  # the class index file could not be fetched: keep the indices
            pass
    return [f"{n[:16]} {p:.2f}" for n, p in zip(names, probabilities[np.arange(len(top)), top])]


def main(argv=None):
    """Command line: build, fit the patterns over a folder, explain, draw the grid.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        int exit status: 0; 1 when no method could explain the model; 2 for a model that
        cannot be built (bad size, weights that cannot be loaded) or an unreadable folder.
    """
    parser = argparse.ArgumentParser(
        description="Explain a keras.applications ImageNet classifier on a folder of images."
    )
    parser.add_argument("--model", required=True, help=", ".join(FAMILIES))
    parser.add_argument("--images", required=True, help="folder of images to explain")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (default; downloaded once), 'none' or a weights file")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--size", type=int, default=IMAGENET_SIZE, help="input side in pixels")
    parser.add_argument("--classes", type=int, default=IMAGENET_CLASSES)
    parser.add_argument("--n", type=int, default=8, help="images to explain (the first n)")
    parser.add_argument("--fit-images", default=None,
                        help="folder the patterns are fitted on (default: --images)")
    parser.add_argument("--fit-limit", type=int, default=None, help="at most this many")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pattern-type", default="relu")
    parser.add_argument("--cell", type=int, default=None, help="pixels per picture side")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        family(args.model)
    except ValueError as e:
        parser.error(str(e))
    weights = None if args.weights.lower() == "none" else args.weights

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        model = build(args.model, weights=weights, input_size=args.size, classes=args.classes)
        images, paths = next(load_folder(args.images, args.size, batch_size=args.n,
                                         with_paths=True))
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"built {model.name} ({model.count_params():,} parameters, weights={weights}) in "
          f"{time.perf_counter() - start:.1f} s")
    x = preprocess(args.model, images)
    patterns = None
    if any(m in PATTERN_METHODS for m in args.methods) and (
        args.pattern_type not in UNFITTED_PATTERN_TYPES
    ):
        folder = args.fit_images or args.images
        start = time.perf_counter()
        patterns = fit_patterns(model, folder, name=args.model, batch_size=args.batch_size,
                                limit=args.fit_limit, pattern_type=args.pattern_type, verbose=1)
        print(f"fitted the patterns on {patterns.n_samples} images of {folder} in "
              f"{time.perf_counter() - start:.1f} s")
    pattern_kwargs = {m: {"pattern_type": args.pattern_type} for m in PATTERN_METHODS}
    result = explain(model, x, args.methods, patterns=patterns, method_kwargs=pattern_kwargs)
    for method, why in result.refused.items():
        print(f"{method}: refused: {why}")
    for method, took in result.seconds.items():
        print(f"{method}: {took:.1f} s")
    if not result.maps:
        print("no method could explain this model", file=sys.stderr)
        return 1
    labels = _class_names(np.asarray(model(x, training=False)), weights)
    row_labels = [f"{p.stem[:16]}\n{label}" for p, label in zip(paths, labels)]
    grid_path = out / f"{family(args.model).constructor.lower()}_grid.png"
    draw(args.model, images, result.maps, path=grid_path, row_labels=row_labels, cell=args.cell)
    print(f"wrote {grid_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
