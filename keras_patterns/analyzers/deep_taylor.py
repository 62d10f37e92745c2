"""Deep Taylor decomposition (Montavon et al. 2017; paper appendix A.3.1)."""

from ..reverse import GradientReverse
from ..rules.lrp import Bounded, ZPlus
from .lrp import LRP


class DeepTaylor(LRP):
    """Deep Taylor decomposition for rectifier networks: the z+-rule at every kernel layer
    (BatchNormalization folded in), relevance passed only through active rectifiers and
    distributed over sums (Add, average pooling) in proportion to the contributions. It
    explains max(y, 0): a rectified output, as the decomposition assumes."""

    name = "deep_taylor"
    description = "Deep Taylor decomposition (z+ rule, unbounded inputs)"
    start = "positive_value"

    def __init__(self, model, composite=None, **kwargs):
        if composite is None:
            kwargs["rule"] = ZPlus()
        super().__init__(model, composite=composite, **kwargs)

    def _check_model(self, graph):
        node = graph.first_non_rectifier()
        if node is not None:
            self._refuse(node, f"it has a {node.activation} activation; Deep Taylor is "
                               "defined for rectifier (ReLU) networks.")
        super()._check_model(graph)

    def activation_reverse(self, node):
        return GradientReverse(node)  # a rectifier passes relevance where it was active


class BoundedDeepTaylor(DeepTaylor):
    """Deep Taylor with the z^B-rule at the input layer, for inputs in [low, high] (in the
    model's input units: behind Rescaling or Normalization the bounds are mapped).

    Args:
        low, high: the input range.
    """

    name = "deep_taylor.bounded"
    description = "Deep Taylor decomposition with the z^B rule for inputs in [low, high]"

    def __init__(self, model, low=None, high=None, **kwargs):
        if low is None or high is None:
            raise ValueError("deep_taylor.bounded needs low= and high= (the input range).")
        if not low < high:
            raise ValueError(f"deep_taylor.bounded needs low < high, got {low}, {high}.")
        self.low, self.high = low, high
        super().__init__(model, input_layer_rule=Bounded(low, high), **kwargs)
