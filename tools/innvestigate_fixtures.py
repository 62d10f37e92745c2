"""Generate reference fixtures from iNNvestigate 2.1.2.

This script is NOT part of the keras-patterns runtime and does not import it.
It runs only in a separate, legacy environment (Keras 2 / tf.keras)::

    python3.11 -m venv /tmp/innv
    /tmp/innv/bin/pip install tensorflow-cpu==2.14.1 innvestigate==2.1.2
    /tmp/innv/bin/python tools/innvestigate_fixtures.py --out tests/fixtures/innvestigate

For every small model below it

* builds the model with ``tf.keras`` from a JSON-able spec,
* draws all weights (including non-zero biases and non-trivial
  BatchNormalization statistics) and a batch of 4 inputs from a seeded numpy RNG,
* runs every deterministic iNNvestigate analyzer in the neuron selection modes
  ``max_activation``, ``index`` (one fixed int, and one int per sample) and
  ``all``,
* writes one ``<model>.npz`` with the spec, weights, inputs, outputs and all
  analyses.

npz layout (all float arrays are float32):

``spec_json``            the model spec (layer configs as ``tf.keras`` get_config()).
``keras2_model_json``    ``model.to_json()`` of the tf.keras model, for reference.
``w0, w1, ...``          ``model.get_weights()`` in order (``n_weights`` of them).
``inputs``               the input batch, shape (4, ...).
``outputs``              ``model.predict(inputs)`` (softmax probabilities for
                         the softmax model, logits otherwise).
``logits``               pre-softmax output (== ``outputs`` unless the model ends
                         in a softmax; then computed by iNNvestigate's
                         ``model_wo_softmax``).
``index_fixed``          the int used for the ``index_<k>`` mode.
``index_per_sample``     the per-sample ints used for the ``index_per_sample`` mode.
``ig_reference``         the reference input of ``integrated_gradients_steps8_ref``.
``analyzers_json``       {variant: {"name": innvestigate name, "kwargs": {...},
                         "analyzed_model": "model" | "model_wo_softmax"}}.
``skipped_json``         {"<variant>__<mode>": "error message"} for every
                         combination iNNvestigate refused or crashed on.
``sensitivity_json``     {"<variant>__<mode>": max|A(X') - A(X)| / max|A(X)|}
                         where X' is X with a relative 1e-6 perturbation: a
                         conditioning hint for choosing test tolerances.
``<variant>__<mode>``    the analysis, same shape as ``inputs``. ``<mode>`` is one
                         of ``max_activation``, ``index_<k>``,
                         ``index_per_sample``, ``all``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # silence graph-mode chatter
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()  # required by iNNvestigate 2.x

import innvestigate  # noqa: E402

BATCH = 4
INDEX_FIXED = 3
# Input range for deep_taylor.bounded / the bounded input-layer rule. The inputs
# are drawn from N(0, 1) and clipped into [LOW, HIGH]; the asymmetric bounds make
# a swapped low/high visible.
LOW, HIGH = -2.0, 2.5

###############################################################################
# Model specs
#
# A spec is {"kind": "sequential" | "functional", "input_shape": [...],
#            "layers": [{"class": <tf.keras.layers class name>,
#                        "config": {...constructor kwargs...},
#                        "inputs": [names]   # functional only; default: previous
#                       }, ...]}
# Every layer config has a "name". In functional specs the model input is called
# "input" and the model output is the last layer. Names must not look like Keras
# auto-generated names ("add", "flatten", ...): iNNvestigate creates such layers
# in a fresh session and Keras then rejects the duplicate name.
###############################################################################


def _conv(name, filters, kernel, activation="relu", padding="same", strides=1):
    return {
        "class": "Conv2D",
        "config": {
            "name": name,
            "filters": filters,
            "kernel_size": [kernel, kernel],
            "strides": [strides, strides],
            "padding": padding,
            "activation": activation,
        },
    }


def _dense(name, units, activation="relu"):
    return {"class": "Dense", "config": {"name": name, "units": units, "activation": activation}}


def _layer(cls, name, inputs=None, **config):
    ret = {"class": cls, "config": {"name": name, **config}}
    if inputs is not None:
        ret["inputs"] = inputs
    return ret


MODEL_SPECS = {
    # a) Dense MLP: Dense(relu) x2 -> Dense(linear) logits.
    "mlp": {
        "kind": "sequential",
        "input_shape": [16],
        "layers": [
            _dense("dense1", 24),
            _dense("dense2", 16),
            _dense("logits", 6, activation="linear"),
        ],
    },
    # b) CNN with max pooling and a strided valid convolution.
    "cnn_maxpool": {
        "kind": "sequential",
        "input_shape": [8, 8, 3],
        "layers": [
            _conv("conv1", 6, 3, padding="same"),
            _layer("MaxPooling2D", "pool1", pool_size=[2, 2]),
            _conv("conv2", 8, 2, padding="valid", strides=2),
            _layer("Flatten", "flat"),
            _dense("dense1", 16),
            _dense("logits", 5, activation="linear"),
        ],
    },
    # c) CNN with average pooling, a strided "same" convolution (asymmetric
    #    padding) and global average pooling.
    "cnn_avgpool": {
        "kind": "sequential",
        "input_shape": [8, 8, 3],
        "layers": [
            _conv("conv1", 6, 3, padding="same"),
            _layer("AveragePooling2D", "pool1", pool_size=[2, 2]),
            _conv("conv2", 8, 3, padding="same", strides=2),
            _layer("GlobalAveragePooling2D", "gap"),
            _dense("logits", 5, activation="linear"),
        ],
    },
    # d) Conv2D(linear) -> BatchNormalization -> Activation(relu).
    "cnn_batchnorm": {
        "kind": "sequential",
        "input_shape": [8, 8, 3],
        "layers": [
            _conv("conv1", 6, 3, activation="linear", padding="same"),
            _layer("BatchNormalization", "bn1"),
            _layer("Activation", "relu1", activation="relu"),
            _layer("MaxPooling2D", "pool1", pool_size=[2, 2]),
            _layer("Flatten", "flat"),
            _dense("logits", 5, activation="linear"),
        ],
    },
    # e) Functional model with a residual Add and a Concatenate.
    "residual_concat": {
        "kind": "functional",
        "input_shape": [8, 8, 3],
        "layers": [
            {**_conv("conv1", 6, 3), "inputs": ["input"]},
            {**_conv("conv2", 6, 3), "inputs": ["conv1"]},
            _layer("Add", "residual", inputs=["conv1", "conv2"]),
            _layer("MaxPooling2D", "pool", inputs=["residual"], pool_size=[2, 2]),
            {**_conv("side", 4, 1), "inputs": ["pool"]},
            _layer("Concatenate", "merge", inputs=["pool", "side"], axis=-1),
            _layer("Flatten", "flat", inputs=["merge"]),
            {**_dense("logits", 5, activation="linear"), "inputs": ["flat"]},
        ],
    },
    # f) MLP whose last Dense has a softmax (analyzed via model_wo_softmax).
    "mlp_softmax": {
        "kind": "sequential",
        "input_shape": [16],
        "layers": [
            _dense("dense1", 12),
            _dense("probs", 5, activation="softmax"),
        ],
    },
}


def build_model(spec: dict) -> tf.keras.Model:
    """Build a tf.keras model from a spec (see above)."""
    klayers = tf.keras.layers
    inp = tf.keras.Input(shape=tuple(spec["input_shape"]), name="input")
    if spec["kind"] == "sequential":
        layers = [getattr(klayers, e["class"])(**e["config"]) for e in spec["layers"]]
        return tf.keras.Sequential([inp] + layers, name="model")

    tensors = {"input": inp}
    for e in spec["layers"]:
        layer = getattr(klayers, e["class"])(**e["config"])
        args = [tensors[n] for n in e.get("inputs", [])]
        tensors[e["config"]["name"]] = layer(args if len(args) > 1 else args[0])
    out = tensors[spec["layers"][-1]["config"]["name"]]
    return tf.keras.Model(inp, out, name="model")


def draw_weights(model: tf.keras.Model, rng: np.random.Generator) -> list[np.ndarray]:
    """Weights for `model`, in `model.get_weights()` order.

    Kernels: He-normal (so ReLU activations stay O(1)); biases N(0, 0.1^2);
    BatchNormalization: gamma U(0.6, 1.4), beta N(0, 0.2^2),
    moving_mean N(0, 0.3^2), moving_variance U(0.4, 2.0) (deliberately not 1).
    """
    ret = []
    for var in model.weights:
        shape = tuple(var.shape)
        kind = var.name.split("/")[-1].split(":")[0]
        if kind == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
        elif kind == "bias":
            w = rng.normal(0.0, 0.1, size=shape)
        elif kind == "gamma":
            w = rng.uniform(0.6, 1.4, size=shape)
        elif kind == "beta":
            w = rng.normal(0.0, 0.2, size=shape)
        elif kind == "moving_mean":
            w = rng.normal(0.0, 0.3, size=shape)
        elif kind == "moving_variance":
            w = rng.uniform(0.4, 2.0, size=shape)
        else:
            raise ValueError(f"Unexpected weight {var.name}")
        ret.append(w.astype(np.float32))
    return ret


def saved_spec(spec: dict, model: tf.keras.Model) -> dict:
    """The spec with each layer config replaced by tf.keras' full get_config()."""
    layers = []
    for e in spec["layers"]:
        entry = dict(e)
        entry["config"] = model.get_layer(e["config"]["name"]).get_config()
        layers.append(entry)
    return {**spec, "layers": layers}


