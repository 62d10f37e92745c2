"""The `keras-patterns` command.

    keras-patterns demo [--out DIR]                  real networks explained, in pictures
    keras-patterns fit MODEL.keras DATA [--out F]    patterns of a model, fitted on DATA
    keras-patterns explain MODEL.keras IMAGES... --method NAME [--out DIR]
    keras-patterns explain MODEL.keras TEXTS.txt --method NAME --vocab VOCAB.txt
    keras-patterns evaluate MODEL.keras DATA [--methods NAME...] [--metric M...]   metrics
    keras-patterns reproduce [--out DIR]             the paper's experiments: a report
    keras-patterns list                              the methods and their parameters
    keras-patterns check                             every method on a small CNN

Errors of the user's making (a missing file, a file that is not a model, images of the
wrong size, an unknown method) and a missing optional dependency print one line and exit
with status 2; no traceback. Warnings print one line each, without Python's source line.
"""

import argparse
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# the metrics of `keras-patterns evaluate --metric` (keras_patterns.evaluate.compare.METRICS,
# spelled out so that the parser does not import TensorFlow)
METRICS = ("degradation", "deletion", "insertion", "mu_fidelity", "road")

# what a user can get wrong: one line, exit status 2
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, PermissionError, RuntimeError)


def _data_options(p):
    p.add_argument("--scale", type=float, default=1 / 255.0,
                   help="image inputs: x = pixels * scale + offset (default 1/255)")
    p.add_argument("--offset", type=float, default=0.0, help="see --scale (default 0)")
    p.add_argument("--resize", action="store_true",
                   help="resize images to the model's input size (default: refuse others)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (32)")
    p.add_argument("--output-index", type=int, default=None,
                   help="which output of a model with several")


