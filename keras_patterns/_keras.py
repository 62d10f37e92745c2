"""The one place that touches Keras internals.

Walking a functional graph needs attributes that Keras does not document but has kept
stable across Keras 3 releases: `Functional._nodes_by_depth`, `Node.arguments`,
`Node.outputs` and `Sequential._functional`; tracing a layer's `call` reads
`Layer._flatten_layers`, trims `Operation._inbound_nodes` / `_outbound_nodes`, swaps the
functions of the public `keras.ops` namespace for the duration of a trace (sizes known only
on values) and uses `keras.src.backend.compute_output_spec`. A Keras change should touch
only this file.
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


def call_arguments(node):
    """The (args, kwargs) of a node's recorded call (KerasTensors where tensors went)."""
    return node.arguments.args, node.arguments.kwargs


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


# Keras layers whose `call` is itself made of layers and keras.ops, traced like custom
# layers so that each inner operation (QK^T, softmax, attention times V) is a node.
TRACED_KERAS_LAYERS = (keras.layers.MultiHeadAttention, keras.layers.GroupQueryAttention)


def is_traceable_layer(op):
    """Whether `op` is a layer to trace: one whose `call` is written outside Keras (a
    subclassed layer made of layers and keras.ops, as keras-hub writes its blocks), or one
    of `TRACED_KERAS_LAYERS`. Models are not."""
    if not isinstance(op, keras.layers.Layer) or isinstance(op, keras.Model):
        return False
    call = getattr(type(op), "call", None)
    module = getattr(call, "__module__", None) or ""
    if any(call is cls.call for cls in TRACED_KERAS_LAYERS):
        return True
    return callable(call) and module.split(".")[0] != "keras"


class NotTraced(Exception):
    """A custom layer whose `call` could not be traced into a graph; the message says why."""


def _symbolic_input(kt):
    shape = tuple(kt.shape)
    if not shape:
        raise NotTraced("one of its inputs is a scalar")
    return keras.Input(shape=shape[1:], batch_size=shape[0], dtype=kt.dtype)


def _layers_under(layer):
    return list(layer._flatten_layers(include_self=True, recursive=True))


class _KeepNodes:
    """Removes the Keras nodes that tracing a layer's `call` adds to its inner layers, so
    the user's layers are left as they were (the traced graph keeps its own references)."""

    def __init__(self, layer):
        self.counts = [(x, len(x._inbound_nodes), len(x._outbound_nodes))
                       for x in _layers_under(layer)]

    def restore(self):
        for x, inbound, outbound in self.counts:
            del x._inbound_nodes[inbound:]
            del x._outbound_nodes[outbound:]


def _compatible(traced, recorded):
    """Whether a traced output can stand for the recorded one: the same dtype and rank, and
    the same size on every axis where both know it (symbolic shapes may know less)."""
    a, b = tuple(traced.shape), tuple(recorded.shape)
    return traced.dtype == recorded.dtype and len(a) == len(b) and all(
        m is None or n is None or m == n for m, n in zip(a, b))


def keras_mask(kt):
    """The Keras mask a KerasTensor carries (`Embedding(mask_zero=True)` sets one), or None."""
    return getattr(kt, "_keras_mask", None)


class DimensionOf(keras.Operation):
    """The size of one axis of a tensor, as an int32 scalar: the stand-in for a size that
    `keras.ops.shape` gives as None on symbolic inputs (the batch size, a sequence length)
    while a layer's call is traced with dynamic sizes (`trace_call`). On values it is the
    actual size, so whatever the call computes from it fits every batch size and length."""

    def __init__(self, axis, name=None):
        super().__init__(name=name)
        self.axis = axis

    def call(self, x):
        return keras.ops.convert_to_tensor(_SHAPE(x)[self.axis], "int32")

    def compute_output_spec(self, x):
        return keras.KerasTensor((), dtype="int32")


