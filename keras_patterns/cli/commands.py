"""The subcommands `fit`, `explain`, `evaluate`, `reproduce`, `list` and `check` of
`keras-patterns` (`demo` is in `demo`).

What a method needs is read from its class (`returns`, `needs_fit`, `example`): a method
registered from outside the package is listed, checked and explained like the others."""

import ast
import inspect
import os
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from .. import visualize
from ..analyzers import Analyzer, analyzer_class, create_analyzer, list_analyzers
from ..errors import InvalidInputError, MissingExtraError, NotAnalyzableModelError, PatternFileError
from ..loading import load_model
from ..patterns import compute_patterns, patterns_path, save_patterns
from .sources import ImageSource, array_batches, image_files, load_array
from .text import TokenInputs, explain_texts
from .tokens import load_tokenizer


def parse_params(pairs):
    """--param name=value (value a Python literal, else a string) -> kwargs."""
    out = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise InvalidInputError(f"--param expects name=value, got {pair!r}.")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def _data_source(args, model, batch_size):
    """(batches of the model's input, number of batches or None, description)."""
    shape = tuple(model.inputs[0].shape[1:])
    data = args.data
    if len(data) == 1 and data[0].endswith((".npy", ".npz")):
        array = load_array(data[0], args.key)
        if tuple(array.shape[1:]) != shape and None not in shape:
            raise InvalidInputError(
                f"'{data[0]}' holds arrays of shape {tuple(array.shape[1:])}; the model takes "
                f"{shape}.")
        return array_batches(array, batch_size), -(-len(array) // batch_size), data[0]
    files = image_files(data)
    source = ImageSource(shape, args.scale, args.offset, args.resize)
    return ((x for _, x in source.batches(files, batch_size)), -(-len(files) // batch_size),
            f"{len(files)} images")


def fit(args):
    model = load_model(args.model)
    batches, n, where = _data_source(args, model, args.batch_size)
    steps = args.steps if args.steps is not None else n
    out = args.out or patterns_path(args.model)
    print(f"fitting {args.pattern_type} patterns of {model.name} on {where}")
    start = time.perf_counter()
    patterns = compute_patterns(model, batches, args.pattern_type, steps=steps, verbose=1,
                                output_index=args.output_index, checkpoint=args.checkpoint,
                                checkpoint_every=args.checkpoint_every)
    save_patterns(patterns, out)
    print(f"{patterns.n_samples} samples in {time.perf_counter() - start:.1f} s; wrote {out}")
    return 0


def _analyzer(args, model):
    kwargs = parse_params(args.param)
    cls = analyzer_class(args.method)
    if cls.needs_fit_with(**kwargs) and "patterns" not in kwargs:
        if "patterns" not in cls.parameters():
            raise InvalidInputError(
                f"'{args.method}' learns from data (fit), which `explain` does not do; explain "
                "with it from Python: analyzer.fit(data), then analyzer.analyze(x).")
        path = args.patterns or patterns_path(args.model)
        if not os.path.isfile(path):
            raise PatternFileError(
                f"'{args.method}' needs patterns: no '{path}'. Fit them first: keras-patterns "
                f"fit {args.model} DATA (or pass --patterns FILE).")
        kwargs["patterns"] = path
    mode = "index" if args.neuron is not None else "max_activation"
    return cls(model, neuron_selection_mode=mode, output_index=args.output_index,
               batch_size=args.batch_size, **kwargs)


def explain(args):
    model = load_model(args.model)
    if args.vocab is not None or args.tokenizer is not None:
        tokenizer = load_tokenizer(args.vocab, args.tokenizer)
        TokenInputs(model)  # a model without token ids is refused before the method is built
        written = explain_texts(args, model, _analyzer(args, model), tokenizer)
        print(f"wrote {written} token heat map(s) (PNG and HTML) to {args.out}/")
        return 0
    first = model.inputs[0]
    if len(first.shape) == 2 and np.dtype(str(first.dtype)).kind in "iu":
        raise InvalidInputError(
            f"model '{model.name}' takes token ids (input '{first.name}', {first.dtype}): "
            "give text files with --vocab FILE or --tokenizer PATH.")
    analyzer = _analyzer(args, model)
    shape = tuple(model.inputs[0].shape[1:])
    files = image_files(args.images)
    source = ImageSource(shape, args.scale, args.offset, args.resize)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    style = "project" if analyzer.returns == "signal" else "heatmap"
    bar = keras.utils.Progbar(len(files), unit_name="image")
    written = 0
    for chunk, x in source.batches(files, args.batch_size):
        selection = None if args.neuron is None else args.neuron
        e = analyzer.analyze(x, neuron_selection=selection)
        pictures = (visualize.project(e) if style == "project"
                    else visualize.heatmap(e, cmap="seismic"))
        from PIL import Image

        for path, picture, raw in zip(chunk, pictures, e):
            stem = out / f"{Path(path).stem}.{args.method}"
            image = picture if picture.shape[-1] == 3 else picture[..., 0]
            Image.fromarray(np.ascontiguousarray(image)).save(f"{stem}.png")
            if args.npy:
                np.save(f"{stem}.npy", raw)
            written += 1
        bar.add(len(chunk))
    print(f"wrote {written} {style} picture(s) to {out}/")
    return 0


def _parameters(cls):
    """The method's own parameters (those of its class chain, not the shared ones)."""
    shared = set(Analyzer.parameters()) | {"composite"}
    return [name if default is inspect.Parameter.empty else f"{name}={default!r}"
            for name, default in cls.parameters().items() if name not in shared]


def list_methods(args):
    names = list_analyzers()
    width = max(map(len, names)) + 2
    for name, description in names.items():
        params = _parameters(analyzer_class(name))
        print(f"{name:<{width}}{description}")
        if params:
            print(f"{'':<{width}}  parameters: {', '.join(params)}")
    return 0


def check(args):
    """Every method on a small CNN with random weights, one line each, with its `example`
    arguments and fitted on random images where it `needs_fit`; exit status 1 if one fails
    (a quick check of an installation)."""
    from ..version import __version__

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)], name="check_cnn")
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    fit_data = rng.uniform(size=(64, 16, 16, 3)).astype("float32")
    names = list_analyzers()
    width = max(len(n) for n in names) + 1
    print(f"keras-patterns {__version__}: explaining {model.name} on {len(images)} images")
    print(f"{'method':<{width}} {'shape':<18} {'seconds':>8}  {'mean |e|':>10}  description")
    failed = 0
    for name, description in names.items():
        try:
            start = time.perf_counter()
            analyzer = create_analyzer(name, model, **analyzer_class(name).example)
            if analyzer.needs_fit:
                with warnings.catch_warnings():  # random weights and images: dead units
                    warnings.simplefilter("ignore")
                    analyzer.fit(fit_data)
            explanation = analyzer.analyze(images)
            took = time.perf_counter() - start
        except (InvalidInputError, NotAnalyzableModelError, ValueError) as e:
            failed += 1
            print(f"{name:<{width}} failed: {type(e).__name__}: {e}".splitlines()[0])
            continue
        print(f"{name:<{width}} {str(explanation.shape):<18} {took:>8.2f}  "
              f"{float(np.abs(explanation).mean()):>10.4g}  {description}")
    return 1 if failed else 0


