"""The report's sections: each runs one experiment and returns its markdown."""

import time

import numpy as np

from .. import evaluate, visualize, zoo
from ..analyzers import create_analyzer
from ..version import __version__
from . import figures, toy

# the attributions of the paper's Fig. 4: the estimators' PatternAttribution and S_x (the
# z-rule), beside other attribution methods
DEGRADATION_METHODS = {
    "S_x (lrp.z)": ("lrp.z", {}),
    "S_w (pattern.attribution, filter)": ("pattern.attribution", {"pattern_type": "filter"}),
    "S_a (pattern.attribution, linear)": ("pattern.attribution", {"pattern_type": "linear"}),
    "S_a+- (pattern.attribution)": ("pattern.attribution", {}),
    "gradient": ("gradient", {}),
    "integrated_gradients": ("integrated_gradients", {"steps": 16}),
    "lrp.epsilon": ("lrp.epsilon", {"epsilon": 0.1}),
    "lrp.alpha_1_beta_0": ("lrp.alpha_1_beta_0", {}),
    "deep_taylor": ("deep_taylor", {}),
}
GRID_METHODS = ("gradient", "smoothgrad", "guided_backprop", "pattern.net", "lrp.epsilon",
                "lrp.alpha_1_beta_0", "deep_taylor", "pattern.attribution")
SANITY_METHODS = ("gradient", "smoothgrad", "guided_backprop", "deconvnet", "pattern.net",
                  "input_t_gradient", "integrated_gradients", "lrp.epsilon",
                  "lrp.alpha_1_beta_0", "deep_taylor", "pattern.attribution")
METHOD_PARAMETERS = {"smoothgrad": {"augment_by_n": 16, "noise_scale": 0.1, "seed": 0},
                     "integrated_gradients": {"steps": 16}, "lrp.epsilon": {"epsilon": 0.1}}


class Setting:
    """What the sections share: the networks, their data, and the findings for the
    account at the end."""

    def __init__(self, quick=False, seed=0):
        self.quick, self.seed = quick, seed
        self.findings = []
        start = time.perf_counter()
        data = zoo.digits.load_digits_data(seed=seed)
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.digits, self.accuracy = zoo.digits.train_cnn(seed=seed, data=data,
                                                          epochs=4 if quick else 10)
        self.train_seconds = time.perf_counter() - start
        self.onet = zoo.faces.build_onet()
        self.faces, self.face_labels = zoo.faces.face_data()
        self.n_test = min(40 if quick else 450, len(self.x_test))

    def note(self, agrees, text):
        """A finding for the account: agrees (True), differs (False), or not in the paper
        (None)."""
        verdict = {True: "agrees with the paper", False: "differs from the paper",
                   None: "not in the paper"}[agrees]
        self.findings.append((verdict, text))


def _fmt(value):
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def header(setting, seconds):
    return "\n".join([
        "# keras-patterns: the paper's experiments, reproduced offline",
        "",
        f"keras-patterns {__version__}, {'quick setting' if setting.quick else 'full run'}, "
        f"seed {setting.seed}, {seconds / 60:.1f} minutes. Paper: Kindermans et al., "
        "*Learning how to explain neural networks: PatternNet and PatternAttribution*, ICLR "
        "2018. The paper used VGG16 on ImageNet; here the networks are a CNN trained on "
        f"scikit-learn's 8x8 digits (test accuracy {setting.accuracy:.3f}, trained in "
        f"{setting.train_seconds:.0f} s) and MTCNN's pretrained face detector ONet on "
        "scikit-image's 200 LFW crops (100 faces, 100 other patches), so the numbers are "
        "not the paper's; the orderings are what can be compared.",
    ])


def toy_section(setting, out):
    result = toy.toy_experiment(n=2000 if setting.quick else 20000, seed=setting.seed)
    toy.plot_toy(result, out / "toy.png")
    pattern = result["pattern"]
    cos_a = float(pattern @ toy.SIGNAL / np.linalg.norm(pattern))
    rows = [(m, "signal", _fmt(v)) for m, v in result["cosine"].items()]
    rows += [(m, "attribution", _fmt(v)) for m, v in result["signal_share"].items()]
    setting.note(result["cosine"]["pattern.net"] > 0.99 > result["cosine"]["gradient"],
                 f"Toy (Fig. 2): PatternNet returns the signal (|cos| "
                 f"{result['cosine']['pattern.net']:.4f}), the gradient, DeConvNet and Guided "
                 f"Backprop return the filter w (|cos| {result['cosine']['gradient']:.3f} = "
                 "1/sqrt 2).")
    return "\n".join([
        "## Fig. 2: the linear toy",
        "",
        "x = a_s y + a_d eps with a_s = (1, 0), a_d = (1, 1), y ~ U[-1, 1], eps ~ N(0, 1); the "
        "model y = w^T x, w = (1, -1), cancels the distractor. The learned linear pattern is "
        f"({pattern[0]:.4f}, {pattern[1]:.4f}), cosine {cos_a:.5f} to a_s.",
        "",
        "![toy](toy.png)",
        "",
        _table(("method", "returns", "|cos(e, a_s y)| or share of |e| on the signal"), rows),
    ])


