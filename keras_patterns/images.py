"""Image files read as arrays: the one reader of the command line and the scripts.

Files are read with Pillow, turned upright by their EXIF orientation and converted to gray
("L") or RGB. Two ways to reach a model's input size:

* :class:`ImageSource` (the command line): every image must have the model's size, or is
  stretched to it (bilinear) on request, and its pixels are mapped to the model's input by
  ``x = pixels * scale + offset``;
* :func:`load_image` and :func:`load_folder` (ImageNet classifiers): RGB uint8, the shorter
  side resized (bicubic) to cover the size and the centre cropped, streamed in batches with
  one batch in memory at a time.
"""

import warnings
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

# File name endings read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image_file(path):
    """Whether a path names a file whose name ends in one of :data:`IMAGE_SUFFIXES`.

    Args:
        path: a pathlib.Path.

    Returns:
        bool.
    """
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder, recursive=False):
    """The image files of a folder, sorted by path.

    Args:
        folder: the folder.
        recursive: include subfolders.

    Returns:
        list of pathlib.Path (files whose name ends in one of :data:`IMAGE_SUFFIXES`).

    Raises:
        FileNotFoundError: no such folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {str(folder)!r}")
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_image_file(p))


def image_files(paths):
    """The image files named on a command line: files as they are, folders searched
    recursively (sorted within each folder).

    Args:
        paths: file and folder paths.

    Returns:
        list of pathlib.Path.

    Raises:
        InvalidInputError: a path that does not exist, or a folder without images.
    """
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_images(p, recursive=True)
            if not found:
                raise InvalidInputError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in '{p}'.")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInputError(f"'{p}' does not exist.")
    return out


def size_pair(size):
    """``(height, width)`` from an int (a square) or a pair.

    Args:
        size: a positive int or a ``(height, width)`` pair of positive ints.

    Returns:
        tuple of two ints.

    Raises:
        ValueError: anything else.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ValueError(f"size must be a positive int or a (height, width) pair, got {size!r}")
    return int(size[0]), int(size[1])


def read_image(path, mode="RGB"):
    """One image file as a Pillow image, upright (EXIF orientation) and in ``mode``.

    Args:
        path: an image file.
        mode: "RGB" (gray, palette and alpha images converted; alpha dropped) or "L" (gray).

    Returns:
        PIL.Image.Image, loaded (the file is closed).

    Raises:
        InvalidInputError: a file Pillow cannot read, naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return ImageOps.exif_transpose(picture).convert(mode)
    except (UnidentifiedImageError, OSError) as e:
        raise InvalidInputError(f"'{path}' is not an image Pillow can read ({e}).") from None


def load_image(path, size):
    """One image as RGB uint8, its shorter side resized to fit and the centre cropped.

    The image is read as :func:`read_image` does, scaled (bicubic) so that it just covers
    ``size`` and cropped to it around the centre.

    Args:
        path: an image file Pillow reads.
        size: an int (square) or ``(height, width)``.

    Returns:
        uint8 array ``(height, width, 3)``.

    Raises:
        InvalidInputError: a file Pillow cannot read, naming it (a ValueError).
        ValueError: a bad ``size``.
    """
    from PIL import Image

    height, width = size_pair(size)
    picture = read_image(path, "RGB")
    scale = max(height / picture.height, width / picture.width)
    resized = (max(width, round(picture.width * scale)), max(height, round(picture.height * scale)))
    picture = picture.resize(resized, Image.Resampling.BICUBIC)
    left = (picture.width - width) // 2
    top = (picture.height - height) // 2
    picture = picture.crop((left, top, left + width, top + height))
    return np.asarray(picture, dtype=np.uint8)


def load_folder(folder, size, batch_size=32, limit=None, recursive=False, with_paths=False,
                skip_unreadable=False):
    """Streams the images of a folder in batches (one batch in memory at a time).

    Args:
        folder: the folder (files as in :func:`list_images`, in sorted order).
        size: the model's input size: an int (square) or ``(height, width)``.
        batch_size: images per batch (the last batch may be smaller).
        limit: read at most this many images (None: all).
        recursive: include subfolders.
        with_paths: yield ``(batch, paths)`` pairs instead of batches.
        skip_unreadable: skip files Pillow cannot read, with a warning (default: raise).

    Returns:
        A generator of uint8 arrays ``(n, height, width, 3)`` (RGB), read with
        :func:`load_image`, or of ``(array, list of paths)`` with ``with_paths``.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no images in it, bad ``size``, ``batch_size`` or ``limit`` (raised at
            the call); an unreadable file (raised when it is reached, unless
            ``skip_unreadable``).
    """
    size = size_pair(size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or a positive int, got {limit!r}")
    paths = list_images(folder, recursive)
    if not paths:
        raise ValueError(
            f"no images in {str(folder)!r} (file names ending in {', '.join(IMAGE_SUFFIXES)})"
        )
    if limit is not None:
        paths = paths[:limit]

    def batches():
        pixels, names = [], []
        for path in paths:
            try:
                pixels.append(load_image(path, size))
            except InvalidInputError as e:
                if not skip_unreadable:
                    raise
                warnings.warn(f"skipped: {e}", UserWarning, stacklevel=2)
                continue
            names.append(path)
            if len(pixels) == batch_size:
                yield (np.stack(pixels), names) if with_paths else np.stack(pixels)
                pixels, names = [], []
        if pixels:
            yield (np.stack(pixels), names) if with_paths else np.stack(pixels)

    return batches()


class ImageSource:
    """Pixels as a model's inputs: x = pixels * scale + offset, shaped (H, W, C).

    Args:
        shape: the model input's shape without the batch axis, (H, W, C) with C 1 or 3
            (None for a size the model leaves free).
        scale: the factor from pixel values 0..255 to the model's input.
        offset: added after scaling.
        resize: stretch images to (H, W) (bilinear) instead of refusing other sizes.

    Raises:
        InvalidInputError: a shape that is not that of images.
    """

    def __init__(self, shape, scale=1 / 255.0, offset=0.0, resize=False):
        if len(shape) != 3 or shape[-1] not in (1, 3):
            raise InvalidInputError(
                f"The model takes inputs of shape {('batch',) + tuple(shape)}; images need "
                "(height, width, 1 or 3 channels) inputs (pass a .npy file instead).")
        self.shape, self.scale, self.offset, self.resize = tuple(shape), scale, offset, resize

    def load(self, path):
        """One image as the model's input.

        Args:
            path: an image file.

        Returns:
            float32 array ``(H, W, C)``.

        Raises:
            InvalidInputError: an unreadable file, or a size the model does not take
                (without ``resize``).
        """
        from PIL import Image

        image = read_image(path, "L" if self.shape[-1] == 1 else "RGB")
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
        """The images in batches.

        Args:
            files: image paths.
            batch_size: images per batch.

        Yields:
            ``(paths, array)`` per batch, the array float32 ``(n, H, W, C)``.
        """
        for i in range(0, len(files), batch_size):
            chunk = files[i:i + batch_size]
            yield chunk, np.stack([self.load(f) for f in chunk])
