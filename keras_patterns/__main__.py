"""`python -m keras_patterns`: the `keras-patterns` command (see `keras_patterns.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
