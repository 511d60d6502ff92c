"""Sliding-window patches (``unfold``, im2col) and their adjoint (``fold``, col2im)."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from cnnjax.functional import utils
from cnnjax.functional.padding import pad_spatial


def shifted_views(
    x: jnp.ndarray,
    window: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    *,
    padding_mode: str = "zeros",
    pad_value: Any = 0,
    by_phase: bool = False,
) -> list[jnp.ndarray]:
    """The ``prod(window)`` shifted, strided views of the padded ``x`` ``(*batch, *spatial, C)``, each
    ``(*batch, *out, C)``, in window-offset order (row-major, as a kernel ``(*k, ...)`` flattened).

    ``by_phase`` takes each view as a plain slice of one stride phase ``xp[p::s]`` instead of a strided
    slice of ``xp``: the same values, but the transpose (the gradient) builds one full-size array per
    phase rather than one per view. That paid in max pooling's derivative and not in im2col's."""
    n = len(window)
    xp = pad_spatial(x, pads, padding_mode, pad_value)
    nb = x.ndim - n - 1
    padded = xp.shape[nb : nb + n]
    out = [(i - d * (k - 1) - 1) // s + 1 for i, k, s, d in zip(padded, window, strides, dilation)]
    phases = {}  # by_phase: xp[p::s] for each phase p < s, sliced once
    views = []
    for offset in itertools.product(*(range(k) for k in window)):
        start = [o * d for o, d in zip(offset, dilation)]
        if by_phase:
            phase = tuple(st % s for st, s in zip(start, strides))
            if phase not in phases:
                phases[phase] = lax.slice(xp, [0] * nb + list(phase) + [0], xp.shape, [1] * nb + list(strides) + [1])
            lo = [0] * nb + [st // s for st, s in zip(start, strides)] + [0]
            hi = [*xp.shape[:nb], *(a + o for a, o in zip(lo[nb:], out)), xp.shape[-1]]
            views.append(lax.slice(phases[phase], lo, hi))
        else:
            limit = list(xp.shape[:nb]) + [st + (o - 1) * s + 1 for st, o, s in zip(start, out, strides)]
            limit.append(xp.shape[-1])
            views.append(lax.slice(xp, [0] * nb + start + [0], limit, [1] * nb + list(strides) + [1]))
    return views


def patches(
    x: jnp.ndarray,
    window: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    *,
    padding_mode: str = "zeros",
    pad_value: Any = 0,
) -> jnp.ndarray:
    """``(*batch, *spatial, C) -> (*batch, *out, prod(window), C)`` by strided slicing (exact, no arithmetic)."""
    views = shifted_views(x, window, strides, pads, dilation, padding_mode=padding_mode, pad_value=pad_value)
    return jnp.stack(views, axis=-2)


@utils.array_args("x")
def unfold(
    x: jnp.ndarray,
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
    spatial_dims: int | None = None,
) -> jnp.ndarray:
    """Extract sliding-window patches (im2col), channels-last.

    The feature axis is ordered kernel-offset-major, channel-minor, i.e. like a conv
    kernel ``(*k, C_in, C_out)`` flattened, so
    ``conv(x, w) == unfold(x, k) @ w.reshape(-1, C_out)`` (PyTorch's ``unfold`` orders
    channel-major instead).

    Args:
      x: ``(*batch, *spatial, C)``.
      kernel_size, stride, dilation: int or one per spatial dim.
      padding: any padding spec :func:`cnnjax.functional.conv` accepts.
      padding_mode: "zeros", "circular", "reflect" or "replicate".
      spatial_dims: the spatial rank, needed only if every size argument is a bare int.

    Returns:
      ``(*batch, *out_spatial, prod(kernel_size) * C)`` with
      ``o = floor((i + lo + hi - d(k-1) - 1) / s) + 1``.

    Example:
      >>> unfold(jnp.ones((2, 6, 6, 3)), (3, 3), stride=3).shape
      (2, 2, 2, 27)
    """
    utils.check_padding_mode(padding_mode, "unfold")
    n, k, s, pads, d = utils.window_geometry(
        x, kernel_size, stride, padding, dilation, "unfold", spatial_dims=spatial_dims, window_name="kernel_size", what="kernel"
    )
    p = patches(x, k, s, pads, d, padding_mode=padding_mode)
    return p.reshape(p.shape[:-2] + (p.shape[-2] * p.shape[-1],))


@utils.array_args("x")
def fold(
    x: jnp.ndarray,
    output_size: Sequence[int],
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    padding_mode: str = "zeros",
) -> jnp.ndarray:
    """The adjoint of :func:`unfold` (col2im): scatter patches back, summing overlaps.

    ``<unfold(a), b> == <a, fold(b)>`` for all ``a``, ``b``. ``fold(unfold(x))`` is ``x``
    times the number of windows covering each element, not ``x``.

    Args:
      x: patches ``(*batch, *out_spatial, prod(kernel_size) * C)`` as :func:`unfold` returns.
      output_size: the spatial size of the image, one int per spatial dim.
      kernel_size, stride, padding, dilation, padding_mode: as given to :func:`unfold`.

    Returns:
      ``(*batch, *output_size, C)``.

    Example:
      >>> y = fold(jnp.ones((3, 3, 18)), (5, 5), (3, 3))
      >>> y.shape, float(y[2, 2, 0]), float(y[0, 0, 0])
      ((5, 5, 2), 9.0, 1.0)
    """
    fn = "fold"
    if not isinstance(output_size, Sequence) or isinstance(output_size, str):
        raise TypeError(f"{fn}: output_size must be a sequence of spatial sizes, got {output_size!r}")
    n = len(output_size)
    utils.check_input(x, n, fn)
    k = utils.as_tuple(kernel_size, n, "kernel_size", fn, minimum=1)
    kk = utils.num_elements(k)
    if x.shape[-1] % kk:
        raise ValueError(
            f"{fn}: the last dim of x ({x.shape[-1]}) must be prod(kernel_size)={kk} times C, "
            f"got x.shape={tuple(x.shape)}"
        )
    shape = tuple(x.shape[: x.ndim - n - 1]) + tuple(output_size) + (x.shape[-1] // kk,)
    image = jax.ShapeDtypeStruct(shape, x.dtype)
    expected = jax.eval_shape(
        lambda a: unfold(a, k, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode),
        image,
    ).shape
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{fn}: x.shape={tuple(x.shape)} does not match unfold of an image of shape {shape}, "
            f"which gives {tuple(expected)}"
        )
    transpose = jax.linear_transpose(
        lambda a: unfold(a, k, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode), image
    )
    return transpose(x)[0]
