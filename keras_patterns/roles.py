"""What each forward operation is, as far as the reverse layers care: its role.

Roles (the constants below; `graph.Node.role`):
- `KERNEL`: the linear part of a kernel layer plus its bias (made by canonization).
- `ACTIVATION`: an element-wise nonlinearity; `Node.family` tells which (relu, tanh, ...).
- `MAX_POOL`: max pooling (winner takes all).
- `FIXED_LINEAR`: a linear map without parameters (average pooling, reshapes, padding,
  identity layers at inference, Add/Subtract/Average/Concatenate, slicing); it either sums
  values (`Node.is_sum`) or routes them (`Node.is_routing`).
- `AFFINE`: an element-wise affine map with parameters (BatchNormalization at inference,
  Rescaling, Normalization, ConvNeXt's LayerScale).
- `PRODUCT`: a product of activations, linear in each factor (Multiply, keras.ops
  `einsum`/`matmul` between activations, QKᵀ and attention·V; a quotient, linear in its
  numerator).
- `NORM`: a normalisation y = γ (x - μ) / σ + β (LayerNormalization, also with
  `rms_scaling`): linear in x once its scale 1/σ is held constant.
- `SCALE`: the scale of a normalisation computed from the activations (`rsqrt`, `sqrt`,
  `reciprocal` in a traced RMSNorm): the relevance rules hold it constant, as a gate.
- `ATTENTION`: fused dot-product attention softmax(s QKᵀ + mask) V (keras.ops
  `dot_product_attention`, which Keras' MultiHeadAttention calls).
- `NONLINEAR`: a differentiable nonlinear map of several values or axes (Maximum,
  Minimum, Square, Exp, ...): only its gradient is used.
- `EMBEDDING`: a lookup from integer tokens.
- `OPAQUE`: anything else: only its gradient is known (`Node.why` says why).

The role of every supported Keras layer class is registered in `LAYERS`; a layer class
defined outside the package gets its role with `register_layer`, and every graph built
afterwards treats it so. The operations of `keras.ops` recorded in functional graphs are
recognised by their class names (`OPERATIONS`).
"""

import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

import keras
from keras import layers

from . import _keras
from .errors import NotAnalyzableModelError
from .kernels import (
    ConvMap,
    ConvTransposeMap,
    DenseMap,
    DepthwiseMap,
    EinsumMap,
    PointwiseMap,
    SeparableDepthwiseMap,
)
from .registry import Registry

LAYER = "layer"  # not classified yet (before canonization)
KERNEL = "kernel"
ACTIVATION = "activation"
MAX_POOL = "max_pool"
FIXED_LINEAR = "fixed_linear"
AFFINE = "affine"
PRODUCT = "product"
NORM = "norm"
SCALE = "scale"
ATTENTION = "attention"
NONLINEAR = "nonlinear"
EMBEDDING = "embedding"
CONSTANT = "constant"
"""A value that depends on no floating-point value of the graph, only on sizes (the batch
size, a sequence length: `_keras.DimensionOf`) and integer tensors (token ids, masks):
position embeddings, causal masks, rotary sines and cosines. Its gradient is zero and no
signal or relevance passes through it to its inputs: relevance that reaches it (where it is
added to an input-dependent value) is absorbed, as by a bias. See `canonize`."""
OPAQUE = "opaque"

# Keras activation function names -> activation family ("identity": Keras' "linear").
ACTIVATION_FAMILIES = {
    "relu": "relu", "relu6": "relu", "linear": "identity", "leaky_relu": "leaky_relu",
    "elu": "elu", "selu": "selu", "celu": "elu", "tanh": "tanh", "sigmoid": "sigmoid",
    "hard_sigmoid": "sigmoid", "softplus": "softplus", "softsign": "softsign",
    "silu": "swish", "swish": "swish", "hard_silu": "swish", "hard_swish": "swish",
    "gelu": "gelu", "mish": "mish", "exponential": "exponential", "softmax": "softmax",
    "log_softmax": "softmax",
    # keras-hub's own activation functions
    "gelu_approximate": "gelu", "quick_gelu": "gelu",
}
FAMILIES = tuple(dict.fromkeys([*ACTIVATION_FAMILIES.values(), "leaky_relu", "prelu"]))
"""The activation families: "relu" is a rectifier, "identity" passes values unchanged."""