def _load_all(args, model):
    """All of DATA as one array (the evaluation measures on it)."""
    batches, _, where = _data_source(args, model, 256)
    arrays = list(batches)
    if not arrays:
        raise InvalidInputError(f"No data in {where}.")
    return np.concatenate(arrays), where


def _explanations(args, model, x, sample):
    """name -> the attribution of `sample` by each method of --methods (fitted on `x`)."""
    out = {}
    for name in args.methods:
        analyzer = create_analyzer(name, model, output_index=args.output_index)
        if analyzer.needs_fit:
            analyzer.fit(x)
        out[name] = analyzer.analyze(sample)
    return out


def _metric_settings(args):
    """The keyword arguments of each metric of `keras_patterns.evaluate.compare`."""
    batch = {"batch_size": args.batch_size, "score": args.score}
    features = dict(batch, granularity=args.granularity,
                    patch_size=args.patch_size if args.granularity == "patch" else None)
    return {"degradation": dict(batch, patch_size=args.patch_size, steps=args.steps),
            "deletion": dict(features, steps=args.steps),
            "insertion": dict(features, steps=args.steps),
            "mu_fidelity": features, "road": batch}


def _plot_curves(table, out):
    """OUT/curve_<name>.png for each curve of `table`, where matplotlib is installed."""
    try:
        from ..reproduce.figures import plot_degradation
        for name, per_method in table.curves.items():
            path = out / f"curve_{name.lower().replace(' ', '_')}.png"
            plot_degradation(per_method, path, f"{name} curves", xlabel=(
                "patches replaced (most relevant first)" if name == "degradation" else
                "fraction of the features removed" if name != "insertion" else
                "fraction of the features inserted"))
            print(f"wrote {path}")
    except MissingExtraError as e:
        print(f"no plots: {e}")


