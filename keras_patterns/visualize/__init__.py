"""Pictures of explanations: heat maps, signal projections and labelled grids.

This module needs only numpy and Pillow (no TensorFlow, no matplotlib).

Conventions shared by every function:

* **Always a batch.** Arrays are batches: ``(N, H, W)`` (one channel) or ``(N, H, W, C)``
  (channels last), or ``(N, C, H, W)`` with ``channels_first=True``. To draw a single
  sample pass ``x[None]``. A rank-3 array is always read as ``(N, H, W)``.
* **Pixels are uint8.** Functions return ``uint8`` arrays in channels-last layout (except
  ``project(..., as_float=True)``); a value ``u`` in ``[0, 255]`` becomes the integer
  ``floor(u + 0.5)`` (rounding half up).
* **Finite input.** NaN or infinite values, wrong ranks, mismatched batch sizes and unknown
  options raise ``ValueError`` naming the argument and its shape.

Two ways of showing an explanation follow Kindermans et al. (ICLR 2018, Fig. 6):

* signals (the methods whose class says ``returns = "signal"``: gradient, SmoothGrad,
  DeConvNet, Guided Backprop, PatternNet, the input itself; :func:`signal_methods`) are
  shown on the original colour channels with :func:`project`: ``x / (2 max|x|) + 1/2`` per
  sample;
* attributions (LRP, Deep Taylor, PatternAttribution, ...) are shown as heat maps with
  :func:`heatmap`: one value per pixel on a diverging colour scale symmetric around zero
  (zero white, positive red, negative blue).

Text and vision transformers use the same colours: :func:`token_image` and
:func:`token_html` draw one coloured box per token (a PNG, a self-contained HTML page),
:func:`patch_heatmap` a ViT's relevance per patch over its image (``text``, ``patches``).
"""

from .grid import grid
from .patches import patch_grid, patch_heatmap, patch_values
from .pictures import (
    COLOR_TABLES,
    STYLES,
    graymap,
    heatmap,
    overlay,
    project,
    signal_methods,
    style_of,
)
from .text import PAD_COLOR, token_boxes, token_colors, token_html, token_image

__all__ = [
    "COLOR_TABLES",
    "PAD_COLOR",
    "SIGNAL_METHODS",
    "STYLES",
    "graymap",
    "grid",
    "heatmap",
    "overlay",
    "patch_grid",
    "patch_heatmap",
    "patch_values",
    "project",
    "signal_methods",
    "style_of",
    "token_boxes",
    "token_colors",
    "token_html",
    "token_image",
]


def __getattr__(name):
    if name == "SIGNAL_METHODS":  # the former constant, now read from the registry
        return signal_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
