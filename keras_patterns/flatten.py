"""A Keras model as one flat, topologically ordered `Graph`.

Nested models are inlined (their layers become nodes of the outer graph, named with the
nested model's name as prefix), every call of a shared layer is its own node, and non-layer
operations recorded in Keras graphs (`keras.ops.relu`, `x + y`, slicing) are nodes too.
Custom layers (a `call` written outside Keras, made of layers and keras.ops, as keras-hub
writes every block) are inlined too: their `call` is traced on symbolic inputs shaped like
the recorded ones and each inner layer and operation becomes a node named with the layer's
path (`bert_backbone/transformer_layer_0/self_attention_layer/query`), recursively; a size
that is None on symbolic inputs is a value of the graph (`_keras.DimensionOf`), so the graph
fits every batch size and sequence length. A custom layer registered with
`roles.register_layer` keeps its registered role (for the calls its role covers). Keras'
attention layers (`_keras.TRACED_KERAS_LAYERS`) are traced the same way. A layer whose call
cannot be traced stays one node, opaque, whose `why` says what failed. A subclassed model nested in
a functional one stays one node (only its gradient is known); a subclassed model on its own
is wrapped into a one-node graph (`wrap_model`).
"""

import re

import keras
from keras import tree

from . import _keras, roles
from .errors import NotAnalyzableModelError
from .graph import OPAQUE, Graph, Node, Tensors, UniqueNames


class _Flattener:
    def __init__(self):
        self.nodes = []
        self.tensors = Tensors()
        self.names = UniqueNames()
        self.calls = []  # layer-call names in call order

    def inline(self, model, inputs, prefix, traced=False):
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
            out_kts = _keras.node_outputs(knode)
            if _keras.is_model(op) and _keras.has_functional_graph(op):
                sub_outputs = self.inline(op, [env[id(kt)] for kt in arg_kts],
                                          f"{prefix}{op.name}/")
                if len(out_kts) != len(sub_outputs):
                    raise NotAnalyzableModelError(
                        f"Nested model '{op.name}' returned {len(sub_outputs)} tensors where "
                        f"its call recorded {len(out_kts)}."
                    )
                for kt, t in zip(out_kts, sub_outputs):
                    env[id(kt)] = t
                continue
            why, role = None, None
            entry = roles.layer_role(op) if isinstance(op, keras.layers.Layer) else None
            uncovered = entry is not None and not entry.covers_call(*_keras.call_arguments(knode))
            if uncovered or (entry is None and _keras.is_traceable_layer(op)):
                why = self.inline_layer(knode, op, env, prefix)
                if why is None:
                    continue
            if uncovered:
                role = roles.OPAQUE
                why = f"its role {entry.role!r} does not describe this call of it, and {why}"
            self.add_node(knode, env, prefix, why, traced, role)
        return [env[id(kt)] for kt in tree.flatten(functional.outputs)]

    def add_node(self, knode, env, prefix, why=None, traced=False, role=None):
        """Add one recorded Keras call as a node; its arguments have values in `env`.

        In a traced call (`traced`) a `keras.ops` operation is created anew by every trace,
        with a name Keras numbers globally (`einsum_4`); its node is named by the operation
        alone (`einsum`, numbered within the graph), so that names do not depend on how
        often the layer was traced before."""
        op, arg_kts = knode.operation, _keras.node_argument_tensors(knode)
        out_kts = _keras.node_outputs(knode)
        base = op.name
        if traced and not isinstance(op, keras.layers.Layer):
            base = re.sub(r"_\d+$", "", base)
        name = self.names.claim(prefix + base)
        inputs_unique = []
        for kt in arg_kts:
            t = env[id(kt)]
            if all(t is not u for u in inputs_unique):
                inputs_unique.append(t)
        outputs = []
        for j, kt in enumerate(out_kts):
            t = self.tensors.new(kt, name if len(out_kts) == 1 else f"{name}:{j}")
            env[id(kt)] = t
            outputs.append(t)
        index_of = {
            id(kt): next(i for i, u in enumerate(inputs_unique) if u is env[id(kt)])
            for kt in arg_kts
        }
        forward = _call_forward(knode, op, index_of)
        slots = tuple(index_of[id(kt)] for kt in arg_kts)
        self.nodes.append(Node(name, op, inputs_unique, outputs, forward, layer_name=name,
                               why=why, slots=slots,
                               **({} if role is None else {"role": role})))
        self.calls.append(name)

    def inline_layer(self, knode, layer, env, prefix):
        """Inline one call of a custom layer (its traced `call`) under `prefix<name>/`.

        Returns None when inlined, else why the layer stays one node.
        """
        try:
            function, arguments, keep = _keras.trace_call(layer, knode)
        except _keras.NotTraced as error:
            return (f"its call could not be traced into layers and keras.ops: {error} "
                    "(keras_patterns.roles.register_layer gives a layer class its role)")
        try:
            outputs = self.inline(function, [env[id(kt)] for kt in arguments],
                                  f"{prefix}{layer.name}/", traced=True)
        finally:
            keep.restore()
        for kt, t in zip(_keras.node_outputs(knode), outputs):
            env[id(kt)] = t
        return None


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


def flatten(model):
    """Flatten `model` (Sequential or Functional, nested at any depth) into a `Graph`."""
    functional = _keras.functional_of(model)
    flattener = _Flattener()
    inputs = [
        flattener.tensors.new(kt, kt.name or f"input_{i}")
        for i, kt in enumerate(tree.flatten(functional.inputs))
    ]
    outputs = flattener.inline(model, inputs, "")
    return Graph(inputs, outputs, flattener.nodes, layer_order=flattener.calls)


def wrap_model(model, arrays):
    """A graph of one node around a model without a functional graph (a subclassed model),
    with input specs taken from the arrays of a first batch: only methods that need nothing
    but the model's gradient can explain it (a plain tape)."""
    tensors = Tensors()
    inputs = []
    for i, x in enumerate(arrays):
        dtype = "float32" if x.dtype.kind == "f" else "int32"
        spec = keras.KerasTensor((None,) + tuple(x.shape[1:]), dtype=dtype)
        inputs.append(tensors.new(spec, f"input_{i}"))

    def forward(values):
        return tree.flatten(model(values[0] if len(values) == 1 else list(values),
                                  training=False))

    probe = [keras.ops.convert_to_tensor(x[:1], t.dtype) for x, t in zip(arrays, inputs)]
    outputs = [tensors.new(keras.KerasTensor((None,) + tuple(y.shape[1:]), dtype=y.dtype),
                           f"{model.name}:{j}")
               for j, y in enumerate(forward(probe))]
    node = Node(model.name, model, inputs, outputs, forward, role=OPAQUE,
                layer_name=model.name, why="it is a subclassed model")
    return Graph(inputs, outputs, [node], layer_order=[model.name])
