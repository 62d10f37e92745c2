"""The reverse model: one reverse layer per forward node (`layers`, `rectifier`,
`embedding`, `pattern`, `relevance`, `attention`), assembled by
`model.build_reverse_model`, optionally with a per-sample scale beside the signal
(`scaled`)."""

from .attention import (
    GatedGradient,
    HeldConstant,
    IdentityRuleGradient,
    LinearizedRelevance,
    NormPattern,
    NormRelevance,
)
from .embedding import EmbeddingReverse, EmbeddingTimesInputReverse
from .layers import GradientReverse, ReverseLayer, vjp
from .model import build_reverse_model
from .pattern import PatternReverse
from .rectifier import DeconvnetReverse, GuidedReverse
from .relevance import KernelRelevance, PassRelevance, SumRelevance

__all__ = [
    "ReverseLayer", "vjp", "GradientReverse", "DeconvnetReverse", "GuidedReverse",
    "EmbeddingReverse", "EmbeddingTimesInputReverse", "PatternReverse", "KernelRelevance",
    "SumRelevance", "PassRelevance", "LinearizedRelevance", "NormRelevance", "HeldConstant",
    "GatedGradient", "IdentityRuleGradient", "NormPattern",
    "build_reverse_model",
]
