"""The flattened graph every method works on: tensors, typed nodes, and the questions the
methods ask about them.

A `Graph` is a model's inputs, outputs and nodes in an order where producers precede
consumers (`flatten.flatten` builds it, `canonize` splits kernel layers and gives every node
its role). Each node can be evaluated on real tensors with `node.forward(values)`.
"""

from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import roles
from .errors import NotAnalyzableModelError
from .roles import (  # noqa: F401 - the roles, re-exported with the graph they describe
    ACTIVATION,
    AFFINE,
    ATTENTION,
    CONSTANT,
    EMBEDDING,
    FIXED_LINEAR,
    KERNEL,
    LAYER,
    MAX_POOL,
    NONLINEAR,
    NORM,
    OPAQUE,
    PRODUCT,
    SCALE,
)


def is_floating(dtype):
    """Whether a dtype (a string, a numpy, TensorFlow or Keras dtype) is floating point."""
    return "float" in str(getattr(dtype, "name", dtype))


class Tensor:
    """One value of the flattened graph. `spec` is a KerasTensor giving shape and dtype."""

    __slots__ = ("index", "spec", "name")

    def __init__(self, index, spec, name):
        self.index = index
        self.spec = spec
        self.name = name

    @property
    def shape(self):
        return tuple(self.spec.shape)

    @property
    def dtype(self):
        return self.spec.dtype

    @property
    def is_floating(self):
        return is_floating(self.dtype)

    def __repr__(self):
        return f"Tensor({self.name}, shape={self.shape}, dtype={self.dtype})"


class Tensors:
    """Allocates the graph's tensors, numbered from `start`."""

    def __init__(self, start=0):
        self.count = start

    def new(self, spec, name):
        t = Tensor(self.count, spec, name)
        self.count += 1
        return t

    @classmethod
    def after(cls, graph):
        """An allocator whose tensors do not collide with `graph`'s."""
        used = [t.index for t in graph.inputs] + [t.index for n in graph.nodes
                                                  for t in n.outputs]
        return cls(1 + max(used))


@dataclass(eq=False)
class Node:
    """One forward operation of the flattened graph.

    Attributes:
        name: unique within the graph (the parts of a split kernel layer get suffixes).
        op: the Keras layer or operation behind the node (display, variables).
        inputs, outputs: its `Tensor`s.
        forward: maps the values of `inputs` to the values of `outputs`.
        role: one of the roles of `roles` (re-exported here).
        layer_name: name of the Keras layer's node the node comes from (the parts of a
            split kernel layer share it).
        kernel_map: the kernel map of a `KERNEL` node (`kernels`).
        family: an `ACTIVATION` node's activation family (`roles.FAMILIES`: "relu",
            "identity", "tanh", ...).
        activation: its activation for messages ("'hard_silu' (swish family)").
        batchnorm: name of the BatchNormalization folded into a `KERNEL` node, or None.
        why: why an `OPAQUE` node has no rule (for messages).
        slots: for each tensor argument of the recorded call, in call order, the position
            of its value in `inputs` (a tensor passed twice, as in x * x, has two slots);
            None where unknown.
    """

    name: str
    op: Any
    inputs: list
    outputs: list
    forward: Callable
    role: str = LAYER
    layer_name: Optional[str] = None
    kernel_map: Any = None
    family: Optional[str] = None
    activation: Optional[str] = None
    batchnorm: Optional[str] = None
    why: Optional[str] = None
    slots: Optional[tuple] = None

    @property
    def layer_class(self):
        return type(self.op).__name__

    @property
    def source(self):
        """The Keras layer's node name (`layer_name`, else the node's own)."""
        return self.layer_name or self.name

    @property
    def is_rectifier(self):
        return self.role == ACTIVATION and self.family == "relu"

    @property
    def is_routing(self):
        """Whether the node is a map without parameters that moves values without adding any
        (reshapes, padding, dropout, nearest upsampling, slicing)."""
        return (self.role == FIXED_LINEAR and len(self.inputs) == 1
                and not roles.is_summing(self.op))

    @property
    def is_sum(self):
        """Whether the node is a map without parameters that adds values (Add, average
        pooling, ...)."""
        return self.role == FIXED_LINEAR and roles.is_summing(self.op)

    def __repr__(self):
        ins = ", ".join(t.name for t in self.inputs)
        outs = ", ".join(t.name for t in self.outputs)
        return f"Node({self.name}: {self.layer_class}[{self.role}] ({ins}) -> ({outs}))"


