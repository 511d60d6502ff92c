"""PyTorch's dimension-specific layers: ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, ``MaxPool1d/2d/3d``,
``AvgPool1d/2d/3d``, ``AdaptiveAvgPool1d/2d/3d`` and ``BatchNorm1d/2d/3d``.

Each is the N-d layer with its number of spatial dims fixed, so bare ints work (``Conv2d(1, 6, 5)``,
``MaxPool2d(2, 2)``), with PyTorch's positional order and names (``bias=``, ``kernel_size``) and, for
BatchNorm, PyTorch's ``momentum`` (the weight of the new batch, 0.1). ``rngs=`` is optional: without it a
layer draws from the global stream that :func:`cnnjax.nn.manual_seed` seeds, as PyTorch's layers do.

Arrays stay channels-last: ``(N, H, W, C)`` in and out, kernels ``(*k, C_in // groups, C_out)``; the
subclasses keep the parent's parameter names, so :func:`cnnjax.models.load_torch_state_dict` converts
them like any ``Conv`` or ``BatchNorm``.

Example (the lectures' SimpleCNN):
  >>> from cnnjax import nn
  >>> model = nnx.Sequential(nn.Conv2d(1, 6, 3, padding=1), jax.nn.relu, nn.MaxPool2d(2, 2),
  ...                        nn.Conv2d(6, 16, 3, padding=1), jax.nn.relu, nn.MaxPool2d(2, 2),
  ...                        nn.Flatten(), nn.Linear(7 * 7 * 16, 10))
  >>> model(jnp.ones((8, 28, 28, 1))).shape
  (8, 10)
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import nnx

from cnnjax.functional import utils
from cnnjax.nn import init
from cnnjax.nn.conv import Conv, ConvTranspose
from cnnjax.nn.norm import BatchNorm
from cnnjax.nn.pool import AdaptiveAvgPool, AvgPool, MaxPool

_Size = int | Sequence[int]
_DIMS = {1: "L", 2: "H, W", 3: "D, H, W"}


def _check_rank(layer: nnx.Module, x: jax.Array, n: int, *, allow_flat: bool = False) -> None:
    """``x`` needs ``n`` spatial dims and channels last (``(N, C)`` too where ``allow_flat``, as BatchNorm1d)."""
    if x.ndim < n + 1 and not (allow_flat and x.ndim >= 1):
        raise ValueError(f"{type(layer).__name__}: x must be (*batch, {_DIMS[n]}, C), channels last, "
                         f"got shape {tuple(x.shape)}")


def _conv(n: int) -> type:
    class ConvNd(Conv):
        def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size, stride: _Size = 1,
                     padding: Any = 0, dilation: _Size = 1, groups: int = 1, bias: bool = True,
                     padding_mode: str = "zeros", *, rngs: nnx.Rngs | None = None, **kwargs: Any):
            super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             padding_mode=padding_mode, dilation=dilation, groups=groups, use_bias=bias,
                             spatial_dims=n, rngs=init.layer_rngs(rngs), **kwargs)

        @utils.array_args("x")
        def __call__(self, x: jax.Array) -> jax.Array:
            _check_rank(self, x, n)
            return super().__call__(x)

    ConvNd.__name__ = ConvNd.__qualname__ = f"Conv{n}d"
    ConvNd.__doc__ = (f"``torch.nn.Conv{n}d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, "
                      f"groups=1, bias=True, padding_mode='zeros')``, channels-last: ``(*batch, {_DIMS[n]}, C_in) -> "
                      f"(*batch, out..., C_out)``; kernel ``(*k, C_in // groups, C_out)``. See :class:`Conv`.")
    return ConvNd


def _conv_transpose(n: int) -> type:
    class ConvTransposeNd(ConvTranspose):
        def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size, stride: _Size = 1,
                     padding: _Size = 0, output_padding: _Size = 0, groups: int = 1, bias: bool = True,
                     dilation: _Size = 1, *, rngs: nnx.Rngs | None = None, **kwargs: Any):
            super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation, groups=groups, use_bias=bias,
                             spatial_dims=n, rngs=init.layer_rngs(rngs), **kwargs)

        @utils.array_args("x")
        def __call__(self, x: jax.Array) -> jax.Array:
            _check_rank(self, x, n)
            return super().__call__(x)

    ConvTransposeNd.__name__ = ConvTransposeNd.__qualname__ = f"ConvTranspose{n}d"
    ConvTransposeNd.__doc__ = (
        f"``torch.nn.ConvTranspose{n}d(in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, "
        f"groups=1, bias=True, dilation=1)``, channels-last ``(*batch, {_DIMS[n]}, C_in)``. See :class:`ConvTranspose`.")
    return ConvTransposeNd


def _max_pool(n: int) -> type:
    class MaxPoolNd(MaxPool):
        def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: Any = 0, dilation: _Size = 1,
                     ceil_mode: bool = False):
            super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, spatial_dims=n)

        @utils.array_args("x")
        def __call__(self, x: jax.Array) -> jax.Array:
            _check_rank(self, x, n)
            return super().__call__(x)

    MaxPoolNd.__name__ = MaxPoolNd.__qualname__ = f"MaxPool{n}d"
    MaxPoolNd.__doc__ = (f"``torch.nn.MaxPool{n}d(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)``, "
                         f"channels-last ``(*batch, {_DIMS[n]}, C)``. See :class:`MaxPool`.")
    return MaxPoolNd


def _avg_pool(n: int) -> type:
    class AvgPoolNd(AvgPool):
        def __init__(self, kernel_size: _Size, stride: _Size | None = None, padding: Any = 0, ceil_mode: bool = False,
                     count_include_pad: bool = True):
            super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                             spatial_dims=n)

        @utils.array_args("x")
        def __call__(self, x: jax.Array) -> jax.Array:
            _check_rank(self, x, n)
            return super().__call__(x)

    AvgPoolNd.__name__ = AvgPoolNd.__qualname__ = f"AvgPool{n}d"
    AvgPoolNd.__doc__ = (f"``torch.nn.AvgPool{n}d(kernel_size, stride=None, padding=0, ceil_mode=False, "
                         f"count_include_pad=True)``, channels-last ``(*batch, {_DIMS[n]}, C)``. See :class:`AvgPool`.")
    return AvgPoolNd


def _adaptive_avg_pool(n: int) -> type:
    class AdaptiveAvgPoolNd(AdaptiveAvgPool):
        def __init__(self, output_size: _Size):
            super().__init__(output_size, spatial_dims=n)

        @utils.array_args("x")
        def __call__(self, x: jax.Array) -> jax.Array:
            _check_rank(self, x, n)
            return super().__call__(x)

    AdaptiveAvgPoolNd.__name__ = AdaptiveAvgPoolNd.__qualname__ = f"AdaptiveAvgPool{n}d"
    AdaptiveAvgPoolNd.__doc__ = (f"``torch.nn.AdaptiveAvgPool{n}d(output_size)``, channels-last "
                                 f"``(*batch, {_DIMS[n]}, C)``. See :class:`AdaptiveAvgPool`.")
    return AdaptiveAvgPoolNd


def _batch_norm(n: int) -> type:
    class BatchNormNd(BatchNorm):
        def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                     track_running_stats: bool = True, *, rngs: nnx.Rngs | None = None, **kwargs: Any):
            name = f"BatchNorm{n}d"
            if not 0.0 <= momentum <= 1.0:
                raise ValueError(f"{name}: momentum must be in [0, 1] (PyTorch's: the weight of the new batch), "
                                 f"got momentum={momentum!r}")
            if not track_running_stats:
                raise ValueError(f"{name}: track_running_stats=False is not supported; the layer keeps running "
                                 "statistics, and eval mode uses them")
            super().__init__(num_features, momentum=1.0 - momentum, eps=eps, use_scale=affine, use_bias=affine,
                             rngs=rngs, **kwargs)

        @utils.array_args("x")
        def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
            _check_rank(self, x, n, allow_flat=n == 1)
            training = not (self.use_running_average if use_running_average is None else use_running_average)
            old = self.var[...]
            y = super().__call__(x, use_running_average)
            count = x.size // x.shape[-1]
            if training and self.axis_name is None and count > 1:
                # PyTorch keeps the unbiased batch variance in the running average, where BatchNorm (Flax's
                # convention) keeps the biased one: rescale the batch's share of the update by count / (count - 1)
                m = self.momentum
                self.var[...] = m * old + (self.var[...] - m * old) * (count / (count - 1))
            return y

    BatchNormNd.__name__ = BatchNormNd.__qualname__ = f"BatchNorm{n}d"
    BatchNormNd.__doc__ = (
        f"``torch.nn.BatchNorm{n}d(num_features, eps=1e-5, momentum=0.1, affine=True)``, channels-last "
        f"``(*batch, {_DIMS[n]}, C)``{' or (N, C)' if n == 1 else ''}. ``momentum`` is PyTorch's (the new batch's "
        f"weight); :class:`BatchNorm` takes Flax's, ``1 - momentum``. As in PyTorch, the running variance averages "
        f"the unbiased batch variance (BatchNorm's, Flax's, the biased one).")
    return BatchNormNd


Conv1d, Conv2d, Conv3d = _conv(1), _conv(2), _conv(3)
ConvTranspose1d, ConvTranspose2d, ConvTranspose3d = _conv_transpose(1), _conv_transpose(2), _conv_transpose(3)
MaxPool1d, MaxPool2d, MaxPool3d = _max_pool(1), _max_pool(2), _max_pool(3)
AvgPool1d, AvgPool2d, AvgPool3d = _avg_pool(1), _avg_pool(2), _avg_pool(3)
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = _adaptive_avg_pool(1), _adaptive_avg_pool(2), _adaptive_avg_pool(3)
BatchNorm1d, BatchNorm2d, BatchNorm3d = _batch_norm(1), _batch_norm(2), _batch_norm(3)
