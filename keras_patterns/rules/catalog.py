"""The registries of LRP rules and presets: names -> rules, names -> named composites.

    @register_rule("twice_z")
    class TwiceZ(Rule):
        def relevance(self, layer, r):
            return 2.0 * Z().relevance(layer, r)

A registered rule is a rule name of composites (`rule="twice_z"`) and at once the analyzer
"lrp.twice_z" (the LRP analyzers follow `RULES`); a registered preset (`register_preset`,
a `composite.Preset`) is the analyzer of its name.
"""

import functools

from ..innvestigate import normal_rule_name
from ..registry import Registry
from .lrp import (
    AlphaBeta,
    Bounded,
    Epsilon,
    Flat,
    Gamma,
    Rule,
    WSquare,
    Z,
    ZPlus,
    ZPlusFast,
)

# Rule names -> factories: a Rule class, or a partial of one with its fixed settings (the
# remaining parameters stay keywords: RULES["epsilon_ib"](epsilon=0.1)). Every name is also an
# analyzer, "lrp.<name>" ("_ib" spelt "_IB", as iNNvestigate does); iNNvestigate's rule
# spellings are accepted too ("Alpha2Beta1IgnoreBias").
RULES = Registry("LRP rule", normalize=normal_rule_name)


def register_rule(name, factory=None, *, replace=False):
    """Make a rule available by name: `rule="name"` in composites and the analyzer
    "lrp.<name>"; without `factory`, a class decorator.

    Args:
        name: the rule's name.
        factory: a `Rule` class, or a `functools.partial` of one with some settings fixed;
            its remaining keyword parameters become the analyzer's.
        replace: allow replacing the rule of that name.

    Returns:
        The factory.

    Raises:
        ValueError: a name taken (unless `replace`) or not a non-empty string.
    """
    if factory is None:
        return lambda decorated: register_rule(name, decorated, replace=replace)
    return RULES.register(name, factory, replace=replace)


def register(name, factory):
    """`register_rule(name, factory, replace=True)`, under its former name."""
    return register_rule(name, factory, replace=True)


# Preset names -> `composite.Preset`s (each the analyzer of its name).
PRESETS = Registry("LRP preset")


def register_preset(name, preset, *, replace=False):
    """Make a preset the analyzer `name`.

    Args:
        name: the analyzer's name ("lrp.sequential_preset_a").
        preset: a `rules.composite.Preset`.
        replace: allow replacing the preset of that name.

    Returns:
        The preset.

    Raises:
        ValueError: a name taken (unless `replace`), not a non-empty string, or no Preset.
    """
    from .composite import Preset

    if not isinstance(preset, Preset):
        raise ValueError(f"A preset must be a keras_patterns.rules.composite.Preset, got "
                         f"{preset!r}.")
    return PRESETS.register(name, preset, replace=replace)


register_rule("z", Z)
register_rule("z_ib", functools.partial(Z, bias=False))
register_rule("epsilon", Epsilon)
register_rule("epsilon_ib", functools.partial(Epsilon, bias=False))
register_rule("gamma", Gamma)
register_rule("w_square", WSquare)
register_rule("flat", Flat)
register_rule("alpha_beta", AlphaBeta)
register_rule("alpha_beta_ib", functools.partial(AlphaBeta, bias=False))
register_rule("alpha_2_beta_1", functools.partial(AlphaBeta, 2.0, 1.0))
register_rule("alpha_2_beta_1_ib", functools.partial(AlphaBeta, 2.0, 1.0, bias=False))
register_rule("alpha_1_beta_0", functools.partial(AlphaBeta, 1.0, 0.0))
register_rule("alpha_1_beta_0_ib", functools.partial(AlphaBeta, 1.0, 0.0, bias=False))
register_rule("z_plus", ZPlus)
register_rule("z_plus_fast", ZPlusFast)
register_rule("bounded", Bounded)


def rule_from(spec):
    """A `Rule` from a name ('epsilon', 'Alpha1Beta0', 'z_IB', ...), a Rule instance, a Rule
    class, or a (low, high) tuple (the bounded rule)."""
    if isinstance(spec, Rule):
        return spec
    if isinstance(spec, type) and issubclass(spec, Rule):
        return spec()
    if is_bounds(spec):
        return Bounded(*spec)
    if isinstance(spec, str):
        make = RULES.find(spec)
        if make is not None:
            return make()
    raise ValueError(
        f"Unknown LRP rule {spec!r}: give a name ({', '.join(sorted(RULES))}), a "
        "keras_patterns.rules.lrp.Rule, or a (low, high) tuple for the bounded rule.")


def is_bounds(spec):
    """(low, high) numbers: the bounded rule's input range."""
    return isinstance(spec, tuple) and len(spec) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
