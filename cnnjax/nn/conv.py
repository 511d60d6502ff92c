"""Conv and ConvTranspose: NNX modules that own a kernel and bias and call ``cnnjax.functional``."""

from __future__ import annotations

import warnings

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.nn import init

#: He/Kaiming normal over fan_in = prod(k) * C_in / groups: the usual choice for ReLU nets
#: (``jax.nn.initializers.he_normal()``'s values, built without a compile per shape: see :mod:`cnnjax.nn.init`).
default_kernel_init = init.he_normal()
default_bias_init = init.zeros


def _init_params(layer, cin, cout, kernel_size, groups, transposed, spatial_dims, stride, dilation, use_bias,
                 kernel_init, bias_init, param_dtype, rngs, padding=0, padding_mode="zeros"):
    """Check the configuration when the layer is built (as Equinox does, not at the first call), then create ``kernel`` ((*k, C_in/g, C_out), or (*k, C_in, C_out/g) transposed) and ``bias``."""
    fn = type(layer).__name__
    if cin % groups or cout % groups:
        raise ValueError(f"{fn}: groups={groups} must divide in_channels={cin} and out_channels={cout}")
    n = utils.spatial_rank(fn, ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation), spatial_dims=spatial_dims)
    k = utils.as_tuple(kernel_size, n, "kernel_size", fn, minimum=1)
    s = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    d = utils.as_tuple(dilation, n, "dilation", fn, minimum=1)
    if not transposed:  # a transposed conv's padding (ints per dim) is checked with its output size, when called
        utils.resolve_padding(padding, [e * (q - 1) + 1 for q, e in zip(k, d)], k, s, d, fn)
        utils.check_padding_mode(padding_mode, fn)
    shape = k + ((cin, cout // groups) if transposed else (cin // groups, cout))
    layer.kernel = nnx.Param(kernel_init(init.params_key(rngs), shape, param_dtype))
    layer.bias = nnx.Param(bias_init(init.params_key(rngs), (cout,), param_dtype)) if use_bias else None
    layer.in_channels, layer.out_channels, layer.kernel_size = cin, cout, k


def _cast(dtype, *arrays):
    return arrays if dtype is None else tuple(None if a is None else a.astype(dtype) for a in arrays)


class Conv(nnx.Module):
    """N-D convolution layer (cross-correlation), channels-last; see :func:`cnnjax.functional.conv`.

    Args:
      in_channels, out_channels: ``C_in`` and ``C_out``.
      kernel_size: int or one per spatial dim; a bare int needs ``spatial_dims``
        (``Conv(3, 16, 3, spatial_dims=2)``) unless another size argument is a tuple.
      stride, padding, padding_mode, dilation, groups: as in the functional op
        (``padding`` defaults to 0, as in PyTorch).
      use_bias: add a ``(C_out,)`` bias.
      kernel_init: defaults to He normal (fan_in); bias_init: zeros.
      dtype: compute dtype (e.g. ``jnp.bfloat16`` for mixed precision); parameters stay ``param_dtype``.
      rngs: ``nnx.Rngs`` for initialisation.

    Shapes: ``(*batch, *spatial, C_in) -> (*batch, *out_spatial, C_out)``; kernel ``(*k, C_in // groups, C_out)``.

    Example:
      >>> layer = Conv(3, 16, (3, 3), padding="SAME", rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((8, 32, 32, 3))).shape
      (8, 32, 32, 16)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = 0,
        padding_mode: str = "zeros",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        kernel_init: Any = default_kernel_init,
        bias_init: Any = default_bias_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        spatial_dims: int | None = None,
        rngs: nnx.Rngs,
    ):
        _init_params(self, in_channels, out_channels, kernel_size, groups, False, spatial_dims, stride, dilation,
                     use_bias, kernel_init, bias_init, param_dtype, rngs, padding, padding_mode)
        self.stride, self.padding, self.padding_mode = stride, padding, padding_mode
        self.dilation, self.groups, self.dtype = dilation, groups, dtype

    @utils.array_args("x")
    def __call__(self, x: jax.Array, *, add_bias: bool = True) -> jax.Array:
        """``(*batch, *spatial, C_in) -> (*batch, *out, C_out)``. ``add_bias`` is deprecated (a fusion is the backend's
        business, not the layer's)."""
        if not add_bias:
            warnings.warn("Conv(..., add_bias=False) is deprecated: build the layer with use_bias=False instead",
                          DeprecationWarning, stacklevel=3)  # past utils.array_args
        bias = self.bias[...] if self.bias is not None and add_bias else None
        x, kernel, bias = _cast(self.dtype, x, self.kernel[...], bias)
        return F.conv(
            x, kernel, bias, stride=self.stride, padding=self.padding, padding_mode=self.padding_mode,
            dilation=self.dilation, groups=self.groups,
        )


class ConvTranspose(nnx.Module):
    """N-D transposed convolution with PyTorch's semantics; see :func:`cnnjax.functional.conv_transpose`.

    Args:
      in_channels, out_channels, kernel_size, stride, dilation, groups: as :class:`Conv`.
      padding: int or one per dim (removed from each side of the full output).
      output_padding: extra size on the high side, ``< max(stride, dilation)``.

    Shapes: ``(*batch, *spatial, C_in) -> (*batch, *out_spatial, C_out)`` with
    ``o = (i-1)s - 2p + d(k-1) + output_padding + 1``; kernel ``(*k, C_in, C_out // groups)``.

    Example:
      >>> up = ConvTranspose(16, 8, (2, 2), stride=2, rngs=nnx.Rngs(0))
      >>> up(jnp.ones((1, 7, 7, 16))).shape
      (1, 14, 14, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        kernel_init: Any = default_kernel_init,
        bias_init: Any = default_bias_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        spatial_dims: int | None = None,
        rngs: nnx.Rngs,
    ):
        _init_params(self, in_channels, out_channels, kernel_size, groups, True, spatial_dims, stride, dilation,
                     use_bias, kernel_init, bias_init, param_dtype, rngs)
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups, self.dtype = dilation, groups, dtype

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        bias = self.bias[...] if self.bias is not None else None
        x, kernel, bias = _cast(self.dtype, x, self.kernel[...], bias)
        return F.conv_transpose(
            x, kernel, bias, stride=self.stride, padding=self.padding, output_padding=self.output_padding,
            dilation=self.dilation, groups=self.groups,
        )
