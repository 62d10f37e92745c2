"""What each forward operation is, as far as the reverse layers care: its role.

Roles (the constants below; `graph.Node.role`):
- `KERNEL`: the linear part of a kernel layer plus its bias (made by canonization).
- `ACTIVATION`: an element-wise nonlinearity; `Node.family` tells which (relu, tanh, ...).
- `MAX_POOL`: max pooling (winner takes all).
- `LINEAR`: a parameter-free linear map (average pooling, reshapes, padding, identity
  layers at inference, Add/Subtract/Average/Concatenate, slicing).
- `AFFINE`: an element-wise affine map with parameters (BatchNormalization at inference,
  Rescaling, Normalization, ConvNeXt's LayerScale).
- `NONLINEAR`: a differentiable nonlinear map of several values or axes (Multiply,
  Maximum, LayerNormalization).
- `EMBEDDING`: a lookup from integer tokens.
- `OPAQUE`: anything else: only its gradient is known (`Node.why` says why).
"""

import keras
from keras import layers

from . import _keras
from .errors import NotAnalyzableModelError

LAYER = "layer"  # not classified yet (before canonization)
KERNEL = "kernel"
ACTIVATION = "activation"
MAX_POOL = "max_pool"
LINEAR = "linear"
AFFINE = "affine"
NONLINEAR = "nonlinear"
EMBEDDING = "embedding"
OPAQUE = "opaque"


def is_floating(dtype):
    """Whether a dtype (a string, a numpy, TensorFlow or Keras dtype) is floating point."""
    return "float" in str(getattr(dtype, "name", dtype))

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
    layers.MaxPooling1D: MAX_POOL,
    layers.MaxPooling2D: MAX_POOL,
    layers.MaxPooling3D: MAX_POOL,
    layers.GlobalMaxPooling1D: MAX_POOL,
    layers.GlobalMaxPooling2D: MAX_POOL,
    layers.GlobalMaxPooling3D: MAX_POOL,
    layers.AveragePooling1D: LINEAR,
    layers.AveragePooling2D: LINEAR,
    layers.AveragePooling3D: LINEAR,
    layers.GlobalAveragePooling1D: LINEAR,
    layers.GlobalAveragePooling2D: LINEAR,
    layers.GlobalAveragePooling3D: LINEAR,
    layers.Add: LINEAR,
    layers.Subtract: LINEAR,
    layers.Average: LINEAR,
    layers.Concatenate: LINEAR,
    layers.Multiply: NONLINEAR,
    layers.Maximum: NONLINEAR,
    layers.Minimum: NONLINEAR,
    layers.Flatten: LINEAR,
    layers.Reshape: LINEAR,
    layers.Permute: LINEAR,
    layers.RepeatVector: LINEAR,
    layers.ZeroPadding1D: LINEAR,
    layers.ZeroPadding2D: LINEAR,
    layers.ZeroPadding3D: LINEAR,
    layers.Cropping1D: LINEAR,
    layers.Cropping2D: LINEAR,
    layers.Cropping3D: LINEAR,
    layers.UpSampling1D: LINEAR,
    layers.UpSampling2D: LINEAR,
    layers.UpSampling3D: LINEAR,
    layers.Dropout: LINEAR,
    layers.SpatialDropout1D: LINEAR,
    layers.SpatialDropout2D: LINEAR,
    layers.SpatialDropout3D: LINEAR,
    layers.GaussianNoise: LINEAR,
    layers.GaussianDropout: LINEAR,
    layers.AlphaDropout: LINEAR,
    layers.Identity: LINEAR,
    layers.BatchNormalization: AFFINE,
    layers.Rescaling: AFFINE,
    layers.Normalization: AFFINE,
    layers.LayerNormalization: NONLINEAR,
    layers.Embedding: EMBEDDING,
    layers.Activation: ACTIVATION,
    layers.ReLU: ACTIVATION,
    layers.LeakyReLU: ACTIVATION,
    layers.PReLU: ACTIVATION,
    layers.ELU: ACTIVATION,
    layers.Softmax: ACTIVATION,
}
_LAYER_KINDS.update({cls: AFFINE for cls in _keras.elementwise_affine_layers()})


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
    same = name is None or family is None or str(name).lower() == family
    return f"'{name}'" if same else f"'{name}' ({family} family)"


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
        return ACTIVATION
    if name in _OP_LINEAR:
        return LINEAR
    if name in _OP_NONLINEAR:
        return NONLINEAR
    return None


def unsupported_error(node, method=None):
    """The refusal of an `OPAQUE` node by a method that needs a rule for it."""
    what = f" with '{method}'" if method else ""
    why = node.why or "it is not a layer kind keras-patterns knows how to reverse"
    return NotAnalyzableModelError(
        f"Layer '{node.name}' ({node.layer_class}) cannot be explained{what}: {why}. The "
        "gradient methods (gradient, input_t_gradient, smoothgrad, integrated_gradients) "
        f"explain any differentiable layer; the others need a rule per layer: "
        f"{supported_summary()}."
    )


def softmax_output(op, log=False):
    """Whether `op` (a layer, a keras.ops operation or a whole model) ends in a softmax, and
    how: the one decision for stripping a final softmax and for scoring probabilities.

    Args:
        op: a layer, an operation, or a keras.Model (its output layers are looked into,
            nested models too; a model whose graph cannot be read gives None).
        log: whether a log-softmax counts too (both end in the logits' softmax family).

    Returns:
        "layer" for a `Softmax` layer, an `Activation("softmax")` or a layer with
        ``activation="softmax"``; "op" for a `keras.ops.softmax` call; None otherwise, and
        for a model whose outputs do not all end the same way.
    """
    names = ("softmax", "log_softmax") if log else ("softmax",)
    if isinstance(op, keras.Model):
        try:
            ends = {softmax_output(o, log) for o in _keras.output_layers(op)}
        except (AttributeError, ValueError, TypeError):  # no graph to read (subclassed)
            return None
        return ends.pop() if len(ends) == 1 else None
    if isinstance(op, layers.Softmax):
        return "layer"
    if isinstance(op, layers.Layer):
        activation = getattr(op, "activation", None)
        return "layer" if getattr(activation, "__name__", None) in names else None
    return "op" if type(op).__name__ in {_OP_NAMES[n] for n in names} else None


_OP_NAMES = {"softmax": "Softmax", "log_softmax": "LogSoftmax"}