def parser():
    top = argparse.ArgumentParser(
        prog="keras-patterns",
        description="Explain what a trained Keras network sees: PatternNet, "
                    "PatternAttribution, LRP, gradient methods.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="explain real networks with every method, in pictures",
                       description="Train a CNN on scikit-learn's digits and explain test "
                                   "digits with every method (digits.png); explain MTCNN's "
                                   "pretrained ONet on LFW faces (faces.png); train a small "
                                   "transformer on planted-token text and explain its "
                                   "sequences (text.png, text.html). Offline.")
    p.add_argument("--out", default="keras-patterns-demo", help="output folder")
    p.add_argument("--digits", type=int, default=8, help="test digits to explain (8)")
    p.add_argument("--faces", type=int, default=6, help="LFW images to explain (6)")
    p.add_argument("--skip-faces", action="store_true", help="no faces")
    p.add_argument("--text", type=int, default=3, help="sequences to draw (3)")
    p.add_argument("--skip-text", action="store_true", help="no text")

    p = sub.add_parser("fit", help="fit a model's patterns on data",
                       description="Fit the patterns of every kernel layer of MODEL on DATA "
                                   "(a folder of images, image files, or one .npy/.npz file), "
                                   "streamed in batches; writes MODEL.patterns.h5.")
    p.add_argument("model", help="a saved Keras model (.keras)")
    p.add_argument("data", nargs="+", help="image folders/files, or one .npy/.npz file")
    p.add_argument("--out", default=None, help="patterns file (default MODEL.patterns.h5)")
    p.add_argument("--pattern-type", default="relu",
                   help="relu (default), relu.eq8, linear, filter, random")
    p.add_argument("--steps", type=int, default=None, help="at most this many batches")
    p.add_argument("--key", default=None, help="the array of a .npz file (default x/first)")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file: an interrupted fit resumes from it")
    p.add_argument("--checkpoint-every", type=int, default=100, help="batches (100)")
    _data_options(p)

    p = sub.add_parser("explain", help="explain images or texts with one method",
                       description="Explain images (files or folders) with one method; "
                                   "writes one picture per image (signal methods projected, "
                                   "attributions as heat maps) and optionally the arrays. "
                                   "With --vocab or --tokenizer, explain the texts of text "
                                   "files (one per line) of a model that takes token ids: "
                                   "one PNG and one HTML token heat map per text (a text "
                                   "longer than the model's sequence is truncated, with a "
                                   "warning).")
    p.add_argument("model", help="a saved Keras model (.keras)")
    p.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files or folders; text files with --vocab/--tokenizer")
    p.add_argument("--vocab", default=None,
                   help="texts: a vocabulary file, one token per line (id = line number); "
                        "words split at whitespace, unknown ones [UNK], padding [PAD] or 0")
    p.add_argument("--tokenizer", default=None,
                   help="texts: a keras-hub tokenizer (a saved preset folder, its "
                        "tokenizer.json, or a WordPiece vocabulary .txt); needs keras-hub")
    p.add_argument("--method", required=True, help="a method name (keras-patterns list)")
    p.add_argument("--patterns", default=None,
                   help="patterns file of pattern methods (default MODEL.patterns.h5)")
    p.add_argument("--out", default="explanations", help="output folder")
    p.add_argument("--npy", action="store_true", help="also write each explanation's array")
    p.add_argument("--neuron", type=int, default=None,
                   help="explain this output unit (default: the largest per image)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a method parameter, e.g. --param epsilon=0.1 (repeatable)")
    p.add_argument("--key", default=None, help=argparse.SUPPRESS)
    _data_options(p)

    p = sub.add_parser("evaluate", help="signal quality and perturbation metrics on data",
                       description="Measure the signal quality rho(S) of the estimators per "
                                   "layer (paper Eq. 1) on DATA and, with --methods, the image "
                                   "degradation AOPC of each method, or with --metric a table "
                                   "of perturbation metrics (OUT/metrics.md and "
                                   "OUT/metrics.csv); writes OUT/evaluation.md.")
    p.add_argument("model", help="a saved Keras model (.keras)")
    p.add_argument("data", nargs="+", help="image folders/files, or one .npy/.npz file")
    p.add_argument("--methods", nargs="*", default=[], help="methods to evaluate")
    p.add_argument("--metric", nargs="+", default=[], choices=METRICS,
                   help="perturbation metrics to tabulate for the methods (and a random "
                        "attribution): " + ", ".join(METRICS))
    p.add_argument("--report", action="store_true",
                   help="rank the methods on every metric (the perturbation metrics, "
                        "complexity, sparseness, max-sensitivity): OUT/report.md, "
                        "OUT/report.csv and OUT/report.png")
    p.add_argument("--score", default="probability", choices=("probability", "logit"),
                   help="what the perturbation metrics score: the softmax probability of the "
                        "explained class (probability) or the output itself (logit)")
    p.add_argument("--granularity", default="pixel", choices=("pixel", "patch", "token"),
                   help="what deletion, insertion and mu_fidelity perturb (pixel)")
    p.add_argument("--skip-quality", action="store_true", help="do not measure rho(S)")
    p.add_argument("--estimators", nargs="+", default=["random", "filter", "linear", "relu"])
    p.add_argument("--patch-size", type=int, default=9, help="degradation patches (9)")
    p.add_argument("--steps", type=int, default=100,
                   help="degradation: patches replaced; deletion/insertion: steps (100)")
    p.add_argument("--images", type=int, default=64, help="samples evaluated (64)")
    p.add_argument("--key", default=None, help="the array of a .npz file")
    p.add_argument("--out", default="evaluation", help="output folder")
    _data_options(p)

    p = sub.add_parser("reproduce", help="the paper's experiments, offline: a report",
                       description="Reproduce the paper's experiments (the toy, signal "
                                   "quality, degradation, grids) plus a known-signal benchmark "
                                   "and sanity checks on the digits CNN and ONet; writes "
                                   "OUT/report.md and its figures (about 10 minutes).")
    p.add_argument("--out", default="keras-patterns-report", help="output folder")
    p.add_argument("--quick", action="store_true", help="a small setting (about a minute)")
    p.add_argument("--seed", type=int, default=0)

    sub.add_parser("list", help="the methods and their parameters",
                   description="List every method with its description and parameters.")
    sub.add_parser("check", help="every method on a small CNN (an installation check)",
                   description="Explain a small random CNN with every method, one line each.")
    return top


def _start_tensorflow_quietly():
    """Import TensorFlow with its start-up lines (written by its C++ code before its logging
    is set up, so TF_CPP_MIN_LOG_LEVEL cannot silence them) kept off stderr, so that an
    error is the one line the user sees."""
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no file descriptors to juggle (an embedded interpreter)
        return
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.zeros(())  # the first operation starts the devices, which logs too
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _one_line_warnings(command):
    """A `warnings.showwarning` that prints `keras-patterns COMMAND: warning: MESSAGE` on
    one line (the category named unless it is UserWarning), without Python's source
    location and line."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if category is not UserWarning:
            text = f"{category.__name__}: {text}"
        print(f"keras-patterns {command}: warning: {text}",
              file=sys.stderr if file is None else file)

    return show


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    with warnings.catch_warnings():  # restores Python's own display on leaving
        warnings.showwarning = _one_line_warnings(args.command)
        return _run(args)


def _run(args):
    _start_tensorflow_quietly()
    from ..errors import MissingExtraError
    from . import commands, demo

    run = {"demo": demo.demo, "fit": commands.fit, "explain": commands.explain,
           "evaluate": commands.evaluate, "reproduce": commands.reproduce,
           "list": commands.list_methods, "check": commands.check}[args.command]
    try:
        return run(args)
    except (MissingExtraError, *USER_ERRORS) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"keras-patterns {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-patterns {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output piped into a command that stopped reading (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
