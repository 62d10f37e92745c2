"""DeConvNet and Guided Backprop: the gradient with modified rectifiers (paper appendix A.2).

Both are defined for networks whose nonlinearities are rectifiers (relu, relu6, ReLU layers
without a negative slope); other activations are refused. The reverse pass starts with 1 at
the selected output, like the gradient, so that Guided Backprop is not scaled by the logit.
"""

from ..reverse import DeconvnetReverse, GuidedReverse
from .catalog import register_analyzer
from .reverse import ReverseAnalyzer


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


@register_analyzer("deconvnet")
class Deconvnet(_Rectifier):
    """DeConvNet: at rectifiers, pass the signal where it is positive (ignores the forward)."""

    returns = "signal"
    description = "DeConvNet: signal passed where positive at each rectifier"
    citation = ("Zeiler and Fergus, Visualizing and understanding convolutional networks, "
                "ECCV 2014")
    rectifier_reverse = DeconvnetReverse


@register_analyzer("guided_backprop")
class GuidedBackprop(_Rectifier):
    """Guided Backprop: pass the signal where it is positive and the unit was active."""

    returns = "signal"
    description = "Guided Backprop: signal passed where positive and the unit was active"
    citation = ("Springenberg, Dosovitskiy, Brox and Riedmiller, Striving for simplicity: the "
                "all convolutional net, ICLR workshop 2015")
    rectifier_reverse = GuidedReverse