# keras.ops operation class names that appear as graph nodes -> (role, family, is_sum).
OPERATIONS = {
    **{name: (ACTIVATION, family, False) for name, family in {
        "Relu": "relu", "Relu6": "relu", "Sigmoid": "sigmoid", "HardSigmoid": "sigmoid",
        "Softplus": "softplus", "Softsign": "softsign", "Silu": "swish", "HardSilu": "swish",
        "Tanh": "tanh", "LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu",
        "Gelu": "gelu", "Softmax": "softmax", "LogSoftmax": "softmax"}.items()},
    **{name: (FIXED_LINEAR, None, name in ("Add", "Subtract", "Mean", "Sum", "Negative"))
       for name in ("Add", "Subtract", "GetItem", "Reshape", "Transpose", "Concatenate",
                    "ExpandDims", "Squeeze", "Negative", "Mean", "Sum", "Flatten",
                    "Identity",
                    # routing: each output value is one input value (`Where`: of x or y)
                    "Cast", "Slice", "BroadcastTo", "Tile", "Repeat", "Split", "Stack",
                    "Moveaxis", "Where")},
    # values that depend on the input's shape only
    **{name: (CONSTANT, None, False) for name in ("DimensionOf", "ZerosLike", "OnesLike")},
    **{name: (PRODUCT, None, False)
       for name in ("Multiply", "Einsum", "Matmul", "TrueDivide", "Divide")},
    **{name: (SCALE, None, False) for name in ("Rsqrt", "Sqrt", "Reciprocal")},
    "DotProductAttention": (ATTENTION, None, False),
    **{name: (NONLINEAR, None, False)
       for name in ("Maximum", "Minimum", "Square", "Abs", "Absolute", "Exp", "Log",
                    "Power")},
}

QUOTIENTS = ("TrueDivide", "Divide")
"""The `PRODUCT` operations that divide: linear in their first input (the numerator)."""


ROLES = (KERNEL, ACTIVATION, MAX_POOL, FIXED_LINEAR, AFFINE, PRODUCT, NORM, SCALE,
         ATTENTION, NONLINEAR, EMBEDDING, CONSTANT)
"""The roles a layer class can be registered with."""


@dataclass(frozen=True)
class LayerRole:
    """The registered role of a layer class, with what that role needs to know.

    Attributes:
        layer_class: the Keras layer class.
        role: one of `ROLES`.
        family: an `ACTIVATION`'s family (one of `FAMILIES`), or a function of the layer
            that returns it (None where the layer's activation is unknown).
        is_sum: whether a `FIXED_LINEAR` layer adds values rather than routing each value
            somewhere, or a function of the layer that tells.
        kernel_maps: a `KERNEL` layer's kernel map classes (`kernels.KernelMap`), in the
            order they are applied; the layer's bias follows the last one.
        covers: a function of a call's (args, kwargs): whether the role describes that call
            (`ReversibleEmbedding(x, reverse=True)` is a product), None: every call.
    """

    layer_class: type
    role: str
    family: Union[None, str, Callable[[Any], Optional[str]]] = None
    is_sum: Union[bool, Callable[[Any], bool]] = False
    kernel_maps: Tuple[type, ...] = ()
    covers: Optional[Callable[[tuple, dict], bool]] = None

    def family_of(self, layer):
        return self.family(layer) if callable(self.family) else self.family

    def is_sum_for(self, layer):
        return bool(self.is_sum(layer) if callable(self.is_sum) else self.is_sum)

    def covers_call(self, args, kwargs):
        return self.covers is None or bool(self.covers(args, kwargs))


LAYERS = Registry("layer role")
"""Layer class (module and qualified name) -> `LayerRole`."""


def _key(layer_class):
    return f"{layer_class.__module__}.{layer_class.__qualname__}"


