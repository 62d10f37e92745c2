"""`keras-patterns demo`: real networks explained with every method, offline, in pictures.

1. A small CNN is trained on scikit-learn's bundled 8x8 digits (seconds), its patterns are
   fitted on the training digits, and test digits are explained with every method:
   `digits.png`.
2. MTCNN's ONet, a trained face detector whose weights ship with the `mtcnn` package, is
   explained on real faces and non-faces from scikit-image's LFW subset with every method
   that applies to it (its PReLU activations rule out DeConvNet, Guided Backprop and Deep
   Taylor, which say why): `faces.png`.
3. A small transformer (token embedding, attention, LayerNormalization, GELU MLP) is trained
   on sequences whose class is set by planted evidence tokens among distractors (seconds),
   and its test sequences are explained with the relevance, pattern and gradient methods
   (AttnLRP, CP-LRP, PatternAttribution, Integrated Gradients in embedding space, the
   gradient): `text.png` and `text.html`, and how often each method's most relevant token
   is a planted one.
"""

import time
import warnings
from pathlib import Path

import keras
import numpy as np

from .. import visualize
from ..analyzers import analyzer_class, create_analyzer, list_analyzers
from ..errors import NotAnalyzableModelError
from ..patterns import patterns_path, save_patterns
from ..zoo import check_installed, digits, faces
from ..zoo import transformers as text_zoo

# the optional modules each part of the demo needs (the demo extra)
DIGITS_MODULES = ("sklearn",)
FACES_MODULES = ("skimage", "mtcnn", "joblib", "lz4")
# the text part's methods (every one that applies to token inputs and transformers is
# in `keras-patterns check`; these are the ones made or extended for them)
TEXT_METHODS = ("attnlrp", "cp_lrp", "pattern.attribution", "integrated_gradients",
                "gradient")
# the digits' pixel range, for the methods whose example is bounded
DIGITS_BOUNDS = {"low": 0.0, "high": 1.0}


def _digits_arguments(name):
    """The keyword arguments of method `name` on the digits: its quick example
    (`analyzer_class(name).example`), the bounds of a bounded method set to the digits'
    pixel range."""
    kwargs = dict(analyzer_class(name).example)
    if "low" in kwargs or "high" in kwargs:
        kwargs.update(DIGITS_BOUNDS)
    return kwargs


def _explain_digits(out, n_images):
    start = time.perf_counter()
    data = digits.load_digits_data(seed=0)
    x_train, _, x_test, y_test = data
    model, accuracy = digits.train_cnn(seed=0, data=data)
    print(f"digits: trained a CNN on {len(x_train)} of scikit-learn's 8x8 digits in "
          f"{time.perf_counter() - start:.1f} s: test accuracy {accuracy:.3f} "
          f"({len(x_test)} test digits)")
    model_path = digits.save_model(model, out / "digits_cnn.keras")
    images, labels = x_test[:n_images], y_test[:n_images]
    predicted = np.argmax(model.predict(images, verbose=0), axis=1)
    maps, patterns = {}, None
    methods = [m for m in list_analyzers() if m != "input"]  # the grid's first column
    bar = keras.utils.Progbar(len(methods), unit_name="method")
    for name in methods:
        analyzer = create_analyzer(name, model, **_digits_arguments(name))
        if analyzer.needs_fit:
            analyzer.fit(x_train, batch_size=128)
            patterns = analyzer.patterns
        maps[name] = analyzer.analyze(images)
        bar.add(1)
    save_patterns(patterns, patterns_path(model_path))
    path = out / "digits.png"
    visualize.grid(images, maps, path=path, cell=48,
                   row_labels=[f"{y} (p {p})" for y, p in zip(labels, predicted)])
    print(f"digits: {len(maps)} methods on {len(images)} test digits in "
          f"{time.perf_counter() - start:.1f} s in all -> {path}")
    return path


