"""The one place that touches Keras internals.

Walking a functional graph needs attributes that Keras does not document but has kept
stable across Keras 3 releases: `Functional._nodes_by_depth`, `Node.arguments`,
`Node.outputs` and `Sequential._functional`. A Keras change should touch only this file.
"""

import keras

from .errors import NotAnalyzableModelError, SubclassedModelError


def is_model(op):
    return isinstance(op, keras.Model)


def has_functional_graph(model):
    """Whether `model` is Functional, or a built Sequential (a graph to walk)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None) is not None
    return hasattr(model, "_nodes_by_depth")


def functional_of(model):
    """The functional graph behind `model` (Functional, or a built Sequential)."""
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise NotAnalyzableModelError(
                f"Sequential model '{model.name}' is not built: give it a keras.Input, call "
                "model.build(input_shape) or call it once on data before explaining it."
            )
        return functional
    if not hasattr(model, "_nodes_by_depth"):
        raise SubclassedModelError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model without a "
            "functional graph, which this method needs to see every layer (the gradient "
            "methods explain it with a plain tape). Trace it into a functional model: "
            "inputs = keras.Input(shape); model = keras.Model(inputs, model.call(inputs))."
        )
    return model


def topological_nodes(functional):
    """The Keras nodes of a functional graph, inputs first, without input nodes."""
    nodes_by_depth = functional._nodes_by_depth
    ordered = []
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            ordered.append(node)
    return ordered


def node_argument_tensors(node):
    """The KerasTensors among a node's call arguments, in call order (may repeat)."""
    return list(node.arguments.keras_tensors)


def node_call_values(node, values_by_id):
    """Fill a node's call arguments with real values keyed by `id(KerasTensor)`."""
    return node.arguments.fill_in(values_by_id)


def node_outputs(node):
    return list(node.outputs)


def call_has_training_arg(op):
    return bool(getattr(op, "_call_has_training_arg", False))


def elementwise_affine_layers():
    """Layer classes of keras.applications that scale their input element-wise (ConvNeXt's
    `LayerScale`: x * gamma), not exported by Keras."""
    try:
        from keras.src.applications.convnext import LayerScale
    except ImportError:  # moved or removed in a later Keras
        return ()
    return (LayerScale,)


def output_layers(model):
    """The layers that produce `model`'s outputs."""
    return {kt._keras_history.operation for kt in model.outputs}


class Untracked:
    """Holds an object out of Keras' attribute tracking (a reverse layer keeps its forward
    node, whose layers and variables must not become the reverse layer's own)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value