def register_layer(layer_class, role, *, family=None, is_sum=False, kernel_maps=(),
                   covers=None, replace=False):
    """Tell every method what a Keras layer class computes, so that it is explained.

    A subclass of `layer_class` shares its role unless it overrides `call` (it may compute
    something else then, and is refused until it is registered itself).

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        role: one of `ROLES`, for instance `ACTIVATION` for an element-wise nonlinearity.
        family: for `ACTIVATION`: the activation family, one of `FAMILIES` ("relu" makes it
            a rectifier for DeConvNet, Guided Backprop and Deep Taylor), or a function of
            the layer that returns it.
        is_sum: for `FIXED_LINEAR`: True where the layer adds values (LRP then divides
            relevance over the summands), or a function of the layer that tells; False
            where it only moves them.
        kernel_maps: for `KERNEL`: the `kernels.KernelMap` classes the layer applies.
        covers: a function of a call's (args, kwargs): whether the role describes it; a
            call it does not cover is traced (opaque where that fails). None: every call.
        replace: replace the role of a layer class registered already.

    Returns:
        The registered `LayerRole`.

    Raises:
        TypeError: `layer_class` is not a Keras layer class.
        ValueError: an unknown role or family, or an argument the role does not take.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"register_layer needs a keras.layers.Layer subclass, got "
                        f"{layer_class!r}.")
    name = layer_class.__name__
    if role not in ROLES:
        raise ValueError(f"register_layer({name}): role {role!r} is not one of "
                         f"{', '.join(map(repr, ROLES))}.")
    if (family is None) == (role == ACTIVATION):
        raise ValueError(f"register_layer({name}): an activation needs family=, and only an "
                         "activation takes it.")
    if isinstance(family, str) and family not in FAMILIES:
        raise ValueError(f"register_layer({name}): family {family!r} is not one of "
                         f"{', '.join(map(repr, FAMILIES))}.")
    if is_sum is not False and role != FIXED_LINEAR:
        raise ValueError(f"register_layer({name}): only a {FIXED_LINEAR!r} layer takes "
                         "is_sum=.")
    kernel_maps = tuple(kernel_maps)
    if bool(kernel_maps) != (role == KERNEL):
        raise ValueError(f"register_layer({name}): a kernel layer needs kernel_maps=, and "
                         "only a kernel layer takes them.")
    return LAYERS.register(_key(layer_class), LayerRole(layer_class, role, family, is_sum,
                                                        kernel_maps, covers), replace=replace)


def layer_role(op):
    """The `LayerRole` of a Keras layer (through its class or a base class whose `call` it
    keeps), or None."""
    _register_keras_hub_layers()
    for cls in type(op).__mro__:
        entry = LAYERS.find(_key(cls))
        if entry is not None and entry.layer_class is cls:
            if type(op).call is not cls.call:
                return None  # a subclass that computes something else
            return entry
    return None


def kernel_maps(layer):
    """The kernel maps of `layer`, or None if it is not a kernel layer."""
    entry = layer_role(layer)
    if entry is None or entry.role != KERNEL:
        return None
    maps = entry.kernel_maps
    return [m(layer, with_bias=k == len(maps) - 1) for k, m in enumerate(maps)]


def role_of(op):
    """The role of a forward layer or operation, or None where it has none."""
    if isinstance(op, keras.layers.Layer):
        entry = layer_role(op)
        return None if entry is None else entry.role
    known = OPERATIONS.get(type(op).__name__)
    return None if known is None else known[0]


def is_summing(op):
    """Whether a `FIXED_LINEAR` node sums values (rather than routing each value somewhere)."""
    if isinstance(op, keras.layers.Layer):
        entry = layer_role(op)
        return entry is not None and entry.is_sum_for(op)
    known = OPERATIONS.get(type(op).__name__)
    return known is not None and known[2]


def activation_family(fn):
    """The family of a Keras activation function (`Dense(activation=...)`)."""
    name = getattr(fn, "__name__", None)
    return ACTIVATION_FAMILIES.get(name)


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
    if isinstance(op, keras.layers.Layer):
        entry = layer_role(op)
        return None if entry is None else entry.family_of(op)
    known = OPERATIONS.get(type(op).__name__)
    return None if known is None else known[1]


def supported_summary():
    """One line naming what can be explained, for error messages."""
    entries = LAYERS.values()
    kernels = sorted(e.layer_class.__name__ for e in entries if e.role == KERNEL)
    others = sorted({e.layer_class.__name__ for e in entries if e.role != KERNEL})
    return ("supported layers: " + ", ".join(kernels + others)
            + "; keras.ops in graphs: " + ", ".join(sorted(OPERATIONS)))


def unsupported_error(node, method=None):
    """The refusal of an `OPAQUE` node by a method that needs a rule for it."""
    what = f" with '{method}'" if method else ""
    why = node.why or "it is not a layer keras-patterns knows how to reverse"
    return NotAnalyzableModelError(
        f"Layer '{node.name}' ({node.layer_class}) cannot be explained{what}: {why}. The "
        "gradient methods (gradient, input_t_gradient, smoothgrad, integrated_gradients) "
        f"explain any differentiable layer; the others need a rule per layer: "
        f"{supported_summary()}."
    )


# -- the layers of Keras --------------------------------------------------------------------

def _relu_family(layer):
    return "relu" if not layer.negative_slope else "leaky_relu"


def _activation_layer_family(layer):
    return activation_family(layer.activation)


def _upsampling_is_sum(layer):
    return getattr(layer, "interpolation", "nearest") != "nearest"  # bilinear mixes values


def _register_keras_layers():
    for cls, maps in [
        (layers.Dense, (DenseMap,)),
        (layers.EinsumDense, (EinsumMap,)),
        *[(cls, (ConvMap,)) for cls in (layers.Conv1D, layers.Conv2D, layers.Conv3D)],
        *[(cls, (ConvTransposeMap,)) for cls in (
            layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)],
        *[(cls, (DepthwiseMap,)) for cls in (layers.DepthwiseConv1D, layers.DepthwiseConv2D)],
        *[(cls, (SeparableDepthwiseMap, PointwiseMap)) for cls in (
            layers.SeparableConv1D, layers.SeparableConv2D)],
    ]:
        register_layer(cls, KERNEL, kernel_maps=maps)
    for cls in (layers.MaxPooling1D, layers.MaxPooling2D, layers.MaxPooling3D,
                layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D,
                layers.GlobalMaxPooling3D):
        register_layer(cls, MAX_POOL)
    for cls in (layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D,
                layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
                layers.GlobalAveragePooling3D, layers.Add, layers.Subtract, layers.Average):
        register_layer(cls, FIXED_LINEAR, is_sum=True)
    for cls in (layers.UpSampling1D, layers.UpSampling2D, layers.UpSampling3D):
        register_layer(cls, FIXED_LINEAR, is_sum=_upsampling_is_sum)
    for cls in (layers.Concatenate, layers.Flatten, layers.Reshape, layers.Permute,
                layers.RepeatVector, layers.ZeroPadding1D, layers.ZeroPadding2D,
                layers.ZeroPadding3D, layers.Cropping1D, layers.Cropping2D, layers.Cropping3D,
                layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
                layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
                layers.AlphaDropout, layers.Identity):
        register_layer(cls, FIXED_LINEAR)
    register_layer(layers.Multiply, PRODUCT)
    register_layer(layers.LayerNormalization, NORM)
    for cls in (layers.Maximum, layers.Minimum):
        register_layer(cls, NONLINEAR)
    for cls in (layers.BatchNormalization, layers.Rescaling, layers.Normalization,
                *_keras.elementwise_affine_layers()):
        register_layer(cls, AFFINE)
    register_layer(layers.Embedding, EMBEDDING)
    if hasattr(layers, "ReversibleEmbedding"):  # Keras 3.12 and later
        register_layer(layers.ReversibleEmbedding, EMBEDDING, covers=_looks_up_tokens)
    for cls, family in ((layers.Activation, _activation_layer_family),
                        (layers.ReLU, _relu_family), (layers.LeakyReLU, "leaky_relu"),
                        (layers.PReLU, "prelu"), (layers.ELU, "elu"),
                        (layers.Softmax, "softmax")):
        register_layer(cls, ACTIVATION, family=family)


def _looks_up_tokens(args, kwargs):
    """Whether a `ReversibleEmbedding` call looks tokens up (not `reverse=True`: logits)."""
    return not kwargs.get("reverse", args[1] if len(args) > 1 else False)


_register_keras_layers()

_KERAS_HUB = []  # [True] once keras-hub's layers are registered


def _register_keras_hub_layers():
    """The roles of keras-hub layers that are not traced, registered once keras-hub has
    been imported (by whoever built the model; keras-patterns neither imports it nor
    depends on it), unless registered already."""
    if _KERAS_HUB or "keras_hub" not in sys.modules:
        return
    _KERAS_HUB.append(True)
    try:
        from keras_hub.layers import ReversibleEmbedding
    except ImportError:  # a keras-hub without it
        return
    if LAYERS.find(_key(ReversibleEmbedding)) is None:
        register_layer(ReversibleEmbedding, EMBEDDING, covers=_looks_up_tokens)


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
