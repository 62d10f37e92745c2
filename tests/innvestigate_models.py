"""Rebuild the iNNvestigate reference fixtures' models in Keras 3.

The fixtures in ``tests/fixtures/innvestigate/*.npz`` are written by
``tools/innvestigate_fixtures.py`` (iNNvestigate 2.1.2 on TF 2.14 / Keras 2,
see ``tests/fixtures/innvestigate/README.md``). This module contains no tests;
it only turns one fixture into ``(model, inputs, references)``::

    model, inputs, refs = load_fixture("mlp")
    refs["lrp.epsilon__index_3"]        # iNNvestigate's analysis
    refs["index_per_sample"]            # the indices of the *_index_per_sample mode

``references`` holds every analysis array (keys ``<variant>__<mode>``) plus the
metadata arrays: ``outputs``, ``logits``, ``index_fixed``, ``index_per_sample``,
``ig_reference``, ``analyzers`` (dict, from ``analyzers_json``), ``skipped``
(dict, from ``skipped_json``) and ``spec`` (dict).

For the model ending in a softmax (``mlp_softmax``) iNNvestigate analyzed
``model_wo_softmax(model)``; :func:`model_without_softmax` builds that model.

``deep_taylor_symmetric.npz`` (``tools/innvestigate_bounded_fixture.py``) holds several
models under ``<model>__`` prefixes; :func:`load_multi_fixture` loads it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "innvestigate")

# Keys of Keras 2 layer configs that Keras 3 does not accept, or that do not
# influence the forward pass once the weights are set explicitly.
_DROP_KEYS = {
    "batch_input_shape",  # Keras 2 InputLayer / first-layer argument
    "kernel_initializer",
    "bias_initializer",
    "beta_initializer",
    "gamma_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "beta_regularizer",
    "gamma_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "beta_constraint",
    "gamma_constraint",
    "renorm",  # Keras 2 BatchNormalization extras (must be off, see below)
    "renorm_clipping",
    "renorm_momentum",
    "fused",
    "virtual_batch_size",
    "adjustment",
}


def fixture_names() -> list[str]:
    """Names of all fixtures (file names without ``.npz``)."""
    return sorted(f[:-4] for f in os.listdir(FIXTURE_DIR) if f.endswith(".npz"))


def keras3_layer_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Translate a Keras 2 (tf.keras 2.14) layer config into Keras 3 kwargs."""
    config = dict(config)
    if config.get("renorm") or config.get("virtual_batch_size"):
        raise NotImplementedError(f"{class_name}: renorm / virtual_batch_size")
    for key in _DROP_KEYS:
        config.pop(key, None)

    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # Keras 2 mixed-precision policy dict
        config["dtype"] = dtype.get("config", {}).get("name", "float32")

    if class_name == "BatchNormalization":
        # Keras 2 serialises the axis as a list ([3]); Keras 3 wants an int.
        axis = config.get("axis", -1)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise NotImplementedError(f"BatchNormalization over axes {axis}")
            axis = axis[0]
        config["axis"] = int(axis)

    # Lists -> tuples for shape-like arguments (both versions accept tuples).
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size"):
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    return config


def build_model(spec: dict[str, Any]) -> keras.Model:
    """Build the Keras 3 model described by a fixture spec (weights unset)."""
    inp = keras.Input(shape=tuple(spec["input_shape"]), name="input")
    tensors = {"input": inp}
    previous = inp
    for entry in spec["layers"]:
        cls = getattr(keras.layers, entry["class"])
        layer = cls(**keras3_layer_config(entry["class"], entry["config"]))
        if spec["kind"] == "functional":
            args = [tensors[name] for name in entry["inputs"]]
            out = layer(args if len(args) > 1 else args[0])
        else:
            out = layer(previous)
        tensors[entry["config"]["name"]] = out
        previous = out
    return keras.Model(inp, previous, name="model")


def model_without_softmax(model: keras.Model) -> keras.Model:
    """Equivalent of iNNvestigate's ``model_wo_softmax`` for these fixtures.

    Returns a model sharing ``model``'s layers whose last (Dense) layer is
    applied without its softmax activation.
    """
    last = model.layers[-1]
    if getattr(last, "activation", None) is not keras.activations.softmax:
        raise ValueError("model does not end in a softmax layer")
    config = last.get_config()
    config["activation"] = "linear"
    config["name"] = last.name + "_wo_softmax"
    linear = last.__class__.from_config(config)
    out = linear(last.input)
    linear.set_weights(last.get_weights())
    return keras.Model(model.input, out, name=model.name + "_wo_softmax")


def load_fixture(
    name_or_path: str,
) -> tuple[keras.Model, np.ndarray, dict[str, Any]]:
    """Load a fixture: returns ``(keras3_model, inputs, references)``."""
    path = name_or_path
    if not path.endswith(".npz"):
        path = os.path.join(FIXTURE_DIR, name_or_path + ".npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}

    spec = json.loads(str(arrays.pop("spec_json")))
    model = build_model(spec)
    n_weights = int(arrays.pop("n_weights"))
    model.set_weights([arrays.pop(f"w{i}") for i in range(n_weights)])
    inputs = arrays.pop("inputs")

    refs: dict[str, Any] = dict(arrays)
    refs["spec"] = spec
    refs["analyzers"] = json.loads(str(refs.pop("analyzers_json")))
    refs["skipped"] = json.loads(str(refs.pop("skipped_json")))
    refs["keras2_model_json"] = str(refs["keras2_model_json"])
    refs["index_fixed"] = int(refs["index_fixed"])
    return model, inputs, refs


def analysis_keys(refs: dict[str, Any]) -> list[str]:
    """The ``<variant>__<mode>`` keys of a fixture's analyses."""
    return sorted(k for k in refs if "__" in k and isinstance(refs[k], np.ndarray))


def load_multi_fixture(
    name_or_path: str,
) -> dict[str, tuple[keras.Model, np.ndarray, dict[str, Any]]]:
    """Load a fixture holding several models under ``<model>__`` prefixes (e.g.
    ``deep_taylor_symmetric``): returns ``{model: (keras3_model, inputs, references)}``
    with the prefix stripped from the reference keys; the file's unprefixed arrays (such
    as ``bounds``) are in every ``references``."""
    path = name_or_path
    if not path.endswith(".npz"):
        path = os.path.join(FIXTURE_DIR, name_or_path + ".npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    names = json.loads(str(arrays.pop("models_json")))
    shared = {k: v for k, v in arrays.items() if not any(k.startswith(n + "__") for n in names)}
    out = {}
    for name in names:
        prefix = name + "__"
        own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        model = build_model(json.loads(str(own.pop("spec_json"))))
        n_weights = int(own.pop("n_weights"))
        model.set_weights([own.pop(f"w{i}") for i in range(n_weights)])
        inputs = own.pop("inputs")
        out[name] = (model, inputs, {**shared, **own})
    return out