def quality_section(setting, out):
    estimators = ("random", "filter", "linear", "relu")
    x = np.concatenate([setting.x_train, setting.x_test])
    order = np.random.default_rng(setting.seed).permutation(len(x))
    digits_q = evaluate.signal_quality(setting.digits, x[order], estimators, seed=setting.seed)
    faces = setting.faces[np.random.default_rng(setting.seed).permutation(len(setting.faces))]
    faces_q = evaluate.signal_quality(setting.onet, faces, estimators, output_index=0,
                                      seed=setting.seed)
    parts = ["## Fig. 3: signal quality rho(S) per layer", "",
             "rho(S) = 1 - max_v corr(w^T x, v^T (x - S(x))) (Eq. 1): the estimators are "
             "fitted on the first third of the data, v on the second, rho is measured on the "
             "third. Higher is better."]
    unreliable = {}
    for name, q in (("digits CNN (1797 digits)", digits_q), ("ONet (200 LFW crops)", faces_q)):
        layers = list(next(iter(q.mean.values())))
        rows = []
        for layer in layers:
            # the regression of split 2 needs more observations than the residual has
            # dimensions, else it fits noise and rho means nothing
            few = min(q.observations[layer][:2]) <= _input_dim(q, layer, setting, name)
            if few:
                unreliable.setdefault(name, []).append(layer)
            cells = ("(too few observations)" if few else _fmt(q.mean[e].get(layer))
                     for e in estimators)
            rows.append((layer, *cells, q.observations[layer][1]))
        parts += ["", f"### {name}", "",
                  _table(("layer", *estimators, "observations (split 2)"), rows)]
    if unreliable:
        parts += ["", "Layers marked *too few observations* have at most as many "
                      "observations per split as inputs per neuron: the regression of split "
                      "2 then fits noise and rho is meaningless (the paper had 25,000 "
                      "ImageNet images per split)."]
    for q, name in ((digits_q, "digits CNN (1797 digits)"), (faces_q, "ONet (200 LFW crops)")):
        for layer in unreliable.get(name, ()):
            for e in estimators:
                q.mean[e].pop(layer, None)
    figures.plot_quality(dict(digits_q.mean), out / "quality_digits.png",
                         "rho(S) per layer: digits CNN")
    figures.plot_quality(dict(faces_q.mean), out / "quality_onet.png",
                         "rho(S) per layer: ONet on LFW")
    parts += ["", "![digits](quality_digits.png) ![onet](quality_onet.png)"]
    for net, q in (("digits", digits_q), ("ONet", faces_q)):
        means = {e: float(np.nanmean(list(q.mean[e].values()))) for e in estimators}
        setting.note(means["random"] < means["linear"] and means["filter"] < means["linear"],
                     f"rho on {net}: the learned estimators beat the weights and random "
                     f"directions (layer means: random {means['random']:.3f}, S_w "
                     f"{means['filter']:.3f}, S_a {means['linear']:.3f}, S_a+- "
                     f"{means['relu']:.3f}).")
        setting.note(means["relu"] >= means["linear"],
                     f"rho on {net}: the paper finds S_a+- best in the dense layers; here S_a "
                     f"{'is below' if means['relu'] >= means['linear'] else 'is above'} "
                     f"S_a+- on average ({means['linear']:.3f} vs {means['relu']:.3f}). With "
                     "y = w^T x over all observations as Eq. (1) is printed, S_a makes "
                     "cov[x - S_a(x), y] = 0 by construction (Eq. 2), so it is optimal for "
                     "this measure up to estimation error; the two-component estimator is "
                     "not.")
    return "\n".join(parts)


def _input_dim(quality, layer, setting, name):
    """The inputs per neuron of a layer of the digits CNN or ONet."""
    model = setting.digits if name.startswith("digits") else setting.onet
    kernel = model.get_layer(layer).kernel
    return int(np.prod(kernel.shape[:-1]))


