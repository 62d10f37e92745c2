"""The checks of ExplanationGrid's arguments: each names the argument and what is wrong."""

import collections.abc
import warnings

import numpy as np

from .. import visualize
from ..analyzers import analyzer_class
from ..visualize.batches import check_batch

# Methods whose noise is seeded by default, so that every epoch's picture uses the same noise.
SEEDED_METHODS = ("smoothgrad", "squaregrad", "vargrad", "random")


def _needs_fit(name, kwargs):
    """Whether method ``name`` created with ``kwargs`` learns from data (`needs_fit`)."""
    return analyzer_class(name).needs_fit_with(**kwargs)


def _image_batch(images, name):
    return check_batch(images, name, copy=True)


class Arguments:
    """The argument checks of :class:`ExplanationGrid` (a mixin: it reads the attributes
    set before each check)."""

    @staticmethod
    def _check_methods(methods):
        if isinstance(methods, str):
            methods = (methods,)
        if not isinstance(methods, collections.abc.Iterable):
            raise ValueError(
                f"methods must be a method name or a sequence of names, got {methods!r}"
            )
        methods = tuple(methods)
        if not methods:
            raise ValueError("methods must name at least one method")
        for name in methods:
            if not isinstance(name, str):
                raise ValueError(f"methods must be strings, got {name!r}")
            try:
                analyzer_class(name)
            except KeyError as e:
                raise ValueError(f"methods: {e.args[0]}") from None
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods must be distinct, got {list(methods)}")
        return methods

    def _check_method_kwargs(self, method_kwargs):
        if method_kwargs is None:
            method_kwargs = {}
        if not isinstance(method_kwargs, dict):
            raise ValueError(
                "method_kwargs must be a dict {method name: dict of analyzer arguments}, got "
                f"{type(method_kwargs).__name__}"
            )
        unknown = sorted(set(method_kwargs) - set(self.methods))
        if unknown:
            raise ValueError(
                f"method_kwargs names methods not in methods: {unknown} (methods: "
                f"{list(self.methods)})"
            )
        out = {}
        for name in self.methods:
            kwargs = method_kwargs.get(name, {})
            if not isinstance(kwargs, dict):
                raise ValueError(
                    f"method_kwargs[{name!r}] must be a dict of keyword arguments, got "
                    f"{type(kwargs).__name__}"
                )
            kwargs = dict(kwargs)
            if "neuron_selection_mode" in kwargs:
                raise ValueError(
                    f"method_kwargs[{name!r}] sets neuron_selection_mode; choose the explained "
                    "outputs with the callback's neuron_selection argument instead"
                )
            if analyzer_class(name).name in SEEDED_METHODS:
                kwargs.setdefault("seed", 0)
            if _needs_fit(name, kwargs) and kwargs.get("patterns") is not None:
                raise ValueError(
                    f"method_kwargs[{name!r}] gives patterns: patterns describe the weights "
                    "they were fitted for and training changes them; the callback refits "
                    "them on fit_data at every drawing"
                )
            out[name] = kwargs
        return out

    def _check_fit_data(self, fit_data):
        fitted = [name for name in self.methods if _needs_fit(name, self.method_kwargs[name])]
        if fitted and fit_data is None:
            raise ValueError(
                f"{', '.join(fitted)} learn(s) from data (patterns, for the pattern methods), "
                "refitted at every drawing because training changes the weights: pass "
                "fit_data (e.g. a few hundred training images)"
            )
        if fit_data is not None and not fitted:
            warnings.warn(
                "fit_data is only used by the pattern methods and the others that need "
                f"fitting; none of {list(self.methods)} does, so it is ignored",
                UserWarning,
                stacklevel=3,
            )
        if isinstance(fit_data, collections.abc.Iterator):
            raise ValueError(
                "fit_data is an iterator or generator, which the first refit would exhaust; "
                "pass arrays, a tf.data.Dataset, a PyDataset, or a function returning a fresh "
                "generator"
            )
        return fit_data

    def _check_drawable(self):
        """Draws zero explanations once, so that grid's objections come now, not after
        the first epoch."""
        shown = self.images if self.display_images is None else self.display_images
        zeros = {name: np.zeros(self.images.shape, np.float32) for name in self.methods}
        try:
            visualize.grid(shown, zeros, row_labels=self.labels, **self.grid_kwargs)
        except TypeError as e:
            raise ValueError(f"grid_kwargs: {e}") from None
        except ValueError as e:
            raise ValueError(f"the grid cannot be drawn with these arguments: {e}") from None

    @staticmethod
    def _check_selection(neuron_selection, rows):
        if neuron_selection is None:
            return None
        selection = np.asarray(neuron_selection)
        if selection.dtype.kind not in "iu" or selection.ndim > 1:
            raise ValueError(
                "neuron_selection must be None, an int or one int per image, got "
                f"{neuron_selection!r}"
            )
        if selection.ndim == 1 and len(selection) != rows:
            raise ValueError(f"neuron_selection has {len(selection)} entries for {rows} images")
        if (selection < 0).any():
            raise ValueError(f"neuron_selection must be non-negative, got {neuron_selection!r}")
        return int(selection) if selection.ndim == 0 else selection.astype(np.int64)

    @staticmethod
    def _check_kwargs(kwargs, name, reserved):
        if kwargs is None:
            return {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"{name} must be a dict of keyword arguments, got {kwargs!r}")
        taken = sorted(set(kwargs) & set(reserved))
        if taken:
            raise ValueError(f"{name} must not set {taken}: the callback sets them itself")
        return dict(kwargs)
