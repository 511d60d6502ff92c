"""How a zoo model subsamples: ``downsample="stride"`` (as published), ``"max"``/``"avg"`` (a pool),
``"blur"`` (Zhang 2019) or ``"aps"`` (Chaman & Dokmanic 2021).

With any mode but ``"stride"`` every strided conv or pool runs at stride 1 and is followed by
:class:`Subsample`: a strided ``conv`` + ReLU becomes ``conv(stride 1)`` + ReLU + BlurPool,
``MaxPool(k, s)`` becomes ``MaxPool(k, stride 1)`` + BlurPool (or APS). Output sizes and
parameter counts are unchanged. A residual block chooses its APS phase on the main branch
and subsamples the shortcut with the same phase, so both stay aligned.
"""

from __future__ import annotations

from typing import Any

from cnnjax.nn.subsample import DOWNSAMPLE_MODES, MaxPoolSubsample, Subsample, check_downsample

__all__ = ["DOWNSAMPLE_MODES", "MaxPoolSubsample", "Subsample", "check_downsample", "maybe_subsample"]


def maybe_subsample(mode: str, stride: int, spatial_dims: int, blur_size: int, conv_padding_mode: str = "zeros") -> Any:
    """``(layer stride, Subsample or None)``: keep the stride for ``"stride"`` or 1, else move it into a Subsample.

    Circular networks blur circularly, so they stay exactly shift-equivariant; the others
    reflect, the paper's default.
    """
    if mode == "stride" or stride == 1:
        return stride, None
    blur_padding = "circular" if conv_padding_mode == "circular" else "reflect"
    return 1, Subsample(mode, stride, spatial_dims, blur_size=blur_size, padding_mode=blur_padding)
