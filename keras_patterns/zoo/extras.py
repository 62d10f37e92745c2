"""The optional modules the zoo's networks and data come from, and the error when one is
missing."""

import importlib
import importlib.util

from ..errors import MissingExtraError

# module name -> the package pip installs it from (all in the demo extra)
DEMO_MODULES = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "mtcnn": "mtcnn",
    "lz4": "lz4",
    "joblib": "joblib",
    "matplotlib": "matplotlib",
}
INSTALL = 'pip install "keras-patterns[demo]"'


def missing_extra(module, feature):
    """The error for a missing optional module, as one sentence.

    Args:
        module: the module's import name (for instance "sklearn").
        feature: what needs it, for the message (for instance "the digits data").

    Returns:
        MissingExtraError naming the module, its package and the install command.
    """
    package = DEMO_MODULES.get(module.split(".")[0], module)
    shown = module if package == module else f"{module} (package {package})"
    return MissingExtraError(
        f"The module {shown}, needed for {feature}, is not installed: {INSTALL} installs it.")


def require(module, feature):
    """Imports an optional module, or raises the one-sentence error that says how to get it.

    Args:
        module: the module's import name.
        feature: what needs it, for the message.

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the module (or a module it imports) is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise missing_extra(e.name or module, feature) from None


def check_installed(modules, feature):
    """Checks, without importing them, that optional modules are installed.

    Args:
        modules: import names of the modules.
        feature: what needs them, for the message.

    Raises:
        MissingExtraError: for the first module that is not installed.
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # a module in sys.modules without a spec
            found = True
        if not found:
            raise missing_extra(module, feature)
