"""Equivariance and invariance toolkit: transforms, measured errors, pytest assertions, layerwise reports.

The layers that restore what strides break live with the other ops and layers:
:func:`cnnjax.functional.blur_pool` / :func:`~cnnjax.functional.aps_pool` (and
``cnnjax.nn.BlurPool`` / ``APSPool``, ``downsample="blur"|"aps"`` on the zoo's ResNets,
VGGs and MNIST-1D CNNs), and the p4/p4m group convolutions
(:func:`cnnjax.functional.lifting_conv`, :func:`~cnnjax.functional.group_conv`,
``cnnjax.nn.LiftingConv``/``GroupConv``/``GroupBatchNorm``/``GroupPool``, the ``p4cnn`` model).
"""

from cnnjax.equivariance.layerwise import LayerError, LayerwiseReport, layerwise_equivariance
from cnnjax.equivariance.metrics import (
    border_mask,
    compare,
    consistency,
    equivariance_error,
    invariance_error,
    lie_derivative,
    relative_error,
)
from cnnjax.equivariance.testing import assert_equivariant, assert_invariant
from cnnjax.equivariance.transforms import Transform, flip, group_action, rot90, shift, subpixel_shift

__all__ = [
    "LayerError",
    "LayerwiseReport",
    "Transform",
    "assert_equivariant",
    "assert_invariant",
    "border_mask",
    "compare",
    "consistency",
    "equivariance_error",
    "flip",
    "group_action",
    "invariance_error",
    "layerwise_equivariance",
    "lie_derivative",
    "relative_error",
    "rot90",
    "shift",
    "subpixel_shift",
]
