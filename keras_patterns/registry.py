"""Registries: the one way to add an analyzer, an LRP rule, a preset, a signal estimator or a
layer kind.

    from keras_patterns.registry import Registry

    ESTIMATORS = Registry("pattern type")

    @ESTIMATORS.register("relu")          # or ESTIMATORS.register("relu", TwoComponent)
    class TwoComponent(Estimator): ...

Every listing reads the registry when it is asked (`names()`, iteration, `in`), so an entry
registered after import appears everywhere at once. A registry may be followed
(`follow(callback)`): the callback sees every entry registered so far and every later one
(the LRP analyzers follow the rules and the presets this way).
"""

import difflib


class Registry:
    """Named entries of one extension point, in registration order.

    Args:
        what: what an entry is, for messages ("analyzer", "LRP rule", "pattern type").
        normalize: maps a name to the key it is looked up by (accepted spellings); the
            identity by default.
        error: the exception class raised for an unknown name (KeyError by default; the
            registries whose names are parameter values raise ValueError).
    """

    def __init__(self, what, normalize=None, error=KeyError):
        self.what = what
        self._normalize = normalize or (lambda name: name)
        self._error = error
        self._entries = {}
        self._followers = []

    def register(self, name, entry=None, *, replace=False):
        """Add `entry` under `name`; without `entry`, a decorator that adds what it decorates.

        Args:
            name: the entry's name.
            entry: the class or object to register.
            replace: allow replacing an entry of that name (otherwise an error).

        Returns:
            The entry (so that the decorator leaves the decorated class unchanged).

        Raises:
            ValueError: a name that is registered already (unless `replace`), or not a
                non-empty string.
        """
        if entry is None:
            return lambda decorated: self.register(name, decorated, replace=replace)
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.what} needs a non-empty name, got {name!r}.")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise ValueError(
                f"A {self.what} named {name!r} is registered already; pass replace=True to "
                "replace it.")
        self._entries[name] = entry
        for callback in self._followers:
            callback(name, entry)
        return entry

    def follow(self, callback):
        """Call `callback(name, entry)` for every entry, now and whenever one is added."""
        self._followers.append(callback)
        for name, entry in list(self._entries.items()):
            callback(name, entry)

    def find(self, name):
        """The entry of `name` in any accepted spelling, or None."""
        if name in self._entries:
            return self._entries[name]
        key = self._normalize(name)
        return next((e for n, e in self._entries.items() if self._normalize(n) == key), None)

    def name_of(self, entry):
        """The name `entry` is registered under, or None."""
        return next((n for n, e in self._entries.items() if e is entry), None)

    def __getitem__(self, name):
        entry = self.find(name)
        if entry is None:
            raise self._error(self.unknown(name))
        return entry

    def unknown(self, name, hint=None):
        """The message for a name that is not registered: the closest names, or all."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.6)
        if close:
            suggestion = f"did you mean {' or '.join(map(repr, close))}?"
        else:
            suggestion = hint or f"the {self.what}s are {', '.join(map(repr, self._entries))}."
        return f"No {self.what} named {name!r}; {suggestion}"

    def get(self, name, default=None):
        entry = self.find(name)
        return default if entry is None else entry

    def names(self):
        """The registered names, in registration order."""
        return tuple(self._entries)

    def items(self):
        return tuple(self._entries.items())

    def values(self):
        return tuple(self._entries.values())

    def __contains__(self, name):
        return self.find(name) is not None

    def __iter__(self):
        return iter(tuple(self._entries))

    def __len__(self):
        return len(self._entries)

    def __repr__(self):
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
