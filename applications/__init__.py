"""Scripts that explain real networks, run as files (``python applications/digits.py``).

They use only keras-patterns' public API; the networks and data they explain live in
``keras_patterns.zoo``. This folder is not installed with the package.
"""