###############################################################################
# Analyzer variants: variant key -> (innvestigate name, kwargs, modes)
###############################################################################

ALL_MODES = ("max_activation", "index_fixed", "index_per_sample", "all")
MAX_ONLY = ("max_activation",)


def analyzer_variants(ig_reference: np.ndarray) -> dict:
    from innvestigate.analyzer.relevance_based import relevance_rule as rrule

    # iNNvestigate 2.1.2 has no "lrp.z_IB" / "lrp.epsilon_IB" names. The bias-free
    # variants are built from the public rule classes / LRPEpsilon(bias=False).
    class ZIgnoreBiasRule(rrule.ZRule):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, bias=False, **kwargs)

    return {
        "gradient": ("gradient", {}, ALL_MODES),
        "gradient_abs": ("gradient", {"postprocess": "abs"}, MAX_ONLY),
        "gradient_square": ("gradient", {"postprocess": "square"}, MAX_ONLY),
        "input_t_gradient": ("input_t_gradient", {}, ALL_MODES),
        "integrated_gradients": ("integrated_gradients", {}, ALL_MODES),
        "integrated_gradients_steps8_ref": (
            "integrated_gradients",
            {"steps": 8, "reference_inputs": ig_reference},
            ALL_MODES,
        ),
        "deconvnet": ("deconvnet", {}, ALL_MODES),
        "guided_backprop": ("guided_backprop", {}, ALL_MODES),
        "lrp.z": ("lrp.z", {}, ALL_MODES),
        "lrp.z_IB": ("lrp", {"rule": ZIgnoreBiasRule, "bn_layer_rule": ZIgnoreBiasRule}, ALL_MODES),
        "lrp.epsilon": ("lrp.epsilon", {}, ALL_MODES),
        "lrp.epsilon_0.1": ("lrp.epsilon", {"epsilon": 0.1}, ALL_MODES),
        "lrp.epsilon_IB": ("lrp.epsilon", {"epsilon": 0.1, "bias": False}, ALL_MODES),
        "lrp.w_square": ("lrp.w_square", {}, ALL_MODES),
        "lrp.flat": ("lrp.flat", {}, ALL_MODES),
        "lrp.alpha_2_beta_1": ("lrp.alpha_2_beta_1", {}, ALL_MODES),
        "lrp.alpha_2_beta_1_IB": ("lrp.alpha_2_beta_1_IB", {}, ALL_MODES),
        "lrp.alpha_1_beta_0": ("lrp.alpha_1_beta_0", {}, ALL_MODES),
        "lrp.alpha_1_beta_0_IB": ("lrp.alpha_1_beta_0_IB", {}, ALL_MODES),
        "lrp.alpha_beta_3_2": ("lrp.alpha_beta", {"alpha": 3, "beta": 2}, MAX_ONLY),
        "lrp.z_plus": ("lrp.z_plus", {}, ALL_MODES),
        "lrp.z_plus_fast": ("lrp.z_plus_fast", {}, ALL_MODES),
        "lrp.sequential_preset_a": ("lrp.sequential_preset_a", {}, ALL_MODES),
        "lrp.sequential_preset_b": ("lrp.sequential_preset_b", {}, ALL_MODES),
        "lrp.sequential_preset_a_flat": ("lrp.sequential_preset_a_flat", {}, ALL_MODES),
        "lrp.sequential_preset_b_flat": ("lrp.sequential_preset_b_flat", {}, ALL_MODES),
        "lrp.sequential_preset_b_flat_until_idx_2": (
            "lrp.sequential_preset_b_flat_until_idx",
            {"until_layer_idx": 2},
            MAX_ONLY,
        ),
        "lrp.z_input_bounded": ("lrp.z", {"input_layer_rule": (LOW, HIGH)}, MAX_ONLY),
        "lrp.epsilon_input_bounded": (
            "lrp.epsilon",
            {"epsilon": 0.1, "input_layer_rule": (LOW, HIGH)},
            MAX_ONLY,
        ),
        "deep_taylor": ("deep_taylor", {}, ALL_MODES),
        "deep_taylor.bounded": ("deep_taylor.bounded", {"low": LOW, "high": HIGH}, ALL_MODES),
    }