def _explain(model, name, kwargs, x, fit, output_index=None, selection=None):
    """The explanation of `x` by method `name` (its patterns fitted on `fit`), of the
    output unit `selection` (default: the largest)."""
    mode = "max_activation" if selection is None else "index"
    analyzer = create_analyzer(name, model, neuron_selection_mode=mode,
                               output_index=output_index, **kwargs)
    if analyzer.needs_fit:
        analyzer.fit(fit, batch_size=128)
    return analyzer.analyze(x, neuron_selection=selection)


def degradation_section(setting, out):
    import keras

    q = setting.quick
    methods = dict(list(DEGRADATION_METHODS.items())[:5]) if q else DEGRADATION_METHODS
    x = setting.x_test[:setting.n_test]
    curves, rows = {}, []
    random_d = evaluate.degradation(setting.digits, x, None, patch_size=2, steps=16,
                                    order="random", seed=setting.seed)
    curves["random order"] = random_d.curve
    aopc = {"random order": random_d.aopc}
    for label, (name, kwargs) in methods.items():
        e = _explain(setting.digits, name, kwargs, x, setting.x_train)
        d = evaluate.degradation(setting.digits, x, e, patch_size=2, steps=16)
        curves[label], aopc[label] = d.curve, d.aopc
    figures.plot_degradation(curves, out / "degradation_digits.png",
                             "digits CNN: 2x2 patches replaced by their mean")
    face_model = keras.Model(setting.onet.inputs, setting.onet.outputs[0], name="onet_face")
    faces = setting.faces[setting.face_labels == 1][: 20 if q else 100]
    steps = 20 if q else 60
    curves_f = {"random order": evaluate.degradation(face_model, faces, None, patch_size=4,
                                                     steps=steps, order="random",
                                                     seed=setting.seed).curve}
    aopc_f = {"random order": float(evaluate.aopc(curves_f["random order"]))}
    logit_f = {"random order": evaluate.degradation(face_model, faces, None, patch_size=4,
                                                    steps=steps, order="random",
                                                    score="logit", seed=setting.seed).aopc}
    for label, (name, kwargs) in methods.items():
        if name == "deep_taylor":
            continue  # refuses ONet (PReLU)
        e = _explain(setting.onet, name, kwargs, faces, setting.faces,
                     output_index=0, selection=np.ones(len(faces), int))
        d = evaluate.degradation(face_model, faces, e, patch_size=4, steps=steps)
        curves_f[label], aopc_f[label] = d.curve, d.aopc
        logit_f[label] = evaluate.degradation(face_model, faces, e, patch_size=4, steps=steps,
                                              score="logit").aopc
    figures.plot_degradation(curves_f, out / "degradation_onet.png",
                             "ONet on LFW faces: 4x4 patches replaced by their mean")
    for label in aopc:
        rows.append((label, _fmt(aopc[label]), _fmt(aopc_f.get(label)),
                     _fmt(logit_f.get(label))))
    best = max((k for k in aopc if k != "random order"), key=aopc.get)
    best_f = max((k for k in aopc_f if k != "random order"), key=aopc_f.get)
    best_logit = max((k for k in logit_f if k != "random order"), key=logit_f.get)
    for net, table, top in (("digits", aopc, best), ("ONet", aopc_f, best_f),
                            ("ONet (logit)", logit_f, best_logit)):
        ours = table.get("S_a+- (pattern.attribution)", float("nan"))
        setting.note(top.startswith("S_a+-"),
                     f"Degradation (Fig. 4) on {net}: the steepest curve (largest AOPC) is "
                     f"{top} ({table[top]:.3f}); S_a+- gives {ours:.3f}, the random order "
                     f"{table['random order']:.3f}.")
        flattest = table["random order"] <= min(table.values()) + 1e-9
        setting.note(flattest, f"Degradation on {net}: the random order is "
                               f"{'the flattest' if flattest else 'not the flattest'} curve "
                               f"(AOPC {table['random order']:.3f}).")
    return "\n".join([
        "## Fig. 4: image degradation", "",
        "Patches are ranked by the summed attribution of the selected class and replaced by "
        "their mean per channel, most relevant first; the curve is the softmax probability "
        "of the initial class (digits: 2x2 patches, 16 steps, "
        f"{len(x)} test digits; ONet: 4x4 patches, {steps} steps, {len(faces)} faces, the "
        "face class). AOPC: the area over the curve (larger: the ranking finds what "
        "matters sooner). ONet keeps p(face) near 1 while much of a face is destroyed, so "
        "its probability curves are flat; the face logit (last column) still ranks the "
        "methods.", "",
        _table(("attribution", "AOPC digits", "AOPC ONet", "AOPC ONet (logit)"), rows), "",
        "![digits](degradation_digits.png) ![onet](degradation_onet.png)",
    ])


