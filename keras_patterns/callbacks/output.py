"""Where ExplanationGrid's pictures go: PNG files written atomically, TensorBoard summaries."""

import importlib.util
import random
from contextlib import contextmanager

import numpy as np

from ..files import atomic_path


def tensorboard_installed():
    return importlib.util.find_spec("tensorboard") is not None


@contextmanager
def _random_state_kept():
    """Restores Python's and numpy's global random states on leaving."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def write_image_summary(tag, pixels, step):
    """Writes one RGB picture as a TensorBoard image summary without the tensorboard package.

    The record is the one TensorBoard's image plugin reads (and ``tf.summary.image``
    writes): a string tensor ``[width, height, PNG bytes]`` with the plugin name
    ``"images"``. Call it with a default ``tf.summary`` writer set.

    Args:
        tag: the summary name.
        pixels: uint8 array ``(H, W, 3)``.
        step: the step (int).

    Returns:
        bool: whether a default writer took the record.
    """
    import tensorflow as tf

    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels must be uint8 (H, W, 3), got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    encoded = tf.io.encode_png(pixels)
    tensor = tf.stack([tf.as_string(width), tf.as_string(height), encoded])
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "images"
    return tf.summary.write(tag, tensor, step=step, metadata=metadata)


def _save_png(picture, path):
    """Writes a PIL image to ``path`` as PNG atomically (`keras_patterns.files.atomic_path`:
    no half-written picture under the final name, no temporary left behind; the file gets
    the mode a new file gets: 0666 less the umask)."""
    with atomic_path(path, OSError, ".png") as partial:
        picture.save(partial, format="PNG")
