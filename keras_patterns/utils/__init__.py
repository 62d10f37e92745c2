"""Helpers under the names iNNvestigate code imports: `model_wo_softmax`,
`model_wo_output_activation` and `visualizations` (`heatmap`, `graymap`, `project`,
`gamma`, `clip_quantile`). The import paths of the iNNvestigate compatibility surface; the
rest of it is in `keras_patterns.innvestigate`."""

from . import visualizations
from .models import model_wo_output_activation, model_wo_softmax

__all__ = ["model_wo_output_activation", "model_wo_softmax", "visualizations"]
