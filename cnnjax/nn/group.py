"""Group-equivariant layers for p4 and p4m (Cohen & Welling 2016); see :mod:`cnnjax.functional.group`.

Group maps are ``(*batch, H, W, C * |G|)`` with channel ``c * |G| + h``. Spatial pooling
(:class:`~cnnjax.nn.MaxPool`), ReLU and dropout act per channel, so they keep the group
structure as they are (use windows that tile the map, e.g. 2x2/2 on even sizes).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.nn import init
from cnnjax.nn.conv import default_bias_init, default_kernel_init
from cnnjax.nn.norm import BatchNorm


class _GroupConvBase(nnx.Module):
    def __init__(self, shape, out_channels, group, stride, padding, padding_mode, dilation, use_bias,
                 kernel_init, bias_init, param_dtype, rngs):
        F.group_order(group)  # an unknown group fails here, not at the first call
        self.group, self.stride, self.padding, self.padding_mode, self.dilation = group, stride, padding, padding_mode, dilation
        self.kernel = nnx.Param(kernel_init(init.params_key(rngs), shape, param_dtype))
        self.bias = nnx.Param(bias_init(init.params_key(rngs), (out_channels,), param_dtype)) if use_bias else None

    def _conv(self, op, x):
        b = self.bias[...] if self.bias is not None else None
        return op(x, self.kernel[...], b, group=self.group, stride=self.stride, padding=self.padding,
                  padding_mode=self.padding_mode, dilation=self.dilation)


class LiftingConv(_GroupConvBase):
    """Lifting conv Z2 -> G: ``(*batch, H, W, C_in) -> (*batch, H', W', C_out * |G|)``; kernel ``(k, k, C_in, C_out)``.

    Args:
      in_channels, out_channels: ``C_in`` and the number of output fields ``C_out``.
      kernel_size: the square kernel's side ``k``.
      group: "p4" or "p4m".
      stride, padding, padding_mode, dilation: as :func:`cnnjax.functional.conv`.
      use_bias: one bias per field, shared over the group axis.

    Example:
      >>> LiftingConv(1, 10, 3, rngs=nnx.Rngs(0))(jnp.ones((2, 28, 28, 1))).shape
      (2, 26, 26, 40)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, group: str = "p4", stride: Any = 1,
                 padding: Any = 0, padding_mode: str = "zeros", dilation: Any = 1, use_bias: bool = True,
                 kernel_init: Any = default_kernel_init, bias_init: Any = default_bias_init,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        super().__init__(shape, out_channels, group, stride, padding, padding_mode, dilation, use_bias,
                         kernel_init, bias_init, param_dtype, rngs)

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return self._conv(F.lifting_conv, x)


class GroupConv(_GroupConvBase):
    """Group conv G -> G: ``(*batch, H, W, C_in * |G|) -> (*batch, H', W', C_out * |G|)``; kernel ``(k, k, C_in, |G|, C_out)``.

    He-normal initialisation over the true fan-in ``k * k * C_in * |G|``.

    Example:
      >>> GroupConv(10, 10, 3, padding=1, rngs=nnx.Rngs(0))(jnp.ones((2, 12, 12, 40))).shape
      (2, 12, 12, 40)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, group: str = "p4", stride: Any = 1,
                 padding: Any = 0, padding_mode: str = "zeros", dilation: Any = 1, use_bias: bool = True,
                 kernel_init: Any = default_kernel_init, bias_init: Any = default_bias_init,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
        n = F.group_order(group)
        shape = (kernel_size, kernel_size, in_channels, n, out_channels)
        # He normal treats axis -2 as fan-out and the rest as fan-in; fold |G| into fan-in explicitly.
        init = lambda key, s, dtype: kernel_init(key, (*s[:2], s[2] * s[3], s[4]), dtype).reshape(s)  # noqa: E731
        super().__init__(shape, out_channels, group, stride, padding, padding_mode, dilation, use_bias,
                         init, bias_init, param_dtype, rngs)

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return self._conv(F.group_conv, x)


class GroupBatchNorm(BatchNorm):
    """Batch norm with statistics and affine parameters per field, shared over the group axis.

    ``(*batch, *spatial, C * |G|) -> same``; ``scale``/``bias``/``mean``/``var`` are ``(C,)``.
    See :func:`cnnjax.functional.group_batch_norm`.

    Example:
      >>> GroupBatchNorm(10, group="p4")(jnp.ones((2, 6, 6, 40))).shape
      (2, 6, 6, 40)
    """

    def __init__(self, num_features: int, *, group: str = "p4", **kwargs: Any):
        F.group_order(group)
        super().__init__(num_features, **kwargs)
        self.group = group

    def _normalize(self, x, scale, bias, stats, **kwargs):
        return F.group_batch_norm(x, scale, bias, stats, group=self.group, **kwargs)


class GroupPool(nnx.Module):
    """Max or mean over the group axis: ``(*batch, *spatial, C * |G|) -> (*batch, *spatial, C)``, rotation-invariant.

    Example:
      >>> GroupPool("p4m")(jnp.ones((2, 6, 6, 80))).shape
      (2, 6, 6, 10)
    """

    def __init__(self, group: str = "p4", reduce: str = "max"):
        F.group_order(group)
        self.group, self.reduce = group, reduce

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.group_pool(x, self.group, self.reduce)
