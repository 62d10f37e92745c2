"""Patterns on disk: one HDF5 file next to the model (`model.keras` -> `model.patterns.h5`).

Layout: root attributes `format_version`, `pattern_type`, `n_samples`, `architecture`
(fingerprint of the kernel layers' classes, kernel shapes and order), `weights`
(fingerprint of their kernels and biases) and `producer`; one group per kernel map under
`layers/`, keyed by its position and class (stable across runs, unlike Keras' automatic
layer names), holding the pattern arrays, the neuron counts per regime and the layer name.

A file is written to a temporary name in the same folder and renamed, so a crash never
leaves a half-written file under the final name. Loading refuses, naming the file and the
mismatch: another architecture, other weights, a newer format, a damaged or truncated file.
"""

import os
from typing import Optional, Union

import keras
import numpy as np

from ..errors import PatternFileError
from ..files import atomic_h5, checked_h5
from ..version import __version__
from .fit import prepare_graph
from .identity import fingerprints, layout
from .patterns import Patterns, check_fit

FORMAT_VERSION = 1


def patterns_path(model_path: Union[str, os.PathLike]) -> str:
    """The patterns file beside a model file.

    Args:
        model_path: e.g. "vgg16.keras" (or .weights.h5, .h5, .hdf5, any other name).

    Returns:
        "vgg16.patterns.h5".
    """
    path = os.fspath(model_path)
    for suffix in (".weights.h5", ".keras", ".h5", ".hdf5"):
        if path.endswith(suffix):
            return path[: -len(suffix)] + ".patterns.h5"
    return path + ".patterns.h5"


DTYPES = (None, "float32", "float64")


def save_patterns(patterns: Patterns, path: Union[str, os.PathLike],
                  dtype: Optional[str] = None) -> str:
    """Write `patterns` to `path` atomically (a temporary file in the same folder, then a
    rename).

    Args:
        patterns: `Patterns` (`compute_patterns`, `analyzer.patterns`).
        path: the file, by convention `patterns_path(model_file)`.
        dtype: None (default) stores the arrays as they are, so that `load_patterns`
            returns exactly `patterns` (`compute_patterns` returns float64); "float32"
            halves the file (and `load_patterns` then returns float32).

    Returns:
        The path.

    Raises:
        PatternFileError: non-finite patterns, patterns without a fingerprint, or a folder
            that does not exist or cannot be written (naming `path`).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
    path = os.fspath(path)
    if patterns.fingerprint is None:
        raise PatternFileError(
            f"save_patterns('{path}'): these patterns know no model fingerprint (a pattern "
            "list); fit them (compute_patterns) to save them.")
    for key in patterns:
        for name, a in patterns[key].items():
            if not np.all(np.isfinite(a)):
                raise PatternFileError(
                    f"save_patterns('{path}'): pattern '{name}' of layer '{key}' holds NaN or "
                    "inf; refit the patterns on finite data.")
    arch, weights = patterns.fingerprint
    with atomic_h5(path, PatternFileError) as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pattern_type"] = patterns.pattern_type
        f.attrs["n_samples"] = patterns.n_samples
        f.attrs["architecture"] = arch
        f.attrs["weights"] = weights
        f.attrs["producer"] = f"keras-patterns {__version__}"
        group = f.create_group("layers")
        for stable, key in patterns.stable_keys.items():
            g = group.create_group(stable)
            g.attrs["key"] = key
            g.attrs["layer_name"] = patterns.layer_names.get(key, key)
            for name, a in patterns[key].items():
                g.create_dataset(name, data=np.asarray(a, dtype))
            for regime, n in patterns.counts.get(key, {}).items():
                g.create_dataset(f"count_{regime}", data=np.asarray(n, np.float64))
            g.attrs["dead"] = int(patterns.dead.get(key, 0))
        f.attrs["complete"] = True
    return path


def load_patterns(path: Union[str, os.PathLike], model: keras.Model,
                  dtype: Optional[str] = None) -> Patterns:
    """Read patterns saved for `model`.

    Args:
        path: a file written by `save_patterns`.
        model: the Keras model they were fitted for.
        dtype: None (default) returns the arrays in the dtype they were stored in;
            "float32" or "float64" converts them while reading (HDF5 converts in small
            buffers, so a float64 file read as float32 never holds a float64 copy).

    Returns:
        `Patterns`, the arrays in the dtype they were stored in, or in `dtype`.

    Raises:
        PatternFileError: naming the file and the problem: missing, damaged or truncated,
            a newer format, another architecture, other weights (refit), NaN or inf.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
    path = os.fspath(path)
    graph = prepare_graph(model)
    entries = layout(graph)
    arch, weights = fingerprints(entries)
    with checked_h5(path, "Patterns file", FORMAT_VERSION, (arch, weights),
                    PatternFileError) as f:
        attrs = dict(f.attrs)
        if "layers" not in f:
            raise PatternFileError(f"Patterns file '{path}' is incomplete (truncated write).")
        arrays, counts, dead, names = {}, {}, {}, {}
        try:
            for entry in entries:
                key, g = entry.key, f["layers"][entry.stable_key]
                arrays[key] = {n: read(g[n], dtype) for n in g if not n.startswith("count_")}
                counts[key] = {n[6:]: g[n][()] for n in g if n.startswith("count_")}
                dead[key] = int(g.attrs["dead"])
                names[key] = str(g.attrs["layer_name"])
        except (KeyError, OSError) as e:
            raise PatternFileError(f"Patterns file '{path}' is damaged ({e}).") from None
    check_fit(arrays, entries, f"Patterns file '{path}'")
    return Patterns(str(attrs["pattern_type"]), arrays, int(attrs["n_samples"]), counts,
                    dead, names, {entry.stable_key: entry.key for entry in entries},
                    (arch, weights))


def read(dataset, dtype):
    """A whole HDF5 dataset as a numpy array, converted to `dtype` by HDF5 while it reads
    (None: as stored)."""
    if dtype is None:
        return dataset[()]
    out = np.empty(dataset.shape, dtype)
    if out.size:
        dataset.read_direct(out)
    return out
