"""Identity of a model's kernel maps: the key of each map's patterns, keys that survive
Keras' automatic layer names, fingerprints of the architecture and of the weights, and a
cheap sampled checksum of the weights."""

import hashlib
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf


def pattern_keys(graph):
    """A key per kernel node: the layer name (plus the kernel attribute for the two halves of a
    separable convolution). Calls of one shared layer share the key and the pattern."""
    keys, owner = {}, {}
    for node in graph.kernel_nodes():
        kmap = node.kernel_map
        base = node.op.name
        # a shared layer folded with different BatchNormalizations maps differently per call
        who = (id(node.op), id(kmap.batchnorm))
        if owner.setdefault(base, who) != who:
            base = "/".join(node.source.split("/")[:-1] + [node.op.name])
            if kmap.batchnorm is not None:
                base = f"{base}+{kmap.batchnorm.name}"
        keys[node] = base if kmap.attr == "kernel" else f"{base}.{kmap.attr}"
    return keys


class KernelEntry(NamedTuple):
    """One kernel map of a model's `layout`.

    Attributes:
        stable_key: the map's position and class ("0003_Conv2D_kernel", "_bn" where a
            BatchNormalization is folded in): the same across runs, used in files.
        key: its pattern key (`pattern_keys`).
        kernel_map: the kernel map (`kernels.KernelMap` or `kernels.FoldedMap`).
    """

    stable_key: str
    key: str
    kernel_map: Any


def layout(graph, keys=None):
    """The kernel maps of `graph` in graph order, one `KernelEntry` per pattern key.

    Args:
        graph: a canonized `graph.Graph`.
        keys: kernel node -> pattern key (`pattern_keys(graph)`, the default).

    Returns:
        A list of `KernelEntry`.
    """
    keys = pattern_keys(graph) if keys is None else keys
    seen, out = set(), []
    for node, key in keys.items():
        if key in seen:
            continue
        seen.add(key)
        kmap = node.kernel_map
        stable = f"{len(out):04d}_{type(node.op).__name__}_{kmap.attr}"
        if node.batchnorm is not None:
            stable += "_bn"
        out.append(KernelEntry(stable, key, kmap))
    return out


def _float32_bytes(weights):
    """The bytes of `weights` as contiguous float32, without a copy where they already are
    (hashing VGG16's 138 M weights must not first copy them twice)."""
    a = np.asarray(tf.convert_to_tensor(weights))  # a variable's value, read without a copy
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, np.float32)
    return memoryview(a.reshape(-1)).cast("B")


def fingerprints(entries):
    """(architecture, weights) fingerprints of `layout` entries."""
    arch, weights = hashlib.sha256(), hashlib.sha256()
    for entry in entries:
        kmap = entry.kernel_map
        layer = kmap.layer
        arch.update(f"{entry.stable_key}{tuple(kmap.kernel.shape)}".encode())
        for attr in ("strides", "padding", "dilation_rate", "data_format", "groups"):
            arch.update(f"{attr}={getattr(layer, attr, None)}".encode())
        weights.update(_float32_bytes(kmap.kernel))
        if kmap.bias is not None:
            weights.update(_float32_bytes(kmap.bias))
    return arch.hexdigest(), weights.hexdigest()


_PROBE_SIZE = 16


def _sample(variable):
    """A few entries of a variable, spread over it (all of a small one)."""
    flat = tf.reshape(tf.convert_to_tensor(variable), [-1])
    size = int(flat.shape[0])
    if size <= 4 * _PROBE_SIZE:
        return flat.numpy().astype(np.float64)
    index = np.linspace(0, size - 1, _PROBE_SIZE).astype(np.int64)
    return tf.gather(flat, index).numpy().astype(np.float64)


def probe(entries):
    """A cheap sampled checksum of the weights behind `layout` entries: key -> a few kernel
    entries and the whole bias (and folded BatchNormalization statistics). Reading it costs
    a few small gathers, so it can be compared before every analysis."""
    out = {}
    for entry in entries:
        kmap = entry.kernel_map
        base = kmap.unfolded
        parts = [_sample(base.kernel)]
        if base.bias is not None:
            parts.append(_sample(base.bias))
        if kmap.batchnorm is not None:
            parts += [_sample(v) for v in kmap.batchnorm.weights]
        out[entry.key] = np.concatenate(parts)
    return out
