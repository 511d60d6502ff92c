"""Flax NNX modules: thin wrappers that own parameters and call :mod:`cnnjax.functional`.

Containers come from Flax: use ``nnx.Sequential`` (it forwards ``train()``/``eval()``). ``Linear`` is Flax's
``nnx.Linear`` with initializers that build fast (:mod:`cnnjax.nn.init`).
"""

from flax.nnx import Sequential

from cnnjax.nn.antialias import APSPool, BlurPool
from cnnjax.nn.conv import Conv, ConvTranspose, default_bias_init, default_kernel_init
from cnnjax.nn.misc import Dropout, Flatten, Identity, PixelShuffle, Upsample
from cnnjax.nn.linear import Linear
from cnnjax.nn.group import GroupBatchNorm, GroupConv, GroupPool, LiftingConv
from cnnjax.nn.norm import NORM_KINDS, BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LocalResponseNorm, norm_layer, norm_relu
from cnnjax.nn.pool import AdaptiveAvgPool, AvgPool, GlobalAvgPool, MaxPool
from cnnjax.nn.stages import ConvReLUMaxPool
from cnnjax.nn.subsample import MaxPoolSubsample, Subsample

__all__ = [
    "APSPool",
    "NORM_KINDS",
    "AdaptiveAvgPool",
    "AvgPool",
    "BatchNorm",
    "BlurPool",
    "Conv",
    "ConvReLUMaxPool",
    "ConvTranspose",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "GroupBatchNorm",
    "GroupConv",
    "GroupNorm",
    "GroupPool",
    "Identity",
    "InstanceNorm",
    "LayerNorm",
    "LiftingConv",
    "Linear",
    "LocalResponseNorm",
    "MaxPool",
    "MaxPoolSubsample",
    "PixelShuffle",
    "Sequential",
    "Subsample",
    "Upsample",
    "default_bias_init",
    "norm_layer",
    "norm_relu",
    "default_kernel_init",
]
