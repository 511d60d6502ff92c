"""Subsampling layers: a stride-1 map subsampled plainly, by a pool over the stride, blurred (Zhang 2019) or by
polyphase selection (APS, Chaman & Dokmanic 2021); and MaxPool(stride 1) followed by one (MaxBlurPool).

The zoo's ``downsample=`` option (:mod:`cnnjax.models.downsample`) builds networks from these.
"""

from __future__ import annotations

import jax
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.nn.pool import MaxPool

DOWNSAMPLE_MODES = ("stride", "max", "avg", "blur", "aps")


def check_downsample(downsample: str, blur_size: int, fn: str) -> str:
    """``downsample`` if it is one of :data:`DOWNSAMPLE_MODES` and ``blur_size`` a valid binomial size; else ValueError."""
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"{fn}: downsample must be one of {DOWNSAMPLE_MODES}, got downsample={downsample!r}")
    F.binomial_taps(blur_size, fn, "blur_size")  # validates on the host, without building an array
    return downsample


class Subsample(nnx.Module):
    """Subsample a stride-1 map by ``stride``: plain (``"stride"``), pooled over ``stride``-sized windows
    (``"max"``, ``"avg"``), blurred (``"blur"``) or polyphase (``"aps"``).

    ``(*batch, *spatial, C) -> (*batch, *ceil(spatial / stride), C)``. ``phase`` and
    ``return_phase`` matter only for ``"aps"`` (other modes return a ``None`` phase).

    Example:
      >>> Subsample("blur", 2, 1)(jnp.ones((4, 38, 15))).shape
      (4, 19, 15)
    """

    def __init__(self, mode: str, stride: int, spatial_dims: int, *, blur_size: int = 3, padding_mode: str = "reflect"):
        self.mode = check_downsample(mode, blur_size, "Subsample")
        self.stride = (stride,) * spatial_dims
        self.blur_size, self.padding_mode = blur_size, padding_mode

    @utils.array_args("x")
    def __call__(self, x: jax.Array, phase: jax.Array | None = None, *, return_phase: bool = False):
        if self.mode == "aps":
            return F.aps_pool(x, self.stride, phase=phase, return_phase=return_phase)
        if self.mode == "blur":
            y = F.blur_pool(x, self.blur_size, self.stride, padding_mode=self.padding_mode)
        elif self.mode == "max":  # ceil_mode: the same output size as the other modes
            y = F.max_pool(x, self.stride, ceil_mode=True)
        elif self.mode == "avg":
            y = F.avg_pool(x, self.stride, ceil_mode=True, count_include_pad=False)
        else:
            y = x[(Ellipsis,) + tuple(slice(None, None, s) for s in self.stride) + (slice(None),)]
        return (y, None) if return_phase else y


class MaxPoolSubsample(nnx.Module):
    """``MaxPool(window, stride 1)`` then :class:`Subsample`: Zhang's MaxBlurPool (or max pool + APS) in one layer.

    One layer, so a network's ``nnx.Sequential`` indices (and PyTorch state-dict keys) stay put.

    Example:
      >>> MaxPoolSubsample((2, 2), "blur")(jnp.ones((1, 224, 224, 64))).shape
      (1, 112, 112, 64)
    """

    def __init__(self, window: tuple[int, ...], mode: str, stride: int = 2, *, blur_size: int = 3):
        self.pool = MaxPool(window, 1)
        self.subsample = Subsample(mode, stride, len(window), blur_size=blur_size)

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return self.subsample(self.pool(x))
