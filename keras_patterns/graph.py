"""A Keras model as one flat, topologically ordered list of nodes.

Nested models are inlined (their layers become nodes of the outer graph, named with the
nested model's name as prefix), every call of a shared layer is its own node, and non-layer
operations recorded in Keras graphs (`keras.ops.relu`, `x + y`, slicing) are nodes too.
Each node can be evaluated on real tensors with `node.forward(values)`.
"""

from dataclasses import dataclass, field
from typing import Any, Callable

import keras
from keras import tree

from . import _keras, kinds
from .errors import NotAnalyzableModelError


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

    def __repr__(self):
        return f"Tensor({self.name}, shape={self.shape}, dtype={self.dtype})"


@dataclass(eq=False)
class Node:
    """One forward operation of the flattened graph.

    `op` is the Keras layer or operation behind the node (for display, rule choice and
    variables); `forward(values)` maps the values of `inputs` to the values of `outputs`.
    `role` is set by canonization for the parts a kernel layer is split into.
    """

    name: str
    op: Any
    inputs: list
    outputs: list
    forward: Callable
    role: str = "layer"
    info: dict = field(default_factory=dict)

    @property
    def layer_class(self):
        return type(self.op).__name__

    def __repr__(self):
        ins = ", ".join(t.name for t in self.inputs)
        outs = ", ".join(t.name for t in self.outputs)
        return f"Node({self.name}: {self.layer_class}[{self.role}] ({ins}) -> ({outs}))"


class Graph:
    """Inputs, outputs and nodes (in an order where producers precede consumers)."""

    #: names of the model's layers in call order, set by `canonize.prepare` (LRP positions)
    layer_order = ()

    def __init__(self, inputs, outputs, nodes):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.nodes = list(nodes)

    def consumers(self, tensor):
        """The nodes that take `tensor` as an input, in graph order."""
        return [n for n in self.nodes if any(t is tensor for t in n.inputs)]

    def evaluate(self, xs):
        """The graph's outputs for the input values `xs` (tensors)."""
        values = {t.index: x for t, x in zip(self.inputs, xs)}
        for node in self.nodes:
            outs = node.forward([values[t.index] for t in node.inputs])
            for t, v in zip(node.outputs, outs):
                values[t.index] = v
        return [values[t.index] for t in self.outputs]

    def input_chain(self, node):
        """The nodes between a model input and `node` when only element-wise affine maps
        (Rescaling, Normalization, ...) and routing maps (reshapes, padding, dropout) lie
        between them, inputs first: `node` is then an input layer. None otherwise."""
        chain, tensor = [], node.inputs[0]
        while True:
            producer = self.producer(tensor)
            if producer is None:
                return chain[::-1]
            if len(producer.inputs) != 1 or not (
                    producer.role == "affine"
                    or producer.role == "linear" and not kinds.is_summing(producer.op)):
                return None
            chain.append(producer)
            tensor = producer.inputs[0]

    def producer(self, tensor):
        for node in self.nodes:
            if any(t is tensor for t in node.outputs):
                return node
        return None

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
        return Graph(self.inputs, [out], self.ancestors_of([out]))

    def replace(self, node, new_nodes, new_output=None):
        """A graph where `node` is replaced by `new_nodes` (for canonization)."""
        i = self.nodes.index(node)
        nodes = self.nodes[:i] + list(new_nodes) + self.nodes[i + 1 :]
        return Graph(self.inputs, self.outputs, nodes)

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


