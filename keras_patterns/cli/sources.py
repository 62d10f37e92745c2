"""Images and arrays from the command line, streamed in batches: image folders and files
(read by `keras_patterns.images`), `.npy` / `.npz` arrays memory-mapped."""

import os

import numpy as np

from ..errors import InvalidInputError
from ..images import ImageSource, image_files

__all__ = ["ImageSource", "array_batches", "image_files", "load_array"]


def load_array(path, key=None):
    """The array of a `.npy` file (memory-mapped) or of a `.npz` file (`key`, or its only or
    first array)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InvalidInputError(f"'{path}' does not exist.")
    try:
        if path.endswith(".npz"):
            with np.load(path) as archive:
                names = list(archive.files)
                if key is None:
                    key = "x" if "x" in names else names[0]
                if key not in names:
                    raise InvalidInputError(
                        f"'{path}' holds no array '{key}' (it holds {', '.join(names)}).")
                return archive[key]
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise InvalidInputError(f"'{path}' is not a numpy .npy/.npz file ({e}).") from None


def array_batches(array, batch_size):
    """Batches of a (memory-mapped) array, read one at a time."""
    for i in range(0, len(array), batch_size):
        yield np.asarray(array[i:i + batch_size], np.float32)
