"""Canonization: rewrite the flat graph into nodes the rules understand.

- A kernel layer becomes one ``kernel`` node per kernel map (y = W^T x + b), followed by an
  ``activation`` node when its activation is not linear. A SeparableConv becomes its
  depthwise map, then its pointwise map with the bias.
- Every other node gets its kind (see `kinds.py`); an unknown layer is refused.
- A final softmax is removed (with a warning) so that the logits are explained.
- Optionally (`fold_batchnorm`), an inference-mode BatchNormalization that directly follows a
  kernel map is folded into it, so that rules and patterns see the effective linear map.
"""

import keras

from . import kinds
from ._warn import warn
from .graph import Graph, Node, Tensor, flatten
from .kernels import FoldedMap, kernel_maps


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


def opaque(node, why):
    """A node with no rule of its own: only methods that need nothing but its gradient
    (the gradient family) can reverse it; `why` says what the others lack."""
    return Node(node.name, node.op, node.inputs, node.outputs, node.forward, "opaque",
                dict(node.info, layer_name=node.name, why=why))


def _activation_forward(fn):
    def forward(values):
        return [fn(values[0])]

    return forward


class _Canonizer:
    def __init__(self, graph):
        self.graph = graph
        self.count = 1 + max(
            [t.index for n in graph.nodes for t in n.outputs] + [t.index for t in graph.inputs]
        )

    def tensor(self, spec, name):
        t = Tensor(self.count, spec, name)
        self.count += 1
        return t

    def split_kernel_layer(self, node, maps):
        layer = node.op
        activation = getattr(layer, "activation", None)
        family = kinds.activation_family(activation) if activation is not None else "linear"
        if family is None:
            name = getattr(activation, "__name__", activation)
            return [opaque(node, f"its activation {name!r} is not one keras-patterns knows "
                                 "(use one of keras.activations)")]
        out = []
        x = node.inputs[0]
        for k, kmap in enumerate(maps):
            last = k == len(maps) - 1
            if last and family == "linear":
                y = node.outputs[0]
            elif last:
                y = self.tensor(node.outputs[0].spec, node.name + ".preactivation")
            else:
                fresh = keras.KerasTensor(x.spec.shape, dtype=x.spec.dtype)
                y = self.tensor(kmap(fresh), f"{node.name}.{kmap.attr}")
            name = node.name if len(maps) == 1 else f"{node.name}.{kmap.attr}"
            out.append(
                Node(
                    name,
                    layer,
                    [x],
                    [y],
                    _kernel_forward(kmap),
                    role="kernel",
                    info={"kernel_map": kmap, "layer_name": node.name},
                )
            )
            x = y
        if family != "linear":
            out.append(
                Node(
                    node.name + ".activation",
                    layer,
                    [x],
                    [node.outputs[0]],
                    _activation_forward(activation),
                    role="activation",
                    info={"family": family, "layer_name": node.name,
                          "activation_name": kinds.describe_activation(
                              kinds.activation_name(activation), family)},
                )
            )
        return out

    def run(self):
        nodes = []
        for node in self.graph.nodes:
            maps = kernel_maps(node.op) if isinstance(node.op, keras.layers.Layer) else None
            if maps:
                nodes.extend(self.split_kernel_layer(node, maps))
                continue
            kind = kinds.kind_of(node.op)
            if kind is None:
                nodes.append(opaque(node, "it is not a layer kind keras-patterns knows how to "
                                          "reverse"))
                continue
            info = dict(node.info, layer_name=node.name)
            if kind == "activation":
                info["family"] = kinds.layer_activation_family(node.op)
                if info["family"] is None:
                    nodes.append(opaque(node, "its activation is not one keras-patterns knows"))
                    continue
                info["activation_name"] = kinds.describe_activation(
                    kinds.layer_activation_name(node.op), info["family"])
            nodes.append(
                Node(node.name, node.op, node.inputs, node.outputs, node.forward, kind, info)
            )
        return Graph(self.graph.inputs, self.graph.outputs, nodes)


def canonize(graph):
    """Split kernel layers and classify every node; unknown layers become "opaque"."""
    return _Canonizer(graph).run()


def strip_softmax(graph):
    """Remove a softmax that produces the (single) output, with a warning."""
    (out,) = graph.outputs
    last = graph.producer(out)
    if last is None or last.role != "activation" or last.info.get("family") != "softmax":
        return graph
    warn(
        f"The model ends in a softmax ('{last.name}'); it is removed so that the logits "
        "(the softmax input) are explained."
    )
    new_out = last.inputs[0]
    nodes = [n for n in graph.nodes if n is not last]
    return Graph(graph.inputs, [new_out], nodes).select_output(0)


def _batchnorm_axis(bn, rank):
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    return None if axis is None else axis % rank


def fold_batchnorm(graph):
    """Fold every BatchNormalization that directly follows a kernel map into that map.

    Folded when the kernel map's output feeds only the BatchNormalization, which normalises
    the map's channel axis; other BatchNormalization layers stay affine nodes.
    """
    consumers = {}
    for node in graph.nodes:
        for t in node.inputs:
            consumers.setdefault(t.index, []).append(node)
    outputs = {t.index for t in graph.outputs}
    nodes = list(graph.nodes)
    for bn in graph.nodes:
        if not (bn.role == "affine" and type(bn.op) is keras.layers.BatchNormalization):
            continue
        (x,) = bn.inputs
        kernel = graph.producer(x)
        if kernel is None or kernel.role != "kernel" or x.index in outputs:
            continue
        if len(consumers.get(x.index, [])) != 1:
            continue
        kmap = kernel.info["kernel_map"]
        if isinstance(kmap, FoldedMap) or not kmap.with_bias:
            continue
        rank = len(x.shape)
        if _batchnorm_axis(bn.op, rank) != kmap.channel_axis % rank:
            continue
        folded = FoldedMap(kmap, bn.op)
        node = Node(kernel.name, kernel.op, kernel.inputs, bn.outputs, _kernel_forward(folded),
                    role="kernel", info=dict(kernel.info, kernel_map=folded,
                                             batchnorm_name=bn.name))
        nodes[nodes.index(kernel)] = node
        nodes.remove(bn)
    return Graph(graph.inputs, graph.outputs, nodes)


def prepare(model, output_index=None, fold=False):
    """The canonized graph of `model` with one output (softmax stripped), BatchNorm folded
    into the kernel maps before it when `fold`."""
    flat = flatten(model)
    graph = canonize(flat).select_output(output_index)
    if fold:
        graph = fold_batchnorm(graph)
    graph = strip_softmax(graph)
    #: the model's layers in call order (nested models inlined, inputs not counted)
    graph.layer_order = list(dict.fromkeys(node.name for node in flat.nodes))
    return graph