def describe_kwargs(kwargs: dict) -> dict:
    """JSON-able description of analyzer kwargs."""
    ret = {}
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            ret[k] = "<ig_reference array>"
        elif isinstance(v, type):
            ret[k] = f"<rule class {v.__mro__[1].__name__} with bias=False>"
        elif isinstance(v, tuple):
            ret[k] = list(v)
        else:
            ret[k] = v
    return ret


def analyze(model, name, kwargs, mode, Xs, index_per_sample):
    """Run one iNNvestigate analyzer in one neuron selection mode.

    The analyzer is built once and applied to each input batch in `Xs`.
    """
    ns_mode = "index" if mode.startswith("index") else mode
    analyzer = innvestigate.create_analyzer(name, model, neuron_selection_mode=ns_mode, **kwargs)
    selection = {}
    if mode == "index_fixed":
        # A bare int is the documented way, but the AugmentReduce wrappers
        # (integrated_gradients, smoothgrad) mishandle it (see README); an int
        # repeated per sample has the same meaning and works everywhere.
        if name in ("integrated_gradients", "smoothgrad"):
            selection = {"neuron_selection": np.full(BATCH, INDEX_FIXED)}
        else:
            selection = {"neuron_selection": INDEX_FIXED}
    elif mode == "index_per_sample":
        selection = {"neuron_selection": index_per_sample}
    return [np.asarray(analyzer.analyze(X, **selection), dtype=np.float32) for X in Xs]


