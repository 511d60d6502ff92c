"""BlurPool and APSPool: parameter-free, shift-friendly downsampling layers."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.nn import validation


class BlurPool(nnx.Module):
    """Anti-aliased downsampling; see :func:`cnnjax.functional.blur_pool`. ``(*batch, *spatial, C) -> (*batch, *ceil(spatial / s), C)``.

    Example:
      >>> BlurPool(3, (2, 2))(jnp.ones((8, 28, 28, 6))).shape
      (8, 14, 14, 6)
    """

    def __init__(self, filter_size: int = 3, stride: Any = 2, *, padding_mode: str = "reflect",
                 spatial_dims: int | None = None):
        n = utils.spatial_rank("BlurPool", ("stride", stride), spatial_dims=spatial_dims)
        validation.check_config("BlurPool", "blur_pool", lambda p: F.blur_pool(
            p, filter_size, stride, padding_mode=padding_mode, spatial_dims=spatial_dims), n)
        self.filter_size, self.stride, self.padding_mode, self.spatial_dims = filter_size, stride, padding_mode, spatial_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.blur_pool(x, self.filter_size, self.stride, padding_mode=self.padding_mode, spatial_dims=self.spatial_dims)


class APSPool(nnx.Module):
    """Adaptive polyphase sampling; see :func:`cnnjax.functional.aps_pool`. ``(*batch, *spatial, C) -> (*batch, *spatial / s, C)``.

    ``layer(x, phase=p)`` reuses a phase chosen elsewhere; ``return_phase=True`` returns it.

    Example:
      >>> APSPool((2, 2))(jnp.ones((8, 28, 28, 6))).shape
      (8, 14, 14, 6)
    """

    def __init__(self, stride: Any = 2, *, p: float = 2.0, spatial_dims: int | None = None):
        self.stride, self.p, self.spatial_dims = stride, p, spatial_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array, phase: jax.Array | None = None, *, return_phase: bool = False):
        return F.aps_pool(x, self.stride, phase=phase, p=self.p, spatial_dims=self.spatial_dims,
                          return_phase=return_phase)
