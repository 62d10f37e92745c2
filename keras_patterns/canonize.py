"""Canonization: rewrite the flat graph into nodes the reverse layers understand.

- A kernel layer becomes one `KERNEL` node per kernel map (y = W^T x + b), followed by an
  `ACTIVATION` node when its activation is not the identity. A SeparableConv becomes its
  depthwise map, then its pointwise map with the bias.
- Every other node gets its role (see `roles`); a layer without one becomes `OPAQUE`.
- An operation whose value does not depend on any floating-point value (its inputs are all
  integer or `CONSTANT`, or its outputs are all integer) is `CONSTANT`: causal masks and
  position values computed from sizes, casts of padding masks.
- A final softmax is removed (with a warning) so that the logits are explained.
- Optionally (`fold_batchnorm`), an inference-mode BatchNormalization that directly follows a
  kernel map is folded into it, so that rules and patterns see the effective linear map.
"""

import dataclasses

import keras

from . import roles
from ._warn import warn
from .errors import NotAnalyzableModelError
from .flatten import flatten
from .graph import ACTIVATION, AFFINE, CONSTANT, KERNEL, OPAQUE, Node, Tensors
from .kernels import FoldedMap


def _kernel_forward(kmap):
    def forward(values):
        y = kmap(values[0])
        bias = kmap.bias
        if bias is not None:
            # keras.ops.add, as in the Keras layers: its TensorFlow version may choose the
            # bias axis by shape (a channels_first output whose last axis has as many
            # entries as channels gets the bias on the last axis); replay it exactly.
            y = keras.ops.add(y, kmap.broadcast(bias, len(y.shape)))
        return [y]

    return forward


def _activation_forward(fn):
    def forward(values):
        return [fn(values[0])]

    return forward


def _opaque(node, why):
    """A node without a rule of its own: only methods that need nothing but its gradient
    (the gradient family) can reverse it; `why` says what the others lack."""
    return dataclasses.replace(node, role=OPAQUE, why=why)


def _split_kernel_layer(node, maps, tensors):
    layer = node.op
    activation = getattr(layer, "activation", None)
    family = roles.activation_family(activation) if activation is not None else "identity"
    if family is None:
        name = getattr(activation, "__name__", activation)
        return [_opaque(node, f"its activation {name!r} is not one keras-patterns knows "
                              "(use one of keras.activations)")]
    out = []
    x = node.inputs[0]
    for k, kmap in enumerate(maps):
        last = k == len(maps) - 1
        if last and family == "identity":
            y = node.outputs[0]
        elif last:
            y = tensors.new(node.outputs[0].spec, node.name + ".preactivation")
        else:
            fresh = keras.KerasTensor(x.spec.shape, dtype=x.spec.dtype)
            y = tensors.new(kmap(fresh), f"{node.name}.{kmap.attr}")
        name = node.name if len(maps) == 1 else f"{node.name}.{kmap.attr}"
        out.append(Node(name, layer, [x], [y], _kernel_forward(kmap), role=KERNEL,
                        layer_name=node.name, kernel_map=kmap))
        x = y
    if family != "identity":
        out.append(Node(
            node.name + ".activation", layer, [x], [node.outputs[0]],
            _activation_forward(activation), role=ACTIVATION, layer_name=node.name,
            family=family,
            activation=roles.describe_activation(roles.activation_name(activation), family)))
    return out


def _is_constant(node, constant):
    """Whether an operation's value depends on no floating-point value of the graph:
    its inputs are integer or constant, or its outputs are integer (a comparison)."""
    if isinstance(node.op, keras.layers.Layer):
        return False
    return (all(t.index in constant for t in node.inputs)
            or not any(t.is_floating for t in node.outputs))


def canonize(graph):
    """Split kernel layers and give every node its role; unknown layers become OPAQUE."""
    tensors = Tensors.after(graph)
    nodes = []
    constant = {t.index for t in graph.inputs if not t.is_floating}
    for node in graph.nodes:
        constant.update(t.index for t in node.outputs if not t.is_floating)
        if node.role == OPAQUE:  # flatten found no rule for this call
            nodes.append(node)
            continue
        if _is_constant(node, constant) or roles.role_of(node.op) == CONSTANT:
            constant.update(t.index for t in node.outputs)
            nodes.append(dataclasses.replace(node, role=CONSTANT))
            continue
        try:
            maps = roles.kernel_maps(node.op) if isinstance(node.op, keras.layers.Layer) else None
        except NotAnalyzableModelError as error:  # a kernel layer of an unsupported form
            nodes.append(_opaque(node, getattr(error, "why", str(error))))
            continue
        if maps:
            nodes.extend(_split_kernel_layer(node, maps, tensors))
            continue
        role = roles.role_of(node.op)
        if role is None:
            nodes.append(_opaque(node, node.why or "it is not a layer keras-patterns knows how "
                                       "to reverse (keras_patterns.roles.register_layer gives "
                                       "a layer class its role)"))
            continue
        if role != ACTIVATION:
            nodes.append(dataclasses.replace(node, role=role))
            continue
        family = roles.layer_activation_family(node.op)
        if family is None:
            nodes.append(_opaque(node, "its activation is not one keras-patterns knows"))
            continue
        nodes.append(dataclasses.replace(
            node, role=ACTIVATION, family=family,
            activation=roles.describe_activation(roles.layer_activation_name(node.op),
                                                 family)))
    return graph.with_nodes(nodes)


def strip_softmax(graph):
    """Remove a softmax that produces the (single) output, with a warning."""
    (out,) = graph.outputs
    last = graph.producer(out)
    if last is None or last.role != ACTIVATION or roles.softmax_output(last.op, log=True) is None:
        return graph
    warn(
        f"The model ends in a softmax ('{last.name}'); it is removed so that the logits "
        "(the softmax input) are explained."
    )
    new_out = last.inputs[0]
    nodes = [n for n in graph.nodes if n is not last]
    return graph.with_nodes(nodes, [new_out]).select_output(0)


def _batchnorm_axis(bn, rank):
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    return None if axis is None else axis % rank


def fold_batchnorm(graph):
    """Fold every BatchNormalization that directly follows a kernel map into that map.

    Folded when the kernel map's output feeds only the BatchNormalization, which normalises
    the map's channel axis; other BatchNormalization layers stay affine nodes.
    """
    outputs = {t.index for t in graph.outputs}
    nodes = list(graph.nodes)
    for bn in graph.nodes:
        if not (bn.role == AFFINE and type(bn.op) is keras.layers.BatchNormalization):
            continue
        (x,) = bn.inputs
        kernel = graph.producer(x)
        if kernel is None or kernel.role != KERNEL or x.index in outputs:
            continue
        if len(graph.consumers(x)) != 1:
            continue
        kmap = kernel.kernel_map
        if kmap.batchnorm is not None or not kmap.with_bias or kmap.channel_axis is None:
            continue
        rank = len(x.shape)
        if _batchnorm_axis(bn.op, rank) != kmap.channel_axis % rank:
            continue
        folded = FoldedMap(kmap, bn.op)
        nodes[nodes.index(kernel)] = dataclasses.replace(
            kernel, outputs=bn.outputs, forward=_kernel_forward(folded), kernel_map=folded,
            batchnorm=bn.name)
        nodes.remove(bn)
    return graph.with_nodes(nodes)


def prepare(model, output_index=None, fold=False):
    """The canonized graph of `model` with one output (softmax stripped), BatchNorm folded
    into the kernel maps before it when `fold`."""
    graph = canonize(flatten(model)).select_output(output_index)
    if fold:
        graph = fold_batchnorm(graph)
    return strip_softmax(graph)

