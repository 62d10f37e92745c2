"""Trained networks and real data, available offline: what the demo, the report and the
scripts in ``applications/`` explain.

* :mod:`keras_patterns.zoo.digits`: a small CNN trained on scikit-learn's 8x8 digits, its
  data, training and a cached trained model.
* :mod:`keras_patterns.zoo.faces`: MTCNN's face detectors (ONet, RNet, PNet) rebuilt as
  functional models with the weights shipped in the ``mtcnn`` package, and scikit-image's
  LFW faces and non-faces.
* :mod:`keras_patterns.zoo.imagenet`: the ImageNet classifiers of ``keras.applications``
  ending in logits, with each family's preprocessing and its inverse.
* :mod:`keras_patterns.zoo.transformers`: a small ViT trained on the digits, and a text
  transformer trained on sequences whose deciding tokens are planted (known evidence).

Nothing here downloads anything except the ImageNet weights, which Keras fetches on first
use. The data and weights come from optional packages (the demo extra:
``pip install "keras-patterns[demo]"``); without them the functions that need one raise
:class:`keras_patterns.errors.MissingExtraError` naming it. Importing these modules needs
none of them.
"""

from .extras import DEMO_MODULES, check_installed

__all__ = ["DEMO_MODULES", "check_installed", "digits", "faces", "imagenet", "transformers"]


def __getattr__(name):
    if name in ("digits", "faces", "imagenet", "transformers"):
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
