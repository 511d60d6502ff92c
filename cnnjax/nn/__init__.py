"""Flax NNX modules: thin wrappers that own parameters and call :mod:`cnnjax.functional`.

PyTorch's dimension-specific spellings (``Conv2d(1, 6, 5)``, ``MaxPool2d(2, 2)``, ``BatchNorm2d``) are in
:mod:`cnnjax.nn.fixed_dims`; they and ``Linear`` take ``rngs`` as optional (see :func:`manual_seed`).
Containers come from Flax: use ``nnx.Sequential`` (it forwards ``train()``/``eval()``). ``Linear`` is Flax's
``nnx.Linear`` with initializers that build fast (:mod:`cnnjax.nn.init`).
"""

from flax.nnx import Sequential

from cnnjax.nn.antialias import APSPool, BlurPool
from cnnjax.nn.conv import Conv, ConvTranspose, default_bias_init, default_kernel_init
from cnnjax.nn.fixed_dims import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from cnnjax.nn.init import manual_seed
from cnnjax.nn.excitation import SqueezeExcitation
from cnnjax.nn.misc import Dropout, Flatten, Identity, LayerScale, PixelShuffle, StochasticDepth, Upsample
from cnnjax.nn.linear import Linear
from cnnjax.nn.group import GroupBatchNorm, GroupConv, GroupPool, LiftingConv
from cnnjax.nn.norm import NORM_KINDS, BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LocalResponseNorm, norm_layer, norm_relu
from cnnjax.nn.pool import AdaptiveAvgPool, AvgPool, GlobalAvgPool, MaxPool
from cnnjax.nn.spatial_transformer import SpatialTransformer
from cnnjax.nn.stages import ConvReLUMaxPool
from cnnjax.nn.subsample import MaxPoolSubsample, Subsample

__all__ = [
    "APSPool",
    "AdaptiveAvgPool",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AvgPool",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BatchNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BlurPool",
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvReLUMaxPool",
    "ConvTranspose",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
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
    "LayerScale",
    "LiftingConv",
    "Linear",
    "LocalResponseNorm",
    "MaxPool",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxPoolSubsample",
    "NORM_KINDS",
    "PixelShuffle",
    "Sequential",
    "SpatialTransformer",
    "SqueezeExcitation",
    "StochasticDepth",
    "Subsample",
    "Upsample",
    "default_bias_init",
    "default_kernel_init",
    "manual_seed",
    "norm_layer",
    "norm_relu",
]