def evaluate(args):
    """rho(S) per layer on DATA, the degradation AOPC of each method (and of a random
    order), and with --metric a table of perturbation metrics, written to OUT/."""
    from .. import evaluate as ev
    from ..evaluate.compare import compare

    if (args.metric or args.report) and not args.methods:
        raise InvalidInputError(f"{'--metric' if args.metric else '--report'} needs the methods "
                                "to compare: --methods NAME ...")
    model = load_model(args.model)
    x, where = _load_all(args, model)
    if args.granularity == "token":  # token ids, read as float32 (exact below 2**24)
        x = x.astype(np.int32)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Evaluation of {model.name} on {where}", ""]
    if not args.skip_quality:
        print(f"signal quality rho(S) on {len(x)} samples (thirds: fit, regression, measure)")
        quality = ev.signal_quality(model, x, args.estimators, output_index=args.output_index,
                                    verbose=1)
        print(quality.table())
        lines += ["## Signal quality rho(S) (Eq. 1; higher is better)", "", "```",
                  quality.table(), "```", ""]
    if args.methods:
        n = min(len(x), args.images)
        sample = x[:n]
        explanations = _explanations(args, model, x, sample)
    if args.report:
        lines += _report(args, model, sample, explanations, out)
    elif args.methods and not args.metric:
        rows = [("random order", ev.degradation(model, sample, None, args.patch_size,
                                                args.steps, order="random",
                                                score=args.score).aopc)]
        for name, e in explanations.items():
            rows.append((name, ev.degradation(model, sample, e, args.patch_size,
                                              args.steps, score=args.score).aopc))
            print(f"degradation {name}: AOPC {rows[-1][1]:.4f}")
        lines += [f"## Image degradation ({n} images, {args.patch_size}x{args.patch_size} "
                  f"patches, {args.steps} steps; AOPC, larger is better)", "",
                  "| attribution | AOPC |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in rows]
    if args.metric and not args.report:
        table = compare(model, sample, explanations, args.metric,
                        settings=_metric_settings(args))
        print(table.markdown())
        (out / "metrics.md").write_text(table.markdown())
        (out / "metrics.csv").write_text(table.csv())
        lines += [f"## Perturbation metrics ({n} samples, {args.steps} steps, "
                  f"{args.granularity}s; 'random' is a Gaussian-noise attribution)", "",
                  table.markdown()]
        print(f"wrote {out / 'metrics.md'} and {out / 'metrics.csv'}")
        _plot_curves(table, out)
    path = out / "evaluation.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


def _report(args, model, sample, explanations, out):
    """OUT/report.md, .csv and .png: the methods ranked on every metric; the lines of the
    evaluation page."""
    from ..evaluate.compare import METRICS
    from ..evaluate.report import report
    from ..evaluate.robustness import max_sensitivity

    radius = 0.02 * float(np.ptp(sample)) if sample.dtype.kind == "f" else None
    extra = {}
    if radius:
        extra["max-sensitivity"] = {
            name: (float(np.mean(max_sensitivity(name, model, sample, radius=radius,
                                                 n_samples=4, batch_size=args.batch_size))),
                   False) for name in explanations}
    result = report(model, sample, explanations, args.metric or METRICS,
                    settings=_metric_settings(args), extra=extra)
    (out / "report.md").write_text(
        f"# Which method for {model.name}?\n\n{len(sample)} samples; each cell: the value "
        "and its rank among the methods (1: best in the direction of the arrow); rows by "
        "mean rank. 'random' is a Gaussian-noise attribution (chance).\n\n"
        + result.markdown() + "\n![ranks](report.png)\n")
    (out / "report.csv").write_text(result.csv())
    print(result.markdown())
    try:
        result.plot(out / "report.png")
    except MissingExtraError as e:
        print(f"no plot: {e}")
    print(f"wrote {out / 'report.md'}")
    return ["## Methods ranked on every metric", "", result.markdown()]


def reproduce(args):
    from ..reproduce import reproduce as run

    run(args.out, quick=args.quick, seed=args.seed)
    return 0


def __getattr__(name):
    if name == "CHECK_ARGUMENTS":  # the former table: now each class's `example`
        return {method: dict(analyzer_class(method).example) for method in list_analyzers()
                if analyzer_class(method).example}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
