"""Deep Taylor decomposition (Montavon et al. 2017; paper appendix A.3.1)."""

from ..reverse import GradientReverse
from ..rules.lrp import DEEP_TAYLOR_PAPER, Bounded, ZPlus
from .catalog import register_analyzer
from .lrp import RelevanceAnalyzer, composite_of


@register_analyzer("deep_taylor")
class DeepTaylor(RelevanceAnalyzer):
    """Deep Taylor decomposition for rectifier networks: the z+-rule at every kernel layer
    (BatchNormalization folded in), relevance passed only through active rectifiers and
    distributed over sums (Add, average pooling) in proportion to the contributions. It
    explains max(y, 0): a rectified output, as the decomposition assumes.

    Args:
        **kwargs: `input_layer_rule`, `until_layer_idx`, `until_layer_rule`,
            `bn_layer_rule` and `composite` as for "lrp" (the z+-rule takes the place of
            its `rule`), and the parameters every analyzer takes.
    """

    description = "Deep Taylor decomposition (z+ rule, unbounded inputs)"
    citation = DEEP_TAYLOR_PAPER
    start = "positive_value"

    def __init__(self, model, input_layer_rule=None, until_layer_idx=None,
                 until_layer_rule=None, bn_layer_rule=None, composite=None, **kwargs):
        self.composite = composite_of(None if composite is not None else ZPlus(),
                                      input_layer_rule, until_layer_idx, until_layer_rule,
                                      bn_layer_rule, composite)
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        node = graph.first_non_rectifier()
        if node is not None:
            self._refuse(node, f"it has a {node.activation} activation; Deep Taylor is "
                               "defined for rectifier (ReLU) networks.")
        super()._check_model(graph)

    def activation_reverse(self, node):
        return GradientReverse(node)  # a rectifier passes relevance where it was active


@register_analyzer("deep_taylor.bounded")
class BoundedDeepTaylor(DeepTaylor):
    """Deep Taylor with the z^B-rule at the input layer, for inputs in [low, high] (in the
    model's input units: behind Rescaling or Normalization the bounds are mapped).

    Args:
        low: the lowest input value.
        high: the highest input value.
    """

    description = "Deep Taylor decomposition with the z^B rule for inputs in [low, high]"
    example = {"low": 0.0, "high": 1.0}

    def __init__(self, model, low=None, high=None, **kwargs):
        if low is None or high is None:
            raise ValueError("deep_taylor.bounded needs low= and high= (the input range).")
        if not low < high:
            raise ValueError(f"deep_taylor.bounded needs low < high, got {low}, {high}.")
        self.low, self.high = low, high
        super().__init__(model, input_layer_rule=Bounded(low, high), **kwargs)