class Graph:
    """Inputs, outputs and nodes (in an order where producers precede consumers).

    Args:
        inputs, outputs: the model's input and output `Tensor`s.
        nodes: the `Node`s, producers before consumers.
        layer_order: names of the model's layer calls in call order (nested models
            inlined, inputs not counted): the positions LRP composites and
            `until_layer_idx` count.
    """

    def __init__(self, inputs, outputs, nodes, layer_order=()):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.nodes = list(nodes)
        self.layer_order = list(layer_order)

    def with_nodes(self, nodes, outputs=None):
        """The same graph with other nodes (and outputs)."""
        return Graph(self.inputs, self.outputs if outputs is None else outputs, nodes,
                     self.layer_order)

    # -- structure ---------------------------------------------------------------------

    def producer(self, tensor):
        """The node that computes `tensor`, or None for a model input."""
        for node in self.nodes:
            if any(t is tensor for t in node.outputs):
                return node
        return None

    def consumers(self, tensor):
        """The nodes that take `tensor` as an input, in graph order."""
        return [n for n in self.nodes if any(t is tensor for t in n.inputs)]

    def kernel_nodes(self):
        return [n for n in self.nodes if n.role == KERNEL]

    def ancestors_of(self, tensors):
        """The nodes that `tensors` depend on, in graph order."""
        needed = {t.index for t in tensors}
        keep = []
        for node in reversed(self.nodes):
            if any(t.index in needed for t in node.outputs):
                keep.append(node)
                needed.update(t.index for t in node.inputs)
        return keep[::-1]

    def select_output(self, output_index=None):
        """A graph with one output, pruned to the nodes that output depends on."""
        if output_index is None:
            if len(self.outputs) != 1:
                raise NotAnalyzableModelError(
                    f"The model has {len(self.outputs)} outputs "
                    f"({', '.join(t.name for t in self.outputs)}); choose the one to explain "
                    "with output_index=."
                )
            output_index = 0
        if not isinstance(output_index, int) or not -len(self.outputs) <= output_index < len(
            self.outputs
        ):
            raise NotAnalyzableModelError(
                f"output_index={output_index!r} is out of range: the model has "
                f"{len(self.outputs)} output(s)."
            )
        out = self.outputs[output_index]
        return self.with_nodes(self.ancestors_of([out]), [out])

    def position(self, node):
        """The index of the node's Keras layer call in `layer_order`, or None."""
        return self.layer_order.index(node.source) if node.source in self.layer_order else None

    # -- questions the methods ask -----------------------------------------------------

    def only_rectifiers_consume(self, node):
        """Whether the node's output feeds rectifiers only: its negative regime is blocked
        (no signal, no relevance passes there)."""
        consumers = self.consumers(node.outputs[0])
        return bool(consumers) and all(n.is_rectifier for n in consumers)

    def input_chain(self, node):
        """The nodes between a model input and `node` when only element-wise affine maps
        (Rescaling, Normalization, ...) and routing maps (reshapes, padding, dropout) lie
        between them, inputs first: `node` is then an input layer. None otherwise."""
        chain, tensor = [], node.inputs[0]
        while True:
            producer = self.producer(tensor)
            if producer is None:
                return chain[::-1]
            if not (producer.is_routing or producer.role == AFFINE and len(producer.inputs) == 1):
                return None
            chain.append(producer)
            tensor = producer.inputs[0]

    def is_input_layer(self, node):
        """Fed by a model input through element-wise affine and routing nodes only."""
        return self.input_chain(node) is not None

    def is_nonnegative(self, tensor):
        """Whether `tensor` is >= 0 by construction: out of a rectifier (without a negative
        threshold), then pooled, routed or summed (not subtracted)."""
        producer = self.producer(tensor)
        if producer is None:
            return False
        if producer.role == ACTIVATION:
            threshold = getattr(producer.op, "threshold", 0.0) or 0.0
            return producer.family == "relu" and threshold >= 0
        if producer.role == MAX_POOL or producer.is_routing or (
                producer.is_sum and producer.layer_class not in ("Subtract", "Negative")):
            return all(self.is_nonnegative(t) for t in producer.inputs)
        return False

    def first_non_rectifier(self):
        """The first activation node that is neither a rectifier nor the identity, or None."""
        for node in self.nodes:
            if node.role == ACTIVATION and node.family not in ("relu", "identity"):
                return node
        return None

    # -- values ------------------------------------------------------------------------

    def evaluate(self, xs, seen=None):
        """The graph's outputs for the input values `xs` (tensors); `seen(tensor, value)`,
        if given, is called with each node output as it is computed (before its consumers
        read it: a `tf.GradientTape` can watch it there)."""
        values = {t.index: x for t, x in zip(self.inputs, xs)}
        for node in self.nodes:
            outs = node.forward([values[t.index] for t in node.inputs])
            for t, v in zip(node.outputs, outs):
                values[t.index] = v
                if seen is not None:
                    seen(t, v)
        return [values[t.index] for t in self.outputs]

    def __repr__(self):
        lines = [f"Graph(inputs={self.inputs}, outputs={self.outputs})"]
        lines += [f"  {n!r}" for n in self.nodes]
        return "\n".join(lines)


class UniqueNames:
    """Names made unique by construction: a name already taken gets the first free suffix
    _1, _2, ... (also where a layer of the model already bears the suffixed name)."""

    def __init__(self):
        self.taken = set()

    def claim(self, name):
        candidate, k = name, 0
        while candidate in self.taken:
            k += 1
            candidate = f"{name}_{k}"
        self.taken.add(candidate)
        return candidate
