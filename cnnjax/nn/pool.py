"""Pooling modules: parameter-free wrappers of ``cnnjax.functional`` pooling."""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils


class MaxPool(nnx.Module):
    """Max pooling; see :func:`cnnjax.functional.max_pool`. ``(*batch, *spatial, C) -> (*batch, *out, C)``.

    Example:
      >>> MaxPool((2, 2))(jnp.ones((8, 28, 28, 6))).shape
      (8, 14, 14, 6)
    """

    def __init__(self, window: int | Sequence[int], stride: Any = None, padding: Any = 0, *, dilation: Any = 1,
                 ceil_mode: bool = False, spatial_dims: int | None = None):
        self.window, self.stride, self.padding = window, stride, padding
        self.dilation, self.ceil_mode, self.spatial_dims = dilation, ceil_mode, spatial_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.max_pool(x, self.window, self.stride, self.padding, dilation=self.dilation,
                          ceil_mode=self.ceil_mode, spatial_dims=self.spatial_dims)


class AvgPool(nnx.Module):
    """Average pooling; see :func:`cnnjax.functional.avg_pool`. ``(*batch, *spatial, C) -> (*batch, *out, C)``.

    Example:
      >>> AvgPool((2,))(jnp.ones((4, 10, 3))).shape
      (4, 5, 3)
    """

    def __init__(self, window: int | Sequence[int], stride: Any = None, padding: Any = 0, *, dilation: Any = 1,
                 ceil_mode: bool = False, count_include_pad: bool = True, spatial_dims: int | None = None):
        self.window, self.stride, self.padding = window, stride, padding
        self.dilation, self.ceil_mode, self.spatial_dims = dilation, ceil_mode, spatial_dims
        self.count_include_pad = count_include_pad

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.avg_pool(x, self.window, self.stride, self.padding, dilation=self.dilation, ceil_mode=self.ceil_mode,
                          count_include_pad=self.count_include_pad, spatial_dims=self.spatial_dims)


class AdaptiveAvgPool(nnx.Module):
    """Average pooling to a fixed size with PyTorch's bins. ``(*batch, *spatial, C) -> (*batch, *output_size, C)``.

    Example:
      >>> AdaptiveAvgPool((7, 7))(jnp.ones((2, 9, 13, 4))).shape
      (2, 7, 7, 4)
    """

    def __init__(self, output_size: int | Sequence[int], *, spatial_dims: int | None = None):
        self.output_size, self.spatial_dims = output_size, spatial_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.adaptive_avg_pool(x, self.output_size, spatial_dims=self.spatial_dims)


class GlobalAvgPool(nnx.Module):
    """Mean over the spatial dims. ``(*batch, *spatial, C) -> (*batch, C)`` (or keepdims).

    Example:
      >>> GlobalAvgPool(spatial_dims=2)(jnp.ones((8, 7, 7, 512))).shape
      (8, 512)
    """

    def __init__(self, *, spatial_dims: int, keepdims: bool = False):
        self.spatial_dims, self.keepdims = spatial_dims, keepdims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.global_avg_pool(x, spatial_dims=self.spatial_dims, keepdims=self.keepdims)
