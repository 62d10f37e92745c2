"""Warnings that point at the user's line, not at a line inside this package."""

import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(message, category=UserWarning):
    """`warnings.warn(message, category)` attributed to the first caller outside this
    package, so that Python shows the user's line (the command line shows one line of text
    instead, `keras_patterns.cli`)."""
    level = 2  # 1 is this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