def mode_key(mode: str) -> str:
    return f"index_{INDEX_FIXED}" if mode == "index_fixed" else mode


def make_fixture(model_name: str, spec: dict, seed: int, out_dir: str) -> dict:
    tf.keras.backend.clear_session()
    rng = np.random.default_rng(seed)

    model = build_model(spec)
    weights = draw_weights(model, rng)
    model.set_weights(weights)

    X = np.clip(rng.normal(size=(BATCH, *spec["input_shape"])), LOW, HIGH).astype(np.float32)
    ig_reference = rng.uniform(-0.5, 0.5, size=(1, *spec["input_shape"])).astype(np.float32)

    outputs = model.predict(X, verbose=0)
    ends_in_softmax = spec["layers"][-1]["config"].get("activation") == "softmax"
    analyzed = innvestigate.model_wo_softmax(model) if ends_in_softmax else model
    logits = analyzed.predict(X, verbose=0)

    n_out = logits.shape[-1]
    # Mix of selections: samples 0, 1, 3 differ from the argmax, sample 2 is it.
    index_per_sample = (np.argmax(logits, axis=1) + np.array([1, 2, 0, 3])) % n_out

    arrays = {
        "spec_json": np.array(json.dumps(saved_spec(spec, model))),
        "keras2_model_json": np.array(model.to_json()),
        "n_weights": np.array(len(weights)),
        "inputs": X,
        "outputs": outputs.astype(np.float32),
        "logits": logits.astype(np.float32),
        "index_fixed": np.array(INDEX_FIXED),
        "index_per_sample": index_per_sample.astype(np.int64),
        "ig_reference": ig_reference,
    }
    arrays.update({f"w{i}": w for i, w in enumerate(weights)})

    def fresh_model():
        # A fresh model in a fresh graph per analysis: graph-mode execution
        # stays fast, and no analyzer sees nodes another analyzer added (the
        # integrated_gradients wrapper re-applies the model to new tensors,
        # after which iNNvestigate no longer detects the input layer).
        tf.keras.backend.clear_session()
        m = build_model(spec)
        m.set_weights(weights)
        return innvestigate.model_wo_softmax(m) if ends_in_softmax else m

    # Conditioning probe: the same analysis on inputs changed by ~1e-6
    # (relative). A large change flags a numerically fragile reference (e.g.
    # near-zero LRP denominators); compare such keys with a loose tolerance.
    X_perturbed = (X * (1 + 1e-6 * rng.choice([-1.0, 1.0], size=X.shape))).astype(np.float32)

    manifest, skipped, sensitivity = {}, {}, {}
    for variant, (name, kwargs, modes) in analyzer_variants(ig_reference).items():
        manifest[variant] = {
            "name": name,
            "kwargs": describe_kwargs(kwargs),
            "analyzed_model": "model_wo_softmax" if ends_in_softmax else "model",
        }
        for mode in modes:
            key = f"{variant}__{mode_key(mode)}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result, perturbed = analyze(
                        fresh_model(), name, kwargs, mode, [X, X_perturbed], index_per_sample
                    )
            except Exception as err:  # record refusals / crashes, keep going
                skipped[key] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                continue
            if result.shape != X.shape:
                skipped[key] = f"unexpected analysis shape {result.shape}"
                continue
            if not np.all(np.isfinite(result)):
                skipped[key] = "non-finite analysis"
                continue
            arrays[key] = result
            scale = max(float(np.abs(result).max()), 1e-30)
            sensitivity[key] = float(np.abs(result - perturbed).max()) / scale

    if ends_in_softmax:
        # Record that the raw softmax model is refused.
        for name in ("gradient", "lrp.z"):
            try:
                tf.keras.backend.clear_session()
                innvestigate.create_analyzer(name, build_model(spec))
                skipped[f"{name}__raw_softmax_model"] = "accepted (unexpected)"
            except Exception as err:
                message = f"{type(err).__name__}: {err}".splitlines()[0]
                skipped[f"{name}__raw_softmax_model"] = message

    arrays["analyzers_json"] = np.array(json.dumps(manifest))
    arrays["skipped_json"] = np.array(json.dumps(skipped, indent=0))
    arrays["sensitivity_json"] = np.array(json.dumps(sensitivity))

    path = os.path.join(out_dir, f"{model_name}.npz")
    np.savez_compressed(path, **arrays)
    n_analyses = sum("__" in k for k in arrays)
    print(f"{model_name}: {n_analyses} analyses, {len(skipped)} skipped, "
          f"{os.path.getsize(path) / 1024:.0f} KiB -> {path}")
    for k, v in skipped.items():
        print(f"    skipped {k}: {v}")
    return skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("tests", "fixtures", "innvestigate"))
    parser.add_argument("--models", nargs="*", default=list(MODEL_SPECS))
    args = parser.parse_args(argv)

    import keras  # the Keras 2 package that tf.keras resolves to in TF 2.14

    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"numpy {np.__version__}, innvestigate (module says) {innvestigate.__version__}")
    os.makedirs(args.out, exist_ok=True)
    for seed, model_name in enumerate(MODEL_SPECS):
        if model_name in args.models:
            make_fixture(model_name, MODEL_SPECS[model_name], 1000 + seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