class DeferredOperation(keras.Operation):
    """A `keras.ops` function called with a size among its arguments (a `DimensionOf`
    value, or one computed from it) while a call is traced with dynamic sizes: one graph
    operation that calls the function on values (`ops.tile(token, (batch, 1, 1))`,
    `ops.arange(length)`, `ops.broadcast_to(mask, (batch, length, length))`). Each function
    gets its own subclass, named like the Keras operation class (`Tile`, `Arange`), so that
    roles recognise it by name."""

    function = None

    def call(self, *args, **kwargs):
        return type(self).function(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        from keras.src.backend import compute_output_spec
        return compute_output_spec(type(self).function, *args, **kwargs)


_SHAPE = keras.ops.shape
_DEFERRED = {}


def _deferred_class(function):
    name = function.__name__
    if name not in _DEFERRED:
        camel = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
        _DEFERRED[name] = type(camel, (DeferredOperation,), {
            "function": staticmethod(function), "__module__": __name__})
    return _DEFERRED[name]


def _has_size_argument(args, kwargs):
    return any(isinstance(a, keras.KerasTensor) and len(a.shape) == 0
               for a in keras.tree.flatten((args, kwargs)))


class _DynamicSizes:
    """While tracing: `keras.ops.shape` gives a `DimensionOf` value for each axis of a
    symbolic tensor whose size is None, and a `keras.ops` function called with such a
    scalar among its arguments becomes one `DeferredOperation`. Only the public
    `keras.ops` namespace (through which keras-hub and user layers call operations) is
    swapped, and only for the duration of one trace (not thread-safe: tracing is not
    expected to run concurrently with other Keras code)."""

    def __enter__(self):
        self.saved = {k: v for k, v in vars(keras.ops).items()
                      if callable(v) and not isinstance(v, type) and not k.startswith("_")
                      and getattr(v, "__module__", "").startswith("keras.")}
        for key, function in self.saved.items():
            setattr(keras.ops, key, _deferring(function))
        keras.ops.shape = _dynamic_shape
        return self

    def __exit__(self, *exc):
        for key, function in self.saved.items():
            setattr(keras.ops, key, function)
        return False


_DEFERRING = {}


def _deferring(function):
    """`function`, made to defer itself where a size is among its arguments (cached)."""
    if function in _DEFERRING:
        return _DEFERRING[function]

    def call(*args, **kwargs):
        if _has_size_argument(args, kwargs):
            return _deferred_class(function)()(*args, **kwargs)
        return function(*args, **kwargs)

    call.__name__ = function.__name__
    call.__doc__ = function.__doc__
    _DEFERRING[function] = call
    return call


def _dynamic_shape(x):
    shape = _SHAPE(x)
    if not isinstance(x, keras.KerasTensor) or all(s is not None for s in shape):
        return shape
    return tuple(DimensionOf(axis)(x) if s is None else s for axis, s in enumerate(shape))


class _SpecFallback:
    """While tracing: an inner custom layer whose `call` takes arguments that the Keras
    base class's `compute_output_spec` does not (keras-hub's `CachedMultiHeadAttention`
    takes `cache=`, `MultiHeadAttention.compute_output_spec` does not) gets its output spec
    from its own `call` on placeholders instead, so that calling it on symbolic inputs
    records one node (traced in turn). The instance attribute is removed afterwards."""

    def __init__(self, layer):
        self.layers = [x for x in _layers_under(layer)[1:] if _keras_spec_of_custom_call(x)]

    def __enter__(self):
        for x in self.layers:
            object.__setattr__(x, "compute_output_spec", _spec_with_fallback(x))
        return self

    def __exit__(self, *exc):
        for x in self.layers:
            object.__delattr__(x, "compute_output_spec")
        return False


def _keras_spec_of_custom_call(layer):
    """Whether `layer`'s call is written outside Keras while its `compute_output_spec`
    comes from a Keras layer class other than `Layer` (which calls `call` itself)."""
    if not is_traceable_layer(layer) or "compute_output_spec" in vars(layer):
        return False
    owner = next(c for c in type(layer).__mro__ if "compute_output_spec" in vars(c))
    return owner.__module__.startswith("keras.") and owner is not keras.layers.Layer


def _spec_with_fallback(layer):
    own = type(layer).compute_output_spec.__get__(layer)

    def compute_output_spec(*args, **kwargs):
        try:
            return own(*args, **kwargs)
        except TypeError:  # arguments the Keras class does not take
            from keras.src.backend import compute_output_spec as spec_of
            return spec_of(layer.call, *args, **kwargs)

    return compute_output_spec


def trace_call(layer, node):
    """Trace `layer.call` on fresh symbolic inputs shaped like those of its recorded call
    `node` (same non-tensor arguments, training=False where the call takes it).

    An input that carries a Keras mask (`Embedding(mask_zero=True)` upstream) is refused:
    the symbolic call does not apply the mask as the call on values does (measured with a
    MultiHeadAttention inside a custom layer: the values' mask is lost), so the layer stays
    one node, which evaluates it exactly.

    Args:
        layer: the layer.
        node: the Keras node of one recorded call of `layer`.

    Returns:
        (function, arguments, keep): a `keras.Function` from fresh inputs to the call's
        outputs (its graph holds the call's inner layers and keras.ops), the recorded
        KerasTensors those inputs stand for (in order, without repeats), and an object
        whose `restore()` removes the Keras nodes the trace added to the inner layers
        (call it once the function's graph has been read).

    Raises:
        NotTraced: the call failed on symbolic inputs, assigned variables, or gave outputs
            that are not symbolic functions of its inputs, or not the recorded ones.
    """
    arguments = []
    for kt in node.arguments.keras_tensors:
        if all(kt is not a for a in arguments):
            arguments.append(kt)
    if any(keras_mask(kt) is not None for kt in arguments):
        raise NotTraced("an input carries a Keras mask (mask_zero=True upstream), which a "
                        "symbolic call does not apply as the call on values does")
    keep = _KeepNodes(layer)
    try:
        fresh = [_symbolic_input(kt) for kt in arguments]
        args, kwargs = node.arguments.fill_in({id(a): f for a, f in zip(arguments, fresh)})
        if call_has_training_arg(layer):
            kwargs = dict(kwargs, training=False)
        with keras.StatelessScope() as scope, _SpecFallback(layer), _DynamicSizes():
            outputs = layer.call(*args, **kwargs)
        if scope.state_mapping:
            raise NotTraced("its call assigns variables (a stateful layer)")
        flat = keras.tree.flatten(outputs)
        recorded = node_outputs(node)
        if len(flat) != len(recorded):
            raise NotTraced(f"its call returned {len(flat)} tensors on symbolic inputs where "
                            f"the model recorded {len(recorded)}")
        for out, kt in zip(flat, recorded):
            if not isinstance(out, keras.KerasTensor):
                raise NotTraced("an output is not computed from its inputs by layers and "
                                "keras.ops")
            if not _compatible(out, kt):
                raise NotTraced(f"an output came out {tuple(out.shape)} {out.dtype} on "
                                f"symbolic inputs, recorded as {tuple(kt.shape)} {kt.dtype}")
        function = keras.Function(fresh, flat, name=layer.name)
    except NotTraced:
        keep.restore()
        raise
    except Exception as error:  # any failure of user code on symbolic tensors
        keep.restore()
        message = " ".join(str(error).split()) or type(error).__name__
        if len(message) > 300:
            message = message[:297] + "..."
        raise NotTraced(f"tracing its call on symbolic inputs failed ({type(error).__name__}: "
                        f"{message})") from error
    return function, arguments, keep


def without_mask(tensor):
    """`tensor` with no Keras mask attached (a layer called with `mask=` attaches one to its
    output; the reverse model's layers do not use masks and would warn)."""
    from keras.src.backend.common.masking import get_keras_mask, set_keras_mask

    try:
        if get_keras_mask(tensor) is not None:
            set_keras_mask(tensor, None)
    except (AttributeError, TypeError):  # a value that takes no attribute
        pass
    return tensor
