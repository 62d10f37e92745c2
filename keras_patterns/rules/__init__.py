"""LRP rules (`lrp`: one small class each and the `RULES` registry) and composites of them
(`composite`: which rule at which layer, and the named presets)."""

from .composite import PRESETS, Composite
from .lrp import RULES, Rule, register, rule_from

__all__ = ["Composite", "PRESETS", "RULES", "Rule", "register", "rule_from"]
