"""Propagation rules, one small reverse-layer class each."""

from .base import GradientRule, ReverseLayer, vjp
from .embedding import EmbeddingRule, EmbeddingTimesInputRule
from .signal import DeconvnetReLURule, GuidedReLURule

__all__ = [
    "ReverseLayer",
    "vjp",
    "GradientRule",
    "DeconvnetReLURule",
    "GuidedReLURule",
    "EmbeddingRule",
    "EmbeddingTimesInputRule",
]