def _explain_faces(out, n_images):
    start = time.perf_counter()
    model = faces.build_onet()
    images, labels = faces.face_data()
    p_face = faces.face_probability(model, images)
    summary = faces.score_summary(p_face, labels)
    print(f"faces: MTCNN's ONet (weights shipped with mtcnn) on scikit-image's LFW subset: "
          f"mean p(face) {summary['faces_mean']:.3f} on {summary['n_faces']} faces, "
          f"{summary['nonfaces_mean']:.3f} on {summary['n_nonfaces']} non-faces (accuracy "
          f"{summary['accuracy']:.3f})")
    chosen = faces.pick(labels, n_images)
    methods = [m for m in faces.default_methods() if m not in ("input", "random")]
    noisy = {"augment_by_n": 16, "noise_scale": 0.2, "seed": 0}
    kwargs = {"smoothgrad": noisy, "squaregrad": noisy, "vargrad": noisy,
              "integrated_gradients": {"steps": 16}}
    result = faces.explain(methods, images[chosen], model, fit_images=images,
                           method_kwargs=kwargs)
    for name, why in result.refused.items():
        print(f"faces: {name} does not apply: {why.split(': ', 1)[-1]}")
    path = out / "faces.png"
    shown = (images[chosen] + 1.0) / 2.0  # the network's input range back to [0, 1]
    visualize.grid(shown, result.maps, path=path, cell=72,
                   row_labels=[f"{'face' if y else 'other'} p={p:.2f}"
                               for y, p in zip(labels[chosen], p_face[chosen])])
    print(f"faces: {len(result.maps)} methods on {len(chosen)} images in "
          f"{time.perf_counter() - start:.1f} s -> {path}")
    return path


def _explain_text(out, n_sequences, n_scored=200):
    start = time.perf_counter()
    model, accuracy = text_zoo.train_text(seed=0)
    ids, labels, evidence = text_zoo.planted_tokens(n_scored, seed=1)
    fit_ids, _, _ = text_zoo.planted_tokens(300, seed=5)
    print(f"text: trained a one-block transformer on planted-token sequences in "
          f"{time.perf_counter() - start:.1f} s: test accuracy {accuracy:.3f}")
    relevance = {}
    for name in TEXT_METHODS:
        analyzer = create_analyzer(name, model)
        if analyzer.needs_fit:
            analyzer.fit(fit_ids, batch_size=100)
        relevance[name] = np.asarray(analyzer.analyze(ids))
    chance = text_zoo.evidence_recovery(relevance["gradient"], evidence)[1]
    hits = {name: text_zoo.evidence_recovery(r, evidence)[0] for name, r in relevance.items()}
    print(f"text: the most relevant token is a planted one in {n_scored} sequences "
          f"(chance {chance:.2f}): "
          + ", ".join(f"{name} {hit:.2f}" for name, hit in hits.items()))
    shown = min(n_sequences, n_scored)
    words = text_zoo.token_strings(ids[:shown])
    predicted = np.argmax(np.asarray(model(ids[:shown])), axis=1)
    rows = [(name, i) for i in range(shown) for name in TEXT_METHODS]
    titles = [f"{name}, sequence {i} (class {labels[i]}, predicted {predicted[i]})"
              for name, i in rows]
    values = np.stack([relevance[name][i] for name, i in rows])
    png, html = out / "text.png", out / "text.html"
    visualize.token_image([words[i] for _, i in rows], values, titles=titles, width=720,
                          path=png)
    visualize.token_html([words[i] for _, i in rows], values, titles=titles,
                         title="Planted tokens explained", path=html)
    print(f"text: {len(TEXT_METHODS)} methods on {shown} sequences in "
          f"{time.perf_counter() - start:.1f} s in all -> {png}, {html}")
    return png


def demo(args):
    """`keras-patterns demo`: the digits picture, then (unless --skip-faces) the faces one,
    then (unless --skip-text) the text pictures.

    Args:
        args: the parsed command line (out, digits, faces, skip_faces, and optionally
            text, skip_text).

    Returns:
        int exit status (0).

    Raises:
        MissingExtraError: a module of the demo extra is not installed (checked before
            anything runs).
    """
    check_installed(DIGITS_MODULES + (() if args.skip_faces else FACES_MODULES), "the demo")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the softmax ONet ends in is stripped (with a warning); dead units of small nets
        warnings.filterwarnings("ignore", message=".*ends in a softmax.*")
        warnings.filterwarnings("ignore", message=".*zero pattern.*")
        paths = [_explain_digits(out, args.digits)]
        if not args.skip_faces:
            try:
                paths.append(_explain_faces(out, args.faces))
            except NotAnalyzableModelError as e:  # pragma: no cover - a bug, not the user's
                raise RuntimeError(f"ONet could not be explained: {e}") from e
        if not getattr(args, "skip_text", False):
            paths.append(_explain_text(out, getattr(args, "text", 3)))
    print("pictures:", " ".join(str(p) for p in paths))
    return 0
