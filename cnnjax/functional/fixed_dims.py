"""PyTorch's dimension-specific spellings: ``conv2d``, ``max_pool2d``, ``avg_pool1d``, ``pad2d`` and the rest.

Each is the N-d op with its number of spatial dims fixed, so bare ints work as they do in PyTorch
(``max_pool2d(x, 2)``, ``conv2d(x, w, padding=1)``), and its positional arguments come in PyTorch's
order. The arrays stay channels-last: ``x`` is ``(*batch, *spatial, C)`` and a conv kernel is
``(*k, C_in // groups, C_out)``, not PyTorch's ``(C_out, C_in // groups, *k)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from cnnjax.functional import utils
from cnnjax.functional.conv import conv
from cnnjax.functional.padding import pad
from cnnjax.functional.pool import adaptive_avg_pool, avg_pool, max_pool

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "conv1d", "conv2d", "conv3d", "max_pool1d", "max_pool2d", "max_pool3d", "pad1d", "pad2d", "pad3d",
]

_Size = int | Sequence[int]


def _check_rank(name: str, x: Any, n: int) -> None:
    """The input needs ``n`` spatial dims and a channel axis (a batch is optional, as in PyTorch)."""
    ndim = getattr(x, "ndim", None)
    if ndim is not None and ndim < n + 1:
        dims = {1: "L", 2: "H, W", 3: "D, H, W"}[n]
        raise ValueError(f"{name}: x must be (*batch, {dims}, C), channels last, got shape {tuple(x.shape)}")


def _conv(n: int):
    name = f"conv{n}d"

    def op(x: jax.Array, w: jax.Array, b: jax.Array | None = None, stride: _Size = 1, padding: Any = 0,
           dilation: _Size = 1, groups: int = 1, *, padding_mode: str = "zeros") -> jax.Array:
        _check_rank(name, x, n)
        w_ndim = getattr(w, "ndim", None)
        if w_ndim is not None and w_ndim != n + 2:
            raise ValueError(f"{name}: w must be a {n + 2}-D kernel (*k, C_in // groups, C_out) (channels-last, not "
                             f"PyTorch's (C_out, C_in // groups, *k)), got shape {tuple(w.shape)}")
        return conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=padding_mode)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``torch.nn.functional.{name}(x, w, b, stride, padding, dilation, groups)``, channels-last:\n"
                  f"``x`` ``(*batch, *spatial[{n}], C_in)``, ``w`` ``(*k[{n}], C_in // groups, C_out)`` -> "
                  f"``(*batch, *out[{n}], C_out)``. See :func:`cnnjax.functional.conv`.")
    return utils.array_args("x", "w", "b", fn=name)(op)


def _max_pool(n: int):
    name = f"max_pool{n}d"

    def op(x: jax.Array, kernel_size: _Size, stride: _Size | None = None, padding: Any = 0, dilation: _Size = 1,
           ceil_mode: bool = False) -> jax.Array:
        _check_rank(name, x, n)
        return max_pool(x, kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode, spatial_dims=n)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``torch.nn.functional.{name}(x, kernel_size, stride, padding, dilation, ceil_mode)``, "
                  f"channels-last ``(*batch, *spatial[{n}], C)``. See :func:`cnnjax.functional.max_pool`.")
    return utils.array_args("x", fn=name)(op)


def _avg_pool(n: int):
    name = f"avg_pool{n}d"

    def op(x: jax.Array, kernel_size: _Size, stride: _Size | None = None, padding: Any = 0, ceil_mode: bool = False,
           count_include_pad: bool = True) -> jax.Array:
        _check_rank(name, x, n)
        return avg_pool(x, kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                        spatial_dims=n)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``torch.nn.functional.{name}(x, kernel_size, stride, padding, ceil_mode, count_include_pad)``, "
                  f"channels-last ``(*batch, *spatial[{n}], C)``. See :func:`cnnjax.functional.avg_pool`.")
    return utils.array_args("x", fn=name)(op)


def _adaptive_avg_pool(n: int):
    name = f"adaptive_avg_pool{n}d"

    def op(x: jax.Array, output_size: _Size) -> jax.Array:
        _check_rank(name, x, n)
        return adaptive_avg_pool(x, output_size, spatial_dims=n)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"``torch.nn.functional.{name}(x, output_size)``, channels-last ``(*batch, *spatial[{n}], C)``. "
                  f"See :func:`cnnjax.functional.adaptive_avg_pool`.")
    return utils.array_args("x", fn=name)(op)


def _pad(n: int):
    name = f"pad{n}d"

    def op(x: jax.Array, padding: Any, mode: str = "zeros", value: float = 0.0) -> jax.Array:
        _check_rank(name, x, n)
        return pad(x, padding, mode, spatial_dims=n, value=value)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Pad the {n} spatial dim(s) of ``(*batch, *spatial[{n}], C)``: an int pads every side, as "
                  f"``torch.nn.ZeroPad{n}d(p)`` does. See :func:`cnnjax.functional.pad`.")
    return utils.array_args("x", fn=name)(op)


conv1d, conv2d, conv3d = _conv(1), _conv(2), _conv(3)
max_pool1d, max_pool2d, max_pool3d = _max_pool(1), _max_pool(2), _max_pool(3)
avg_pool1d, avg_pool2d, avg_pool3d = _avg_pool(1), _avg_pool(2), _avg_pool(3)
adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (_adaptive_avg_pool(1), _adaptive_avg_pool(2),
                                                                 _adaptive_avg_pool(3))
pad1d, pad2d, pad3d = _pad(1), _pad(2), _pad(3)
