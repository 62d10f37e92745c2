"""Kernel maps: the linear part y = W^T x of a kernel layer, with the kernel as a parameter.

Every kernel layer (Dense, Conv, ConvTranspose, DepthwiseConv and the two halves of a
SeparableConv) is split by canonization into a kernel map, a bias and an activation. A kernel
map can be applied with another kernel of the same shape: PatternNet back-propagates with the
pattern A and PatternAttribution with W*A in place of W, and LRP rules with the positive or
negative part of W. Back-propagating through a kernel map is its vector-Jacobian product.
"""

from keras import layers

from .base import DenseMap, KernelMap, shape_of
from .folded import FoldedMap
from .spatial import (
    ConvMap,
    ConvTransposeMap,
    DepthwiseMap,
    PointwiseMap,
    SeparableDepthwiseMap,
)

KERNEL_LAYERS = {
    layers.Dense: (DenseMap,),
    layers.Conv1D: (ConvMap,),
    layers.Conv2D: (ConvMap,),
    layers.Conv3D: (ConvMap,),
    layers.Conv1DTranspose: (ConvTransposeMap,),
    layers.Conv2DTranspose: (ConvTransposeMap,),
    layers.Conv3DTranspose: (ConvTransposeMap,),
    layers.DepthwiseConv1D: (DepthwiseMap,),
    layers.DepthwiseConv2D: (DepthwiseMap,),
    layers.SeparableConv1D: (SeparableDepthwiseMap, PointwiseMap),
    layers.SeparableConv2D: (SeparableDepthwiseMap, PointwiseMap),
}


def kernel_maps(layer):
    """The kernel maps of `layer`, or None if it is not a kernel layer.

    A subclass counts only if it keeps the base class's `call`: one that overrides it may
    compute something else, and is refused rather than explained wrongly.
    """
    for cls in type(layer).__mro__:
        if cls in KERNEL_LAYERS:
            if type(layer).call is not cls.call:
                return None
            maps = KERNEL_LAYERS[cls]
            return [m(layer, with_bias=k == len(maps) - 1) for k, m in enumerate(maps)]
    return None


__all__ = ["KERNEL_LAYERS", "KernelMap", "DenseMap", "ConvMap", "ConvTransposeMap",
           "DepthwiseMap", "SeparableDepthwiseMap", "PointwiseMap", "FoldedMap", "kernel_maps",
           "shape_of"]
