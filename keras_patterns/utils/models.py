"""A model without its output activation, as iNNvestigate's `model_wo_softmax`.

The analyzers here remove a final softmax themselves (with a warning); these helpers exist
so that code written for iNNvestigate runs unchanged, and for users who want the logits.
The new model calls the original layers (their weights are shared), except the layer of an
output whose activation is removed: a copy with a linear activation and the same weights.
"""

import keras

from .. import _keras


def _without_activation(layer, only):
    """The layer that replaces an output layer: None to keep it."""
    if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        name = getattr(getattr(layer, "activation", None), "__name__", "softmax")
        if isinstance(layer, keras.layers.Softmax) or only is None or name == only:
            return keras.layers.Identity(name=layer.name)
        return None
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if activation is None or name == "linear" or (only is not None and name != only):
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
