"""Explanations drawn while a model trains: the :class:`ExplanationGrid` Keras callback.

``grid`` is the callback, ``checks`` its argument checks, ``output`` where its pictures go
(PNG files, TensorBoard image summaries).
"""

from .checks import SEEDED_METHODS
from .grid import DEFAULT_METHODS, ExplanationGrid
from .output import write_image_summary

__all__ = ["DEFAULT_METHODS", "SEEDED_METHODS", "ExplanationGrid", "write_image_summary"]
