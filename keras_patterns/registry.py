"""Registries: the one way to add an analyzer, an LRP rule, a preset, a signal estimator or a
layer kind.

    from keras_patterns.registry import Registry

    ESTIMATORS = Registry("pattern type")

    @ESTIMATORS.register("relu")          # or ESTIMATORS.register("relu", TwoComponent)
    class TwoComponent(Estimator): ...

Every listing reads the registry when it is asked (`names()`, iteration, `in`), so an entry
registered after import appears everywhere at once. A registry may be followed
(`follow(on_register, on_unregister)`): the first callback sees every entry registered so
far and every later one, the second every removal (the LRP analyzers follow the rules and
the presets this way). `unregister` removes an entry (a test cleaning up after itself); the
dict spellings `registry[name] = entry` and `registry.pop(name)` do the same as
`register(name, entry, replace=True)` and `unregister(name)`.
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
        hint: the end of the message for an unknown name without close matches (default:
            the list of names).
        base: for a registry of classes, the class every entry must derive from; an entry
            then takes its registered name as its `name` attribute.
    """

    def __init__(self, what, normalize=None, error=KeyError, hint=None, base=None):
        self.what = what
        self.base = base
        self._normalize = normalize or (lambda name: name)
        self._error = error
        self._hint = hint
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
        if self.base is not None:
            if not (isinstance(entry, type) and issubclass(entry, self.base)):
                raise ValueError(f"A {self.what} must be a subclass of "
                                 f"{self.base.__name__}, got {entry!r}.")
            if vars(entry).get("name") not in (None, name):
                raise ValueError(f"The {self.what} {entry.__name__} is named "
                                 f"{entry.name!r}; it cannot be registered as {name!r}.")
            entry.name = name
        self._entries[name] = entry
        for on_register, _ in self._followers:
            on_register(name, entry)
        return entry

    def unregister(self, name):
        """Remove the entry registered under `name` (exactly that name).

        Returns:
            The entry.

        Raises:
            KeyError: no entry has that name.
        """
        if name not in self._entries:
            raise KeyError(f"No {self.what} is registered under {name!r}.")
        entry = self._entries.pop(name)
        for _, on_unregister in self._followers:
            if on_unregister is not None:
                on_unregister(name, entry)
        return entry

    def follow(self, on_register, on_unregister=None):
        """Call `on_register(name, entry)` for every entry, now and whenever one is added
        (or replaced), and `on_unregister(name, entry)` whenever one is removed."""
        self._followers.append((on_register, on_unregister))
        for name, entry in list(self._entries.items()):
            on_register(name, entry)

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
        return f"No {self.what} named {name!r}; {self.suggest(name, hint)}"

    def suggest(self, name, hint=None):
        """"did you mean ...?" with the names closest to `name`, else `hint` (default: the
        registry's hint, or the list of names)."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.6)
        if close:
            return f"did you mean {' or '.join(map(repr, close))}?"
        hint = hint or self._hint
        return hint or f"the {self.what}s are {', '.join(map(repr, self._entries))}."

    def __setitem__(self, name, entry):
        self.register(name, entry, replace=True)

    def pop(self, name):
        return self.unregister(name)

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
