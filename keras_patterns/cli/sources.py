"""Images and arrays from the command line: folders and image files read with Pillow,
`.npy` / `.npz` arrays memory-mapped, all streamed in batches."""

import os
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_files(paths):
    """The image files named by `paths` (files, or folders searched recursively), sorted
    within each folder."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InvalidInputError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in '{p}'.")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInputError(f"'{p}' does not exist.")
    return out


class ImageSource:
    """Pixels as a model's inputs: x = pixels * scale + offset, shaped (H, W, C).

    Args:
        shape: the model input's shape without the batch axis, (H, W, C) with C 1 or 3
            (None for a size the model leaves free).
        scale, offset: the map from pixel values 0..255 to the model's input.
        resize: resize images to (H, W) instead of refusing other sizes.
    """

    def __init__(self, shape, scale=1 / 255.0, offset=0.0, resize=False):
        if len(shape) != 3 or shape[-1] not in (1, 3):
            raise InvalidInputError(
                f"The model takes inputs of shape {('batch',) + tuple(shape)}; images need "
                "(height, width, 1 or 3 channels) inputs (pass a .npy file instead).")
        self.shape, self.scale, self.offset, self.resize = tuple(shape), scale, offset, resize

    def load(self, path):
        """One image as the model's input; refuses a size the model does not take."""
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(path)
            image = image.convert("L" if self.shape[-1] == 1 else "RGB")
        except (UnidentifiedImageError, OSError) as e:
            raise InvalidInputError(f"'{path}' is not an image Pillow can read ({e}).") from None
        height, width = self.shape[:2]
        if (height, width) != (None, None) and image.size != (width, height):
            if not self.resize:
                raise InvalidInputError(
                    f"'{path}' is {image.size[0]}x{image.size[1]} pixels; the model takes "
                    f"{width}x{height} (pass --resize to resize).")
            image = image.resize((width, height), Image.BILINEAR)
        pixels = np.asarray(image, np.float32)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        return pixels * self.scale + self.offset

    def batches(self, files, batch_size):
        """(files, array) per batch of images."""
        for i in range(0, len(files), batch_size):
            chunk = files[i:i + batch_size]
            yield chunk, np.stack([self.load(f) for f in chunk])


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
