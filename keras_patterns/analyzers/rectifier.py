"""DeConvNet and Guided Backprop: the gradient with modified rectifiers (paper appendix A.2).

Both are defined for networks whose nonlinearities are rectifiers (relu, relu6, ReLU layers
without a negative slope); other activations are refused. The reverse pass starts with 1 at
the selected output, like the gradient, so that Guided Backprop is not scaled by the logit.
"""

from ..reverse import DeconvnetReverse, GuidedReverse
from .base import ReverseAnalyzer


class _Rectifier(ReverseAnalyzer):
    rectifier_reverse = None

    def _check_model(self, graph):
        node = graph.first_non_rectifier()
        if node is not None:
            self._refuse(node, f"it has a {node.activation} activation, and {self.name} is "
                               "defined only for rectifier (ReLU) networks. Use 'gradient' for "
                               "this model.")

    def reverse_layer_for(self, node):
        if node.is_rectifier:
            return self.rectifier_reverse(node)
        return super().reverse_layer_for(node)


class Deconvnet(_Rectifier):
    """DeConvNet: at rectifiers, pass the signal where it is positive (ignores the forward)."""

    name = "deconvnet"
    returns = "signal"
    description = "DeConvNet: signal passed where positive at each rectifier"
    rectifier_reverse = DeconvnetReverse


class GuidedBackprop(_Rectifier):
    """Guided Backprop: pass the signal where it is positive and the unit was active."""

    name = "guided_backprop"
    returns = "signal"
    description = "Guided Backprop: signal passed where positive and the unit was active"
    rectifier_reverse = GuidedReverse
