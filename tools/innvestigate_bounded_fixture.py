"""Reference fixture for ``deep_taylor.bounded`` with symmetric bounds (iNNvestigate 2.1.2).

Like ``tools/innvestigate_fixtures.py`` (whose model builder and weight drawer it reuses),
this script is not part of the keras-patterns runtime and runs only in the legacy
environment::

    python3.11 -m venv /tmp/innv
    /tmp/innv/bin/pip install "numpy<2" tensorflow-cpu==2.14.1 innvestigate==2.1.2
    /tmp/innv/bin/python tools/innvestigate_bounded_fixture.py \
        --out tests/fixtures/innvestigate/deep_taylor_symmetric.npz

For three small ReLU models (an MLP, a Conv1D net, a Conv2D net with max pooling) and the
bounds ``(-3, 3)`` it stores:

``<model>__deep_taylor.bounded__<mode>``
    ``deep_taylor.bounded`` on a freshly built model (modes ``max_activation``, ``all``).
``<model>__deep_taylor__max_activation``
    plain ``deep_taylor`` on a freshly built model.
``<model>__deep_taylor.bounded_reused__max_activation``
    ``deep_taylor.bounded`` on a model object that an ``integrated_gradients`` analyzer
    has already analysed. That wrapper calls the model on new tensors, which gives the first
    kernel layer a second inbound node; iNNvestigate's ``is_input_layer`` check then fails
    and the z^B rule is silently not applied (``diagnostics_json`` records the check).

npz layout: ``bounds`` (low, high), ``models_json`` (model names), per model
``<model>__spec_json`` (layer configs as ``tf.keras`` ``get_config()``),
``<model>__n_weights``, ``<model>__w0 ...`` (``get_weights()`` order), ``<model>__inputs``
(4 samples, N(0, 1) clipped into the bounds) and the analyses above (float32);
``analyzers_json`` ({variant: {"name", "kwargs", "model"}}) and ``diagnostics_json``
({model: {"first_layer_is_input_fresh", "first_layer_is_input_reused",
"inbound_nodes_fresh", "inbound_nodes_reused"}}).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import innvestigate  # noqa: E402
import innvestigate.backend.checks as ichecks  # noqa: E402
import innvestigate_fixtures as base  # noqa: E402  (disables eager execution, imports innvestigate)
import tensorflow as tf  # noqa: E402

LOW, HIGH = -3.0, 3.0
BATCH = 4

MODEL_SPECS = {
    "mlp": {
        "kind": "sequential",
        "input_shape": [12],
        "layers": [
            base._dense("dense1", 16),
            base._dense("dense2", 8),
            base._dense("logits", 4, activation="linear"),
        ],
    },
    "conv1d": {
        "kind": "sequential",
        "input_shape": [10, 2],
        "layers": [
            base._layer("Conv1D", "conv1", filters=4, kernel_size=3, padding="same",
                        activation="relu"),
            base._layer("MaxPooling1D", "pool1", pool_size=2),
            base._layer("Conv1D", "conv2", filters=3, kernel_size=2, padding="valid",
                        activation="relu"),
            base._layer("Flatten", "flat"),
            base._dense("logits", 4, activation="linear"),
        ],
    },
    "cnn": {
        "kind": "sequential",
        "input_shape": [4, 4, 2],
        "layers": [
            base._conv("conv1", 3, 3, padding="same"),
            base._layer("MaxPooling2D", "pool1", pool_size=[2, 2]),
            base._layer("Flatten", "flat"),
            base._dense("logits", 4, activation="linear"),
        ],
    },
}

VARIANTS = {
    # variant: (innvestigate name, kwargs, modes, model object)
    "deep_taylor.bounded": ("deep_taylor.bounded", {"low": LOW, "high": HIGH},
                            ("max_activation", "all"), "fresh"),
    "deep_taylor": ("deep_taylor", {}, ("max_activation",), "fresh"),
    "deep_taylor.bounded_reused": ("deep_taylor.bounded", {"low": LOW, "high": HIGH},
                                   ("max_activation",), "after integrated_gradients"),
}


def _first_kernel_layer(model):
    return next(layer for layer in model.layers if ichecks.contains_kernel(layer))


def make(model_name, spec, seed, arrays, diagnostics):
    tf.keras.backend.clear_session()
    rng = np.random.default_rng(seed)
    model = base.build_model(spec)
    weights = base.draw_weights(model, rng)
    model.set_weights(weights)
    X = np.clip(rng.normal(size=(BATCH, *spec["input_shape"])), LOW, HIGH).astype(np.float32)

    prefix = f"{model_name}__"
    arrays[prefix + "spec_json"] = np.array(json.dumps(base.saved_spec(spec, model)))
    arrays[prefix + "n_weights"] = np.array(len(weights))
    arrays.update({f"{prefix}w{i}": w for i, w in enumerate(weights)})
    arrays[prefix + "inputs"] = X

    def fresh():
        tf.keras.backend.clear_session()
        m = base.build_model(spec)
        m.set_weights(weights)
        return m

    info = {}
    for variant, (name, kwargs, modes, which) in VARIANTS.items():
        for mode in modes:
            m = fresh()
            if which != "fresh":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    innvestigate.create_analyzer("integrated_gradients", m).analyze(X)
            first = _first_kernel_layer(m)
            tag = "fresh" if which == "fresh" else "reused"
            info[f"first_layer_is_input_{tag}"] = bool(ichecks.is_input_layer(first))
            info[f"inbound_nodes_{tag}"] = len(first._inbound_nodes)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                analyzer = innvestigate.create_analyzer(
                    name, m, neuron_selection_mode=mode, **kwargs)
                result = np.asarray(analyzer.analyze(X), np.float32)
            if result.shape != X.shape or not np.all(np.isfinite(result)):
                raise RuntimeError(f"{model_name} {variant} {mode}: unexpected analysis")
            arrays[f"{prefix}{variant}__{mode}"] = result
    diagnostics[model_name] = info
    print(f"{model_name}: {info}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(
        "tests", "fixtures", "innvestigate", "deep_taylor_symmetric.npz"))
    args = parser.parse_args(argv)
    import keras

    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {np.__version__}")
    arrays, diagnostics = {"bounds": np.array([LOW, HIGH], np.float32)}, {}
    for seed, (model_name, spec) in enumerate(MODEL_SPECS.items()):
        make(model_name, spec, 2000 + seed, arrays, diagnostics)
    arrays["models_json"] = np.array(json.dumps(list(MODEL_SPECS)))
    arrays["analyzers_json"] = np.array(json.dumps({
        v: {"name": n, "kwargs": k, "model": w} for v, (n, k, _, w) in VARIANTS.items()}))
    arrays["diagnostics_json"] = np.array(json.dumps(diagnostics))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{os.path.getsize(args.out) / 1024:.1f} KiB -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
