"""DeConvNet and Guided Backprop: the gradient with modified rectifiers (paper appendix A.2).

Both are defined for networks whose nonlinearities are rectifiers (relu, relu6, ReLU layers
without a negative slope); other activations are refused. The reverse pass starts with 1 at
the selected output, like the gradient, so that Guided Backprop is not scaled by the logit.
"""

from ..rules import DeconvnetReLURule, GuidedReLURule
from .base import ReverseAnalyzer


class _RectifierSignal(ReverseAnalyzer):
    relu_rule = None

    def _check_model(self, graph):
        for node in graph.nodes:
            if node.role == "activation" and node.info["family"] not in ("relu", "linear"):
                self._refuse(
                    node,
                    f"it has a {node.info['activation_name']} activation, and {self.name} is "
                    "defined "
                    "only for rectifier (ReLU) networks. Use 'gradient' for this model.",
                )

    def rule_for(self, node):
        if node.role == "activation" and node.info["family"] == "relu":
            return self.relu_rule(node)
        return super().rule_for(node)


class Deconvnet(_RectifierSignal):
    """DeConvNet: at rectifiers, pass the signal where it is positive (ignores the forward)."""

    name = "deconvnet"
    description = "DeConvNet: signal passed where positive at each rectifier"
    relu_rule = DeconvnetReLURule


class GuidedBackprop(_RectifierSignal):
    """Guided Backprop: pass the signal where it is positive and the unit was active."""

    name = "guided_backprop"
    description = "Guided Backprop: signal passed where positive and the unit was active"
    relu_rule = GuidedReLURule
