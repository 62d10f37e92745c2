"""The reverse model: one reverse layer per forward node (`layers`, `rectifier`,
`embedding`, `pattern`, `relevance`, `attention`), assembled by
`model.build_reverse_model`, optionally with a per-sample scale beside the signal
(`scaled`); `tape.TapePass` gives its result as one tape gradient of a surrogate forward
pass; `embedding.EmbeddingCut` cuts a graph at its embedding outputs, so that token
inputs are explained in embedding space."""

from .attention import (
    GatedGradient,
    HeldConstant,
    IdentityRuleGradient,
    LinearizedRelevance,
    NormPattern,
    NormRelevance,
)
from .embedding import EmbeddingCut, EmbeddingReverse, EmbeddingTimesInputReverse
from .layers import GradientReverse, ReverseLayer, vjp
from .model import build_reverse_model
from .pattern import PatternReverse
from .rectifier import DeconvnetReverse, GuidedReverse
from .relevance import KernelRelevance, PassRelevance, SumRelevance
from .tape import TapePass

__all__ = [
    "ReverseLayer", "vjp", "GradientReverse", "DeconvnetReverse", "GuidedReverse",
    "EmbeddingCut", "EmbeddingReverse", "EmbeddingTimesInputReverse", "PatternReverse",
    "KernelRelevance", "SumRelevance", "PassRelevance", "LinearizedRelevance",
    "NormRelevance", "HeldConstant", "GatedGradient", "IdentityRuleGradient", "NormPattern",
    "build_reverse_model", "TapePass",
]
