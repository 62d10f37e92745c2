"""What each forward operation is, as far as the propagation rules care.

Kinds:
- ``kernel``: the linear part of a kernel layer plus its bias (made by canonization).
- ``activation``: an element-wise nonlinearity; ``family`` tells which (relu, tanh, ...).
- ``max_pool``: max pooling (winner takes all).
- ``linear``: a parameter-free linear map (average pooling, reshapes, padding, identity
  layers at inference, Add/Subtract/Average/Concatenate, slicing).
- ``affine``: an element-wise affine map with parameters (BatchNormalization at inference,
  Rescaling, Normalization).
- ``nonlinear``: a differentiable nonlinear map of several values or axes (Multiply,
  Maximum, LayerNormalization).
- ``embedding``: a lookup from integer tokens.
"""

import keras
from keras import layers

from . import _keras
from .errors import NotAnalyzableModelError

# Keras activation function names -> activation family.
_ACTIVATION_FAMILIES = {
    "relu": "relu",
    "relu6": "relu",
    "linear": "linear",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
    "selu": "selu",
    "celu": "elu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "hard_sigmoid": "sigmoid",
    "softplus": "softplus",
    "softsign": "softsign",
    "silu": "swish",
    "swish": "swish",
    "hard_silu": "swish",
    "hard_swish": "swish",
    "gelu": "gelu",
    "mish": "mish",
    "exponential": "exponential",
    "softmax": "softmax",
    "log_softmax": "softmax",
}

# keras.ops operation class names that appear as graph nodes.
_OP_ACTIVATIONS = {
    "Relu": "relu",
    "Relu6": "relu",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "sigmoid",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Silu": "swish",
    "HardSilu": "swish",
    "Tanh": "tanh",
    "LeakyRelu": "leaky_relu",
    "Elu": "elu",
    "Selu": "selu",
    "Gelu": "gelu",
    "Softmax": "softmax",
    "LogSoftmax": "softmax",
}
_OP_LINEAR = {
    "Add", "Subtract", "GetItem", "Reshape", "Transpose", "Concatenate", "ExpandDims",
    "Squeeze", "Negative", "Mean", "Sum", "Flatten", "Identity",
}
_OP_NONLINEAR = {"Multiply", "Maximum", "Minimum", "TrueDivide", "Divide", "Square", "Abs",
                 "Absolute", "Exp", "Log", "Sqrt", "Power"}

_LAYER_KINDS = {
    layers.MaxPooling1D: "max_pool",
    layers.MaxPooling2D: "max_pool",
    layers.MaxPooling3D: "max_pool",
    layers.GlobalMaxPooling1D: "max_pool",
    layers.GlobalMaxPooling2D: "max_pool",
    layers.GlobalMaxPooling3D: "max_pool",
    layers.AveragePooling1D: "linear",
    layers.AveragePooling2D: "linear",
    layers.AveragePooling3D: "linear",
    layers.GlobalAveragePooling1D: "linear",
    layers.GlobalAveragePooling2D: "linear",
    layers.GlobalAveragePooling3D: "linear",
    layers.Add: "linear",
    layers.Subtract: "linear",
    layers.Average: "linear",
    layers.Concatenate: "linear",
    layers.Multiply: "nonlinear",
    layers.Maximum: "nonlinear",
    layers.Minimum: "nonlinear",
    layers.Flatten: "linear",
    layers.Reshape: "linear",
    layers.Permute: "linear",
    layers.RepeatVector: "linear",
    layers.ZeroPadding1D: "linear",
    layers.ZeroPadding2D: "linear",
    layers.ZeroPadding3D: "linear",
    layers.Cropping1D: "linear",
    layers.Cropping2D: "linear",
    layers.Cropping3D: "linear",
    layers.UpSampling1D: "linear",
    layers.UpSampling2D: "linear",
    layers.UpSampling3D: "linear",
    layers.Dropout: "linear",
    layers.SpatialDropout1D: "linear",
    layers.SpatialDropout2D: "linear",
    layers.SpatialDropout3D: "linear",
    layers.GaussianNoise: "linear",
    layers.GaussianDropout: "linear",
    layers.AlphaDropout: "linear",
    layers.Identity: "linear",
    layers.BatchNormalization: "affine",
    layers.Rescaling: "affine",
    layers.Normalization: "affine",
    layers.LayerNormalization: "nonlinear",
    layers.Embedding: "embedding",
    layers.Activation: "activation",
    layers.ReLU: "activation",
    layers.LeakyReLU: "activation",
    layers.PReLU: "activation",
    layers.ELU: "activation",
    layers.Softmax: "activation",
}
_LAYER_KINDS.update({cls: "affine" for cls in _keras.elementwise_affine_layers()})


