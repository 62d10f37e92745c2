"""Stable identity of a model's kernel maps: keys that survive Keras' automatic layer names,
and fingerprints of the architecture and of the weights."""

import hashlib

import numpy as np


def layout(graph, keys):
    """[(stable key, pattern key, kernel map)] in graph order, one entry per kernel map.

    `keys` maps kernel nodes to pattern keys (`fit.pattern_keys`)."""
    seen, out = set(), []
    for node, key in keys.items():
        if key in seen:
            continue
        seen.add(key)
        kmap = node.info["kernel_map"]
        stable = f"{len(out):04d}_{type(node.op).__name__}_{kmap.attr}"
        if "batchnorm_name" in node.info:
            stable += "_bn"
        out.append((stable, key, kmap))
    return out


def fingerprints(entries):
    """(architecture, weights) fingerprints of `layout` entries."""
    arch, weights = hashlib.sha256(), hashlib.sha256()
    for stable, _, kmap in entries:
        layer = kmap.layer
        arch.update(f"{stable}{tuple(kmap.kernel.shape)}".encode())
        for attr in ("strides", "padding", "dilation_rate", "data_format", "groups"):
            arch.update(f"{attr}={getattr(layer, attr, None)}".encode())
        weights.update(np.ascontiguousarray(np.asarray(kmap.kernel, np.float32)).tobytes())
        bias = kmap.bias
        if bias is not None:
            weights.update(np.ascontiguousarray(np.asarray(bias, np.float32)).tobytes())
    return arch.hexdigest(), weights.hexdigest()