def grid_section(setting, out):
    x, y = setting.x_test[:6], setting.y_test[:6]
    maps = {name: _explain(setting.digits, name, METHOD_PARAMETERS.get(name, {}), x,
                           setting.x_train) for name in GRID_METHODS}
    visualize.grid(x, maps, row_labels=[str(v) for v in y], path=out / "grid_digits.png",
                   cell=56)
    chosen = zoo.faces.pick(setting.face_labels, 4)
    faces = setting.faces[chosen]
    face_maps = {}
    for name in GRID_METHODS:
        if name in ("guided_backprop", "deep_taylor"):
            continue  # they refuse PReLU networks
        face_maps[name] = _explain(setting.onet, name,
                                   METHOD_PARAMETERS.get(name, {}), faces, setting.faces,
                                   output_index=0, selection=np.ones(len(faces), int))
    visualize.grid((faces + 1) / 2, face_maps, path=out / "grid_onet.png", cell=64,
                   row_labels=["face" if v else "other" for v in setting.face_labels[chosen]])
    return "\n".join([
        "## Fig. 6: images x methods", "",
        "Signals (gradient, SmoothGrad, Guided Backprop, PatternNet) projected as "
        "x / (2 max|x|) + 1/2, attributions as heat maps (red positive). ONet's PReLU "
        "activations rule out Guided Backprop and Deep Taylor.", "",
        "![digits](grid_digits.png)", "", "![onet](grid_onet.png)",
    ])


def ground_truth_section(setting, out):
    q = setting.quick
    table = evaluate.ground_truth(n_train=600 if q else 3000, n_test=60 if q else 300,
                                  epochs=4 if q else 10, seed=setting.seed)
    signal = [r for r in table.rows if r["returns"] == "signal" and r["method"] != "input"]
    best = max(signal, key=lambda r: r["score"])
    pattern_net = next(r for r in signal if r["method"] == "pattern.net")
    setting.note(None,
                 f"Known signal: the signal method closest to the true signal is "
                 f"{best['method']} (cosine {best['score']:.3f}); PatternNet "
                 f"{pattern_net['score']:.3f}. The paper has no such benchmark.")
    return "\n".join([
        "## A benchmark with a known signal", "",
        "Images = a class shape (the signal) + a stronger grating shared by all classes + "
        f"noise; a CNN trained on them (accuracy {table.accuracy:.3f}). Signal methods are "
        "scored by the cosine to the true signal, attribution methods by the share of "
        "positive relevance inside the signal's support.", "",
        table.to_markdown(),
    ])


def sanity_section(setting, out):
    x = setting.x_test[: 20 if setting.quick else 50]
    methods = SANITY_METHODS[:4] if setting.quick else SANITY_METHODS
    rows, failing = [], []
    for name in methods:
        kwargs = METHOD_PARAMETERS.get(name, {})
        cs = evaluate.class_sensitivity(name, setting.digits, x, classes=range(10),
                                        fit_data=setting.x_train, **kwargs)
        mr = evaluate.model_randomization(name, setting.digits, x, fit_data=setting.x_train,
                                          **kwargs)
        after_top = mr.correlations["pearson"][1]
        rows.append((name, _fmt(cs.mean), _fmt(after_top),
                     _fmt(mr.correlations["pearson"][-1])))
        if cs.mean > 0.5 or after_top > 0.5:
            failing.append(name)
    setting.note(None, "Sanity checks: explanations that correlate above 0.5 across classes "
                       "or after the top layer is randomised fail them here: "
                       f"{', '.join(failing) if failing else 'none'}.")
    return "\n".join([
        "## Sanity checks (Adebayo et al. 2018; Sixt et al. 2020)", "",
        "Class sensitivity: the mean Pearson correlation of the explanations of the ten "
        "classes "
        "of the same digit (1: the explanation ignores the class). Model randomisation: the "
        "correlation with the trained model's explanation after the top kernel layer, and "
        "after all of them, are re-initialised (cascading from the output). High values "
        "fail the check.", "",
        _table(("method", "class correlation", "after top layer", "after all layers"), rows),
        "", f"Fail (a value above 0.5): {', '.join(failing) if failing else 'none'}.",
    ])


def account(setting):
    lines = ["## Where this agrees with the paper, and where it does not", ""]
    lines += [f"- **{verdict}**: {text}" for verdict, text in setting.findings]
    return "\n".join(lines)


SECTIONS = [("toy", toy_section), ("signal quality", quality_section),
            ("degradation", degradation_section), ("grids", grid_section),
            ("ground truth", ground_truth_section), ("sanity checks", sanity_section)]
