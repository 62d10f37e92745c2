"""The registry of analyzers: every method by name, and the listings read from it.

    @register_analyzer("toy.double")
    class Double(Analyzer):
        description = "twice the input"
        returns = "signal"

        def _analyze_batch(self, xs, index, strategy):
            return [2 * x for x in xs]

A registered class is found by `create_analyzer`, listed by `list_analyzers()`, the
`keras-patterns list` and `check` commands, drawn in its style by `visualize.grid` (a
signal projected, an attribution as a heat map) and fitted where it `needs_fit` by the
callback, the evaluations and the command line: every listing reads the registry.
"""

from ..innvestigate import normal_analyzer_name
from ..registry import Registry
from .base import Analyzer

RETURNS = ("signal", "attribution")

ANALYZERS = Registry("analyzer", normalize=normal_analyzer_name,
                     hint="kp.list_analyzers() lists them.", base=Analyzer)


def register_analyzer(name, cls=None, *, replace=False):
    """Register an analyzer class under `name` (which becomes its `name`); without `cls`, a
    class decorator.

    Args:
        name: the method name ("gradient", "lrp.epsilon", "toy.double").
        cls: a subclass of `keras_patterns.analyzers.Analyzer` with a `description`, and
            `returns` ("signal" or "attribution"), `needs_fit`, `example` and `citation`
            where the defaults do not fit.
        replace: allow replacing a class registered under that name.

    Returns:
        The class.

    Raises:
        ValueError: a name taken (unless `replace`), a class that is no Analyzer, or facts
            of the wrong form.
    """
    if cls is None:
        return lambda decorated: register_analyzer(name, decorated, replace=replace)
    if not (isinstance(cls, type) and issubclass(cls, Analyzer)):
        return ANALYZERS.register(name, cls)  # refused, naming the class
    problems = []
    if cls.returns not in RETURNS:
        problems.append(f"returns={cls.returns!r} (one of {', '.join(map(repr, RETURNS))})")
    if not isinstance(cls.needs_fit, bool):
        problems.append(f"needs_fit={cls.needs_fit!r} (True or False)")
    if not isinstance(cls.example, dict):
        problems.append(f"example={cls.example!r} (a dict of keyword arguments)")
    if not (isinstance(cls.description, str) and cls.description):
        problems.append("no description (one line)")
    if problems:
        raise ValueError(f"The analyzer {cls.__name__} ('{name}') has {'; '.join(problems)}.")
    return ANALYZERS.register(name, cls, replace=replace)


def unregister_analyzer(name):
    """Remove the analyzer registered under `name`; returns its class."""
    return ANALYZERS.unregister(name)


def analyzer_class(name):
    """The analyzer class of a method name (in any accepted spelling).

    Raises:
        KeyError: an unknown name (the message suggests the closest names).
    """
    return ANALYZERS[name]


def list_analyzers() -> dict:
    """The analyzers' names, each with a one-line description.

    Returns:
        dict: method name -> description, in registration order (an analyzer, rule or
        preset registered later appears at once).
    """
    return {name: cls.description for name, cls in ANALYZERS.items()}


def signal_methods():
    """The names of the registered methods that return a signal (`returns == "signal"`)."""
    return frozenset(name for name, cls in ANALYZERS.items() if cls.returns == "signal")
