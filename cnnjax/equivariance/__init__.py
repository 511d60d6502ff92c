"""Equivariance and invariance toolkit: transforms (shifts, flips, quarter turns, any-angle rotations, scalings,
affine maps, C_N/D_N group elements), measured errors and error curves, Lie derivatives, pytest assertions,
layerwise reports.

The layers that restore what strides break live with the other ops and layers:
:func:`cnnjax.functional.blur_pool` / :func:`~cnnjax.functional.aps_pool` (and
``cnnjax.nn.BlurPool`` / ``APSPool``, ``downsample="blur"|"aps"`` on the zoo's ResNets,
VGGs and MNIST-1D CNNs), and the C_N/D_N group convolutions for any N
(:func:`cnnjax.functional.lifting_conv`, :func:`~cnnjax.functional.group_conv`,
``cnnjax.nn.LiftingConv``/``GroupConv``/``GroupBatchNorm``/``GroupPool``, the ``p4cnn`` and ``gcnn`` models).
"""

from cnnjax.equivariance.curves import ErrorCurve, error_curve, plot_error_curves
from cnnjax.equivariance.layerwise import LayerError, LayerwiseReport, layerwise_equivariance
from cnnjax.equivariance.metrics import (
    border_mask,
    compare,
    consistency,
    disc_mask,
    equivariance_error,
    invariance_error,
    lie_derivative,
    relative_error,
)
from cnnjax.equivariance.testing import assert_equivariant, assert_invariant
from cnnjax.equivariance.transforms import (
    Transform,
    affine,
    flip,
    group_action,
    rot90,
    rotate,
    scale,
    shift,
    subpixel_shift,
)

__all__ = [
    "ErrorCurve",
    "LayerError",
    "LayerwiseReport",
    "Transform",
    "affine",
    "assert_equivariant",
    "assert_invariant",
    "border_mask",
    "compare",
    "consistency",
    "disc_mask",
    "equivariance_error",
    "error_curve",
    "flip",
    "group_action",
    "invariance_error",
    "layerwise_equivariance",
    "lie_derivative",
    "plot_error_curves",
    "relative_error",
    "rot90",
    "rotate",
    "scale",
    "shift",
    "subpixel_shift",
]
