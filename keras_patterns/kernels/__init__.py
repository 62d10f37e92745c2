"""Kernel maps: the linear part y = W^T x of a kernel layer, with the kernel as a parameter.

Every kernel layer (Dense, EinsumDense, Conv, ConvTranspose, DepthwiseConv and the two halves
of a SeparableConv) is split by canonization into a kernel map, a bias and an activation. A kernel
map can be applied with another kernel of the same shape: PatternNet back-propagates with the
pattern A and PatternAttribution with W*A in place of W, and LRP rules with the positive or
negative part of W. Back-propagating through a kernel map is its vector-Jacobian product.
Which layer applies which kernel maps is registered with its role (`roles.LAYERS`).
"""

from .base import DenseMap, KernelMap, shape_of
from .einsum import EinsumMap
from .folded import FoldedMap
from .spatial import (
    ConvMap,
    ConvTransposeMap,
    DepthwiseMap,
    PointwiseMap,
    SeparableDepthwiseMap,
)

__all__ = ["KernelMap", "DenseMap", "EinsumMap", "ConvMap", "ConvTransposeMap", "DepthwiseMap",
           "SeparableDepthwiseMap", "PointwiseMap", "FoldedMap", "shape_of"]
