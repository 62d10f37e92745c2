"""The iNNvestigate compatibility surface: what exists only so that code written for
iNNvestigate runs with its imports changed (`import keras_patterns as innvestigate`).

Everything of it is here, except two import paths that must mirror iNNvestigate's:

- the analyzers' constructor keywords that have no effect here (`KEYWORDS`): every analyzer
  accepts them (`accept_keywords`); `reverse_clip_values` is refused when set;
- `fit_generator` (`Compatible`, a base of every analyzer);
- rule-name spellings: "Alpha2Beta1IgnoreBias", "alpha_2_beta_1_IB", "lrp.z_IB"
  (`normal_rule_name`, `normal_analyzer_name`: the keys the rule and analyzer registries
  look names up by);
- iNNvestigate 1.x's list form of `patterns=` (one array per kernel layer, every regime;
  `patterns_from_list`);
- the exception name `NotAnalyzeableModelException` (`NotAnalyzableModelError`);
- the import paths `keras_patterns.utils` (`model_wo_softmax`, `model_wo_output_activation`)
  and `keras_patterns.utils.visualizations`, as `innvestigate.utils` and
  `innvestigate.utils.visualizations`.

The pattern analyzers' `fit` accepts iNNvestigate's `epochs` (1 only), `max_queue_size`,
`workers`, `use_multiprocessing` and `disable_no_training_warning` in its signature.
tests/test_innvestigate_api.py runs a script written the iNNvestigate way.
"""

from typing import Optional

from .errors import NotAnalyzableModelError

# iNNvestigate's name of the error
NotAnalyzeableModelException = NotAnalyzableModelError

# iNNvestigate's analyzer constructor keywords and why each has no effect here
KEYWORDS = {
    "reverse_verbose": "nothing is printed",
    "reverse_check_min_max_values": "no statistics of the reverse pass are kept",
    "reverse_check_finite": "always on: a non-finite explanation raises NumericalError",
    "reverse_keep_tensors": "no intermediate tensors are kept",
    "reverse_reapply_on_copied_layers": "nothing is copied",
    "reverse_project_bottleneck_layers": "PatternNet's signal carries its scale",
    "disable_model_checks": "the model checks are needed for correct numbers",
    "reverse_clip_values": "refused when set: clipping would change the explanation",
}


def accept_keywords(keywords):
    """Accept iNNvestigate's constructor keywords (without effect).

    Args:
        keywords: the keyword arguments an analyzer's constructor did not take itself.

    Returns:
        The names among them that are not iNNvestigate's either (unknown parameters).

    Raises:
        ValueError: `reverse_clip_values` set to anything but False or None.
    """
    clip = keywords.get("reverse_clip_values", False)
    if clip not in (False, None):
        raise ValueError(
            f"reverse_clip_values={clip!r}: clipping the reverse signals is not offered (it "
            "would change the explanation); leave it False.")
    return [name for name in keywords if name not in KEYWORDS]


class Compatible:
    """iNNvestigate's methods of an analyzer (a base class of `Analyzer`)."""

    def fit_generator(self, generator, steps: Optional[int] = None,
                      steps_per_epoch: Optional[int] = None, **kwargs):
        """`fit` on a generator, as iNNvestigate names it.

        Args:
            generator: yields batches (arrays, or (x, y) pairs).
            steps: the number of batches to read.
            steps_per_epoch: the same, under Keras 2's name (used when `steps` is None).
            **kwargs: passed to `fit`.

        Returns:
            self.
        """
        return self.fit(generator, steps=steps if steps is not None else steps_per_epoch,
                        **kwargs)


def normal_rule_name(name):
    """One spelling of a rule name: 'Alpha2Beta1IgnoreBias', 'alpha_2_beta_1_IB' and
    'alpha-2-beta-1-ib' all become 'alpha2beta1ib'."""
    key = name.lower().replace("_", "").replace("-", "").replace(".", "")
    if key.endswith("ignorebias"):
        key = key[: -len("ignorebias")] + "ib"
    return key


def normal_analyzer_name(name):
    """The key an analyzer name is looked up by: "lrp.<rule>" in any rule spelling."""
    name = str(name)
    return "lrp." + normal_rule_name(name[4:]) if name.startswith("lrp.") else name


def lrp_analyzer_name(rule_name):
    """"lrp.<rule>", spelt as iNNvestigate does ("_ib" -> "_IB")."""
    return "lrp." + (rule_name[:-3] + "_IB" if rule_name.endswith("_ib") else rule_name)


def patterns_from_list(arrays, entries, pattern_type, names):
    """iNNvestigate 1.x's pattern list as `Patterns` (no fingerprint: it cannot be checked
    against the weights).

    Args:
        arrays: one pattern per kernel layer, in model order, used for every regime.
        entries: the analyzer's kernel layers (`patterns.identity.layout`).
        pattern_type: the analyzer's pattern type.
        names: the pattern arrays of a layer of that type ("a", or "a_plus" and "a_minus").

    Returns:
        Patterns.

    Raises:
        PatternFileError: not one array per kernel layer, or arrays of the wrong shape.
    """
    import numpy as np

    from .errors import PatternFileError
    from .patterns.patterns import Patterns, check_fit

    if len(arrays) != len(entries):
        raise PatternFileError(
            f"Got {len(arrays)} patterns for the {len(entries)} kernel layers of this model "
            f"({', '.join(key for _, key, _ in entries)}): give one per kernel layer, in "
            "model order.")
    out = {key: {name: np.asarray(a) for name in names}
           for (_, key, _), a in zip(entries, arrays)}
    check_fit(out, entries, "The pattern list")
    return Patterns(pattern_type, out, stable_keys={stable: key for stable, key, _ in entries})
