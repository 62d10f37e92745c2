"""A model without its output activation, as iNNvestigate's `model_wo_softmax`.

The analyzers here remove a final softmax themselves (with a warning); these helpers exist
so that code written for iNNvestigate runs unchanged, and for users who want the logits.
The new model calls the original layers (their weights are shared), except the layer of an
output whose activation is removed: a copy with a linear activation and the same weights.
"""

import keras

from .. import _keras
from ..roles import softmax_output


def _without_activation(layer, only):
    """The layer that replaces an output layer (`only`: "softmax" or None for any
    activation): None to keep it."""
    if only == "softmax" and softmax_output(layer) is None:
        return None
    if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        return keras.layers.Identity(name=layer.name)
    activation = getattr(layer, "activation", None)
    if activation is None or getattr(activation, "__name__", None) == "linear":
        return None
    config = dict(layer.get_config(), activation="linear")
    return type(layer).from_config(config)


def _strip(model, only):
    outputs = _keras.output_layers(model)
    replaced = {}

    def clone(layer):
        if layer in outputs:
            new = _without_activation(layer, only)
            if new is not None:
                replaced[id(layer)] = (layer, new)
                return new
        return layer  # shared: the same layer, the same weights

    new_model = keras.models.clone_model(model, clone_function=clone)
    for layer, new in replaced.values():
        new.set_weights(layer.get_weights())
    return new_model


def model_wo_softmax(model):
    """A model computing `model`'s outputs without a final softmax (the logits)."""
    return _strip(model, "softmax")


def model_wo_output_activation(model):
    """A model computing `model`'s outputs without their final activation."""
    return _strip(model, None)
