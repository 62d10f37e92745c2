"""Explain an ImageNet classifier of keras.applications on a folder of images, with
patterns fitted over a folder.

The models and their preprocessing are ``keras_patterns.zoo.imagenet`` (VGG16, ResNet50,
MobileNetV2, DenseNet121, EfficientNetB0, ending in logits); the images are read by
``keras_patterns.images`` (PNG, JPEG, BMP, GIF, TIFF, WebP; turned upright by their EXIF
orientation, converted to RGB, the shorter side resized to the model's input size and the
centre cropped), streamed with only one batch in memory at a time.
:func:`fit_patterns_on_folder` fits the patterns of PatternNet / PatternAttribution over
such a folder in one streaming pass (a tf.data pipeline reading the next batch while the
current one is counted; ``verbose=1`` shows a progress bar: measured on 2 CPU cores, VGG16
at 224x224 takes ~0.5 s per image plus ~15 s of tracing, so 32 images ~33 s; deeper
networks more).

    from keras_patterns import images
    from keras_patterns.zoo import imagenet
    model = imagenet.build("vgg16")                                  # weights="imagenet"
    patterns = fit_patterns_on_folder(model, "photos/", verbose=1)   # kp.Patterns
    pixels = next(images.load_folder("photos/", 224, batch_size=8))  # uint8 (8, 224, 224, 3)
    result = explain(model, imagenet.preprocess("vgg16", pixels), patterns=patterns)
    draw("vgg16", pixels, result.maps, path="vgg16_grid.png")

Display (the conventions of Kindermans et al., ICLR 2018): signal methods (gradient,
SmoothGrad, DeConvNet, Guided Backprop, PatternNet) are shown with
``keras_patterns.visualize.project`` on the colour channels, in RGB order (the explanations
of a "caffe" model are in its BGR input order; ``imagenet.to_rgb`` reverses them);
attribution methods (PatternAttribution, LRP, Deep Taylor, ...) as heat maps; the first
column shows the input in its original colours (``visualize.grid`` stretches each image
from its min..max).

Command line (with keras-patterns installed)::

    python applications/imagenet.py --model vgg16 --images DIR --out DIR \\
        [--weights imagenet|none|FILE] [--methods NAME ...] [--size 224] [--n 8] \\
        [--fit-images DIR] [--fit-limit N] [--classes K] [--batch-size B] [--cell PX]

builds the model, fits the patterns over ``--fit-images`` (default: ``--images``) with a
progress bar when a method that needs a fit is chosen, explains the first ``--n`` images of
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

import keras
import numpy as np

import keras_patterns as kp
from keras_patterns import images, visualize
from keras_patterns.analyzers import analyzer_class
from keras_patterns.zoo import imagenet
from keras_patterns.zoo.imagenet import FAMILIES, IMAGENET_CLASSES, IMAGENET_SIZE, family

# Methods the command line explains with by default (the paper's comparison).
DEFAULT_METHODS = (
    "gradient",
    "deconvnet",
    "guided_backprop",
    "pattern.net",
    "pattern.attribution",
    "deep_taylor",
    "lrp.sequential_preset_a_flat",
)


def _input_size(model):
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(f"the model must have one input, got {len(shape)}")
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:3]:
        raise ValueError(f"the model must take RGB images (None, H, W, 3), got {shape}")
    return int(shape[1]), int(shape[2])


def fit_patterns_on_folder(model, folder, name=None, batch_size=16, limit=None,
                           pattern_type="relu", verbose=1, recursive=False,
                           skip_unreadable=False, **kwargs):
    """Fits the patterns of ``model`` on the images of a folder, streamed in batches.

    The images are read as ``keras_patterns.images.load_folder`` does, at the model's input
    size, and preprocessed with ``imagenet.preprocess``; a tf.data pipeline prepares the
    next batch while the current one is counted, and memory does not depend on the number
    of images.

    Args:
        model: a model from ``keras_patterns.zoo.imagenet.build``.
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

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no images in it, or a model that does not take RGB images.
    """
    import tensorflow as tf

    fam = family(name if name is not None else model)
    height, width = _input_size(model)
    count = len(images.list_images(folder, recursive))
    if limit is not None:
        count = min(count, limit)

    def batches():
        return images.load_folder(folder, (height, width), batch_size, limit, recursive,
                                  skip_unreadable=skip_unreadable)

    batches()  # checks the arguments and the folder now, not when the pass starts

    def inputs():  # a fresh generator every time the dataset is iterated
        for pixels in batches():
            yield imagenet.preprocess(fam.constructor, pixels)

    data = tf.data.Dataset.from_generator(
        inputs, output_signature=tf.TensorSpec((None, height, width, 3), tf.float32)
    ).prefetch(1)
    return kp.compute_patterns(model, data, pattern_type=pattern_type, batch_size=batch_size,
                               steps=math.ceil(count / batch_size), verbose=verbose, **kwargs)


class Explained(NamedTuple):
    """What :func:`explain` returns."""

    # method name -> explanation shaped like the inputs (model input layout)
    maps: dict
    # method name -> why it cannot explain this model (NotAnalyzableModelError)
    refused: dict
    # method name -> seconds taken (analyzer creation and analysis)
    seconds: dict


def explain(model, x, methods=DEFAULT_METHODS, patterns=None, method_kwargs=None):
    """Explains preprocessed images with several methods.

    Args:
        model: a model from ``keras_patterns.zoo.imagenet.build`` (logits).
        x: model inputs ``(N, H, W, 3)`` (``imagenet.preprocess``).
        methods: analyzer names (``keras_patterns.list_analyzers()``).
        patterns: ``keras_patterns.Patterns`` from :func:`fit_patterns_on_folder` (or the
            path of a saved patterns file); required by the methods that need a fit
            (``analyzer.needs_fit``: the pattern methods, except with the unfitted
            ``pattern_type`` "filter" or "random" in ``method_kwargs``).
        method_kwargs: optional ``{method name: create_analyzer keyword arguments}``.

    Returns:
        Explained: ``maps`` (in the order of ``methods``, refused methods left out),
        ``refused`` (method -> reason) and ``seconds``.

    Raises:
        ValueError: a method that needs a fit without ``patterns``.
    """
    method_kwargs = dict(method_kwargs or {})
    maps, refused, seconds = {}, {}, {}
    for name in methods:
        kwargs = dict(method_kwargs.get(name, {}))
        start = time.perf_counter()
        try:
            analyzer = kp.create_analyzer(name, model, **kwargs)
        except kp.NotAnalyzableModelError as e:
            refused[name] = str(e)
            continue
        if analyzer.needs_fit and analyzer.patterns is None:
            if patterns is None:
                raise ValueError(
                    f"{name} needs patterns: fit them with fit_patterns_on_folder(model, "
                    "folder)")
            analyzer.set_patterns(patterns)
        maps[name] = analyzer.analyze(x)
        seconds[name] = time.perf_counter() - start
    return Explained(maps, refused, seconds)


def draw(name, images, maps, path=None, row_labels=None, cell=None):
    """The grid of images and explanations, in the paper's display conventions.

    Args:
        name: the model name (or model): fixes the channel order of the explanations.
        images: the original RGB images ``(N, H, W, 3)`` (0..255; e.g. from
            ``keras_patterns.images.load_folder``, or ``imagenet.unpreprocess(name, x)``).
        maps: ``{method name: explanation}`` in the model's input layout (as
            :func:`explain` returns them).
        path: also write the picture there (PNG).
        row_labels: ``N`` labels, or None.
        cell: picture size (see ``keras_patterns.visualize.grid``).

    Returns:
        PIL.Image.Image.
    """
    shown = {method: imagenet.to_rgb(name, e) for method, e in maps.items()}
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
        # Keras downloads the class index file on first use; a failed download raises a
        # bare Exception (keras.utils.get_file), so this catches that and says so
        except Exception as e:
            warnings.warn(f"The ImageNet class names could not be loaded ({e}); the row "
                          "labels show class indices.", UserWarning, stacklevel=2)
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        family(args.model)
    except ValueError as e:
        parser.error(str(e))
    unknown = sorted(set(args.methods) - set(kp.list_analyzers()))
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; available: "
                     f"{', '.join(kp.list_analyzers())}")
    weights = None if args.weights.lower() == "none" else args.weights

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        model = imagenet.build(args.model, weights=weights, input_size=args.size,
                               classes=args.classes)
        pixels, paths = next(images.load_folder(args.images, args.size, batch_size=args.n,
                                                with_paths=True))
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"built {model.name} ({model.count_params():,} parameters, weights={weights}) in "
          f"{time.perf_counter() - start:.1f} s")
    x = imagenet.preprocess(args.model, pixels)
    # the methods with patterns (their classes need a fit) take --pattern-type; the patterns
    # are fitted once for all of them, unless the type is computed from the weights alone
    pattern_methods = [m for m in args.methods if analyzer_class(m).needs_fit]
    patterns = None
    if pattern_methods and kp.patterns.estimator(args.pattern_type).needs_fit:
        folder = args.fit_images or args.images
        start = time.perf_counter()
        patterns = fit_patterns_on_folder(model, folder, name=args.model,
                                          batch_size=args.batch_size, limit=args.fit_limit,
                                          pattern_type=args.pattern_type, verbose=1)
        print(f"fitted the patterns on {patterns.n_samples} images of {folder} in "
              f"{time.perf_counter() - start:.1f} s")
    pattern_kwargs = {m: {"pattern_type": args.pattern_type} for m in pattern_methods}
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
    draw(args.model, pixels, result.maps, path=grid_path, row_labels=row_labels, cell=args.cell)
    print(f"wrote {grid_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