class _Flattener:
    def __init__(self):
        self.nodes = []
        self.count = 0
        self.names = UniqueNames()

    def tensor(self, spec, name):
        t = Tensor(self.count, spec, name)
        self.count += 1
        return t

    def inline(self, model, inputs, prefix):
        functional = _keras.functional_of(model)
        model_inputs = tree.flatten(functional.inputs)
        if len(model_inputs) != len(inputs):
            raise NotAnalyzableModelError(
                f"Model '{model.name}' expects {len(model_inputs)} inputs, got {len(inputs)}."
            )
        env = {id(kt): t for kt, t in zip(model_inputs, inputs)}
        for knode in _keras.topological_nodes(functional):
            op = knode.operation
            arg_kts = _keras.node_argument_tensors(knode)
            if any(id(kt) not in env for kt in arg_kts):
                continue  # not connected to the inputs
            if _keras.is_model(op) and _keras.has_functional_graph(op):
                sub_inputs = [env[id(kt)] for kt in arg_kts]
                sub_outputs = self.inline(op, sub_inputs, f"{prefix}{op.name}/")
                out_kts = _keras.node_outputs(knode)
                if len(out_kts) != len(sub_outputs):
                    raise NotAnalyzableModelError(
                        f"Nested model '{op.name}' returned {len(sub_outputs)} tensors where "
                        f"its call recorded {len(out_kts)}."
                    )
                for kt, t in zip(out_kts, sub_outputs):
                    env[id(kt)] = t
                continue
            name = self.names.claim(prefix + op.name)
            inputs_unique = []
            for kt in arg_kts:
                t = env[id(kt)]
                if all(t is not u for u in inputs_unique):
                    inputs_unique.append(t)
            outputs = []
            for j, kt in enumerate(_keras.node_outputs(knode)):
                suffix = "" if len(knode.outputs) == 1 else f":{j}"
                t = self.tensor(kt, name + suffix)
                env[id(kt)] = t
                outputs.append(t)
            index_of = {
                id(kt): next(i for i, u in enumerate(inputs_unique) if u is env[id(kt)])
                for kt in arg_kts
            }
            forward = _call_forward(knode, op, index_of)
            self.nodes.append(Node(name, op, inputs_unique, outputs, forward))
        return [env[id(kt)] for kt in tree.flatten(functional.outputs)]


def _call_forward(knode, op, index_of):
    """Evaluate one recorded Keras call on real tensors, in inference mode.

    `index_of` maps `id(KerasTensor)` of each call argument to its position in the node's
    input values.
    """
    training = _keras.call_has_training_arg(op)

    def forward(values):
        filled = {kid: values[i] for kid, i in index_of.items()}
        args, kwargs = _keras.node_call_values(knode, filled)
        if training:
            kwargs = dict(kwargs, training=False)
        return tree.flatten(op(*args, **kwargs))

    return forward


def wrap_model(model, arrays):
    """A graph of one node around a model without a functional graph (a subclassed model),
    with input specs taken from the arrays of a first batch: only methods that need nothing
    but the model's gradient can explain it (a plain tape)."""
    flattener = _Flattener()
    inputs = []
    for i, x in enumerate(arrays):
        dtype = "float32" if x.dtype.kind == "f" else "int32"
        spec = keras.KerasTensor((None,) + tuple(x.shape[1:]), dtype=dtype)
        inputs.append(flattener.tensor(spec, f"input_{i}"))

    def forward(values):
        return tree.flatten(model(values[0] if len(values) == 1 else list(values),
                                  training=False))

    probe = [keras.ops.convert_to_tensor(x[:1], t.dtype) for x, t in zip(arrays, inputs)]
    outputs = [flattener.tensor(keras.KerasTensor((None,) + tuple(y.shape[1:]), dtype=y.dtype),
                                f"{model.name}:{j}")
               for j, y in enumerate(forward(probe))]
    node = Node(model.name, model, inputs, outputs, forward, role="opaque",
                info={"layer_name": model.name, "why": "it is a subclassed model"})
    return Graph(inputs, outputs, [node])


def flatten(model):
    """Flatten `model` (Sequential or Functional, nested at any depth) into a `Graph`."""
    functional = _keras.functional_of(model)
    flattener = _Flattener()
    inputs = [
        flattener.tensor(kt, kt.name or f"input_{i}")
        for i, kt in enumerate(tree.flatten(functional.inputs))
    ]
    outputs = flattener.inline(model, inputs, "")
    return Graph(inputs, outputs, flattener.nodes)
