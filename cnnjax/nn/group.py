"""Group-equivariant layers for C_N and D_N, any N (p4 = C4 and p4m = D4 of Cohen & Welling 2016);
see :mod:`cnnjax.functional.group`.

For groups whose rotations stay on the pixel grid (C1, C2, C4, D1, D2, D4) a conv owns
pixel filters, ``kernel``. For the others (C8, C16, D8, ...) it owns ``coefficients`` in
the steerable basis of :mod:`cnnjax.functional.steerable` (``M`` functions per ``k x k``
filter: 6 for 3x3, 13 for 5x5; 4 and 7 with ``max_frequency=1``), as escnn's ``R2Conv`` owns
basis weights: the filters lie in the basis, so they rotate exactly, and the parameter count is honest.

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
from cnnjax.functional.group import on_grid
from cnnjax.nn import init
from cnnjax.nn.conv import default_bias_init, default_kernel_init
from cnnjax.nn.norm import BatchNorm


def _check_group(group: str, fn: str) -> None:
    try:
        F.group_order(group)
    except ValueError as e:
        raise ValueError(f"{fn}: {e}") from None


class _GroupConvBase(nnx.Module):
    def __init__(self, shape, out_channels, group, stride, padding, padding_mode, dilation, use_bias,
                 kernel_init, bias_init, param_dtype, rngs, max_frequency=None):
        fn = type(self).__name__
        _check_group(group, fn)  # an unknown group fails here, not at the first call
        if max_frequency is not None and on_grid(group):
            raise ValueError(f"{fn}: max_frequency limits the steerable filters of groups off the pixel grid "
                             f"(C8, D8, C16, ...); {group!r} owns pixel filters, so pass max_frequency=None")
        self.group, self.stride, self.padding, self.padding_mode, self.dilation = group, stride, padding, padding_mode, dilation
        k = shape[0]
        if on_grid(group):
            self.kernel = nnx.Param(kernel_init(init.params_key(rngs), shape, param_dtype))
            self.basis = None
        else:
            if k % 2 == 0:
                raise ValueError(f"{fn}: {group!r} rotates filters off the pixel grid about their centre pixel, so "
                                 f"kernel_size must be odd, got {k}")
            try:
                basis = F.steerable.filter_basis(k, max_frequency)
            except ValueError as e:
                raise ValueError(f"{fn}: {e}") from None
            self.basis = nnx.Variable(jnp.asarray(basis, param_dtype))  # fixed, not trained
            m = self.basis.shape[-1]
            # He normal over fan_in = M * C_in (* |G|) gives the pixel filters He's variance (basis columns ~unit norm)
            self.coefficients = nnx.Param(kernel_init(init.params_key(rngs), (m,) + shape[2:], param_dtype))
        self.bias = nnx.Param(bias_init(init.params_key(rngs), (out_channels,), param_dtype)) if use_bias else None

    def filters(self) -> jax.Array:
        """The planar filters ``(k, k, ...)``: ``kernel``, or the basis times ``coefficients``."""
        if self.basis is None:
            return self.kernel[...]
        return jnp.einsum("ijm,m...->ij...", self.basis[...], self.coefficients[...])

    def _conv(self, op, x):
        b = self.bias[...] if self.bias is not None else None
        return op(x, self.filters(), b, group=self.group, stride=self.stride, padding=self.padding,
                  padding_mode=self.padding_mode, dilation=self.dilation)


class LiftingConv(_GroupConvBase):
    """Lifting conv Z2 -> G: ``(*batch, H, W, C_in) -> (*batch, H', W', C_out * |G|)``; kernel ``(k, k, C_in, C_out)``.

    Args:
      in_channels, out_channels: ``C_in`` and the number of output fields ``C_out``.
      kernel_size: the square kernel's side ``k``.
      group: "C<N>" or "D<N>" for any N ("p4" = "C4", "p4m" = "D4").
      stride, padding, padding_mode, dilation: as :func:`cnnjax.functional.conv`.
      use_bias: one bias per field, shared over the group axis.
      max_frequency: off-grid groups only: the steerable basis' highest angular frequency
        (:func:`cnnjax.functional.steerable.filter_basis`); ``None`` keeps every frequency the grid carries.

    Example:
      >>> LiftingConv(1, 10, 3, rngs=nnx.Rngs(0))(jnp.ones((2, 28, 28, 1))).shape
      (2, 26, 26, 40)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, group: str = "p4", stride: Any = 1,
                 padding: Any = 0, padding_mode: str = "zeros", dilation: Any = 1, use_bias: bool = True,
                 kernel_init: Any = default_kernel_init, bias_init: Any = default_bias_init,
                 param_dtype: Any = jnp.float32, max_frequency: int | None = None, rngs: nnx.Rngs):
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        super().__init__(shape, out_channels, group, stride, padding, padding_mode, dilation, use_bias,
                         kernel_init, bias_init, param_dtype, rngs, max_frequency)

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return self._conv(F.lifting_conv, x)


class GroupConv(_GroupConvBase):
    """Group conv G -> G: ``(*batch, H, W, C_in * |G|) -> (*batch, H', W', C_out * |G|)``; kernel ``(k, k, C_in, |G|, C_out)``.

    He-normal initialisation over the true fan-in ``k * k * C_in * |G|``. Off-grid groups own
    ``coefficients`` ``(M, C_in, |G|, C_out)`` instead of the kernel (see the module's docstring).
    Arguments as :class:`LiftingConv`'s.

    Example:
      >>> GroupConv(10, 10, 3, padding=1, rngs=nnx.Rngs(0))(jnp.ones((2, 12, 12, 40))).shape
      (2, 12, 12, 40)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, group: str = "p4", stride: Any = 1,
                 padding: Any = 0, padding_mode: str = "zeros", dilation: Any = 1, use_bias: bool = True,
                 kernel_init: Any = default_kernel_init, bias_init: Any = default_bias_init,
                 param_dtype: Any = jnp.float32, max_frequency: int | None = None, rngs: nnx.Rngs):
        _check_group(group, "GroupConv")
        n = F.group_order(group)
        shape = (kernel_size, kernel_size, in_channels, n, out_channels)
        # He normal treats axis -2 as fan-out and the rest as fan-in; fold |G| into fan-in explicitly.
        init = lambda key, s, dtype: kernel_init(key, (*s[:-3], s[-3] * s[-2], s[-1]), dtype).reshape(s)  # noqa: E731
        super().__init__(shape, out_channels, group, stride, padding, padding_mode, dilation, use_bias,
                         init, bias_init, param_dtype, rngs, max_frequency)

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
        _check_group(group, "GroupBatchNorm")
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
        _check_group(group, "GroupPool")
        self.group, self.reduce = group, reduce

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.group_pool(x, self.group, self.reduce)