# Linear maps that add up their inputs (LRP distributes relevance over the summands in
# proportion to their contributions); every other `linear` node only routes values.
_SUMMING_LAYERS = (
    layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D,
    layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D, layers.GlobalAveragePooling3D,
    layers.Add, layers.Subtract, layers.Average,
)
_OP_SUMMING = {"Add", "Subtract", "Mean", "Sum", "Negative"}


def is_summing(op):
    """Whether a `linear` node sums values (rather than routing each value somewhere)."""
    if isinstance(op, (layers.UpSampling1D, layers.UpSampling2D, layers.UpSampling3D)):
        return getattr(op, "interpolation", "nearest") != "nearest"  # bilinear mixes values
    if isinstance(op, keras.layers.Layer):
        return isinstance(op, _SUMMING_LAYERS)
    return type(op).__name__ in _OP_SUMMING


def activation_family(fn):
    """The family of a Keras activation function (`Dense(activation=...)`)."""
    name = getattr(fn, "__name__", None)
    return _ACTIVATION_FAMILIES.get(name)


def activation_name(fn):
    """The name of an activation function, for messages (`hard_swish`, not its family)."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def layer_activation_name(op):
    """The name of an activation layer's or operation's function, for messages."""
    if isinstance(op, layers.Activation):
        return activation_name(op.activation)
    return type(op).__name__


def describe_activation(name, family):
    """"'relu'" or "'hard_silu' (swish family)": the activation's own name, for messages."""
    return f"'{name}'" if name in (family, None) else f"'{name}' ({family} family)"


def layer_activation_family(op):
    """The family of an activation layer or operation."""
    if isinstance(op, layers.ReLU):
        return "relu" if not op.negative_slope else "leaky_relu"
    if isinstance(op, layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(op, layers.PReLU):
        return "prelu"
    if isinstance(op, layers.ELU):
        return "elu"
    if isinstance(op, layers.Softmax):
        return "softmax"
    if isinstance(op, layers.Activation):
        return activation_family(op.activation)
    return _OP_ACTIVATIONS.get(type(op).__name__)


def supported_summary():
    """One line naming what can be explained, for error messages."""
    names = sorted({c.__name__ for c in _LAYER_KINDS})
    from .kernels import KERNEL_LAYERS

    kernels = sorted(c.__name__ for c in KERNEL_LAYERS)
    return (
        "supported layers: " + ", ".join(kernels + names)
        + "; keras.ops in graphs: "
        + ", ".join(sorted(set(_OP_ACTIVATIONS) | _OP_LINEAR | _OP_NONLINEAR))
    )


def kind_of(op):
    """The kind of a forward layer or operation (not a kernel layer), or None."""
    for cls in type(op).__mro__:
        if cls in _LAYER_KINDS:
            if type(op).call is not cls.call:
                return None  # a subclass that computes something else
            return _LAYER_KINDS[cls]
    if isinstance(op, keras.layers.Layer):
        return None
    name = type(op).__name__
    if name in _OP_ACTIVATIONS:
        return "activation"
    if name in _OP_LINEAR:
        return "linear"
    if name in _OP_NONLINEAR:
        return "nonlinear"
    return None


def unsupported_error(node, method=None):
    """The refusal of an "opaque" node (see `canonize.opaque`) by a method that needs a
    rule for it."""
    what = f" with '{method}'" if method else ""
    why = node.info.get("why", "it is not a layer kind keras-patterns knows how to reverse")
    return NotAnalyzableModelError(
        f"Layer '{node.name}' ({node.layer_class}) cannot be explained{what}: {why}. The "
        "gradient methods (gradient, input_t_gradient, smoothgrad, integrated_gradients) "
        f"explain any differentiable layer; the others need a rule per layer: "
        f"{supported_summary()}."
    )
