"""LRP rules (`lrp`: one small class each), their registries (`catalog`: `RULES`,
`PRESETS`, `register_rule`, `register_preset`) and composites of them (`composite`: which
rule at which layer, and the presets)."""

from .catalog import PRESETS, RULES, register, register_preset, register_rule, rule_from
from .composite import Composite, Preset
from .lrp import Rule

__all__ = ["Composite", "PRESETS", "Preset", "RULES", "Rule", "register", "register_preset",
           "register_rule", "rule_from"]
