"""Pooling: windowed max/avg/Lp, global, adaptive (PyTorch bins), and max pooling with indices.

The spatial rank comes from the first tuple among ``window``, ``stride``, ``padding`` and
``dilation`` (or ``spatial_dims=``); a bare int window fits every rank, so the op refuses
to guess. ``stride`` defaults to ``window``.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnnjax.functional import dispatch, utils
from cnnjax.functional.unfold import patches, shifted_views


def _geometry(x, window, stride, padding, dilation, ceil_mode, fn, spatial_dims):
    """Validated ``(n, window, strides, pads, dilation)``; ceil_mode's extra is in the high pads."""
    n, k, s, pads, d = utils.window_geometry(x, window, stride, padding, dilation, fn, spatial_dims=spatial_dims)
    in_size = tuple(x.shape[-n - 1 : -1])
    for dim, ((lo, hi), kk, dd) in enumerate(zip(pads, k, d)):
        if max(lo, hi) > (dd * (kk - 1) + 1) // 2:
            raise ValueError(
                f"{fn}: padding must be at most half the effective window in every dim, got padding "
                f"{(lo, hi)} for window {kk} (dilation {dd}) in spatial dim {dim}"
            )
    if ceil_mode:
        new = []
        for i, (lo, hi), kk, ss, dd in zip(in_size, pads, k, s, d):
            e = dd * (kk - 1) + 1
            o = -(-(i + lo + hi - e) // ss) + 1
            if (o - 1) * ss >= i + lo:  # PyTorch: the last window must start inside the input
                o -= 1
            new.append((lo, hi, max((o - 1) * ss + e - (i + lo + hi), 0)))
        return n, k, s, [(lo, hi + extra) for lo, hi, extra in new], d, [extra for *_, extra in new]
    return n, k, s, pads, d, [0] * n


def _reduce(x, init, op, n, k, s, pads, d):
    nb = x.ndim - n - 1
    return lax.reduce_window(
        x,
        init,
        op,
        window_dimensions=(1,) * nb + tuple(k) + (1,),
        window_strides=(1,) * nb + tuple(s) + (1,),
        padding=[(0, 0)] * nb + list(pads) + [(0, 0)],
        window_dilation=(1,) * nb + tuple(d) + (1,),
    )


@utils.array_args("x")
def max_pool(x: jax.Array, window: int | Sequence[int], stride: int | Sequence[int] | None = None, padding: Any = 0, *, dilation: int | Sequence[int] = 1,
             ceil_mode: bool = False, spatial_dims: int | None = None) -> jax.Array:
    """Max pooling over sliding windows; padding counts as ``-inf``.

    Args:
      x: ``(*batch, *spatial, C)``.
      window: window size, int or one per spatial dim.
      stride: defaults to ``window``.
      padding: "VALID", "SAME", an int, ints, or ``(lo, hi)`` pairs; at most half the window.
      dilation: spacing between window elements.
      ceil_mode: round the output size up (PyTorch), keeping every window's start in the input.
      spatial_dims: spatial rank, needed only when every size argument is a bare int.

    Returns:
      ``(*batch, *out, C)``, ``o = floor((i + lo + hi - d(k-1) - 1) / s) + 1`` (``ceil`` with ``ceil_mode``).
      The gradient goes to the first maximum of each window (row-major), dilated windows included.

    Example:
      >>> max_pool(jnp.ones((8, 28, 28, 6)), (2, 2)).shape
      (8, 14, 14, 6)
    """
    n, k, s, pads, d, _ = _geometry(x, window, stride, padding, dilation, ceil_mode, "max_pool", spatial_dims)
    k, s, pads, d = tuple(k), tuple(s), tuple(map(tuple, pads)), tuple(d)
    impl = dispatch.implementation("max_pool", fn="max_pool", window=k, strides=s, pads=pads, dilation=d,
                                   spatial=tuple(x.shape[x.ndim - n - 1:-1]), dtype=x.dtype)
    if impl is not None:
        return impl(x, k, s, pads, d)
    if any(dd > 1 for dd in d):  # JAX has no derivative for dilated reduce_window
        return first_max_pool(x, k, s, pads, d)
    return _window_max(x, n, k, s, pads, d)


def _window_max(x, n, k, s, pads, d):
    return _reduce(x, np.array(utils.lowest(x.dtype), x.dtype), lax.max, n, k, s, pads, d)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4))
def first_max_pool(x, window, strides, pads, dilation):
    """``reduce_window``'s max of ``x`` ``(*batch, *spatial, C)`` with a derivative rule for any windows, dilated
    ones included: the tangent is :func:`first_max_tangent`. Geometry as :func:`max_pool` resolves it (tuples,
    ``(lo, hi)`` pads)."""
    return _window_max(x, len(window), window, strides, pads, dilation)


@first_max_pool.defjvp
def _first_max_pool_jvp(window, strides, pads, dilation, primals, tangents):
    (x,), (dx,) = primals, tangents
    y = first_max_pool(x, window, strides, pads, dilation)
    return y, first_max_tangent(x, y, dx, window, strides, pads, dilation)


def first_max_tangent(x, y, dx, k, s, pads, d):
    """``dy``: ``dx`` at each window's first maximum (row-major) of ``x`` ``(*batch, *spatial, C)``, ``y`` its pooled
    max. Linear in ``dx``; windows ``k``, strides ``s``, ``(lo, hi)`` ``pads`` (``-inf``) and dilation ``d``.

    The views are taken from stride phases, so the transpose (the gradient) builds one full-size array per
    phase rather than one per window position.
    """
    geometry = (k, s, pads, d)
    xs = shifted_views(x, *geometry, pad_value=utils.lowest(x.dtype), by_phase=True)
    seen, dy = jnp.zeros(y.shape, bool), jnp.zeros(y.shape, dx.dtype)
    for xv, dv in zip(xs, shifted_views(dx, *geometry, by_phase=True)):
        first = (xv == y) & ~seen
        seen, dy = seen | first, jnp.where(first, dv, dy)
    return dy


def _window_sum(x, n, k, s, pads, d):
    acc = utils.accumulation_dtype(x.dtype)
    return _reduce(x.astype(acc), np.array(0, acc), lax.add, n, k, s, pads, d)


@utils.array_args("x")
def avg_pool(
    x: jax.Array, window: int | Sequence[int], stride: int | Sequence[int] | None = None, padding: Any = 0, *, dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False, count_include_pad: bool = True, spatial_dims: int | None = None,
) -> jax.Array:
    """Average pooling over sliding windows.

    ``y = sum(window) / count``, where ``count`` is the window size clipped to the padded
    input (``count_include_pad=True``, PyTorch's and Flax's default) or the number of
    real input elements in the window (``False``). ceil_mode's overhang is never counted.

    Args:
      x: ``(*batch, *spatial, C)``.
      window, stride, padding, dilation, ceil_mode, spatial_dims: as :func:`max_pool`.
      count_include_pad: whether zero padding counts in the divisor.

    Returns:
      ``(*batch, *out, C)``, same size formula as :func:`max_pool`. Half precision sums in float32.

    Example:
      >>> avg_pool(jnp.arange(4.).reshape(4, 1), (2,))[:, 0]
      Array([0.5, 2.5], dtype=float32)
    """
    utils.check_float(x, "avg_pool")
    n, k, s, pads, d, extra = _geometry(x, window, stride, padding, dilation, ceil_mode, "avg_pool", spatial_dims)
    total = _window_sum(x, n, k, s, pads, d)
    # Divisor: window sums of a mask that is 1 on the input (and on padding, if counted), 0 on overhang.
    spatial = x.shape[-n - 1 : -1]
    mask = np.ones(spatial + (1,), np.float32)
    real = [(lo, hi - e) for (lo, hi), e in zip(pads, extra)]
    mask = np.pad(mask, [*real, (0, 0)], constant_values=1.0 if count_include_pad else 0.0)
    mask = np.pad(mask, [*[(0, e) for e in extra], (0, 0)])
    count = _reduce(jnp.asarray(mask, total.dtype), np.array(0, total.dtype), lax.add, n, k, s, [(0, 0)] * n, d)
    return (total / count).astype(x.dtype)


@utils.array_args("x")
def lp_pool(x: jax.Array, p: float, window: int | Sequence[int], stride: int | Sequence[int] | None = None, padding: Any = 0, *,
            dilation: int | Sequence[int] = 1, ceil_mode: bool = False, spatial_dims: int | None = None) -> jax.Array:
    """Power-average (Lp) pooling: ``y = (sum_window |x|^p) ^ (1/p)``.

    ``p = 1`` is sum pooling of ``|x|``, ``p -> inf`` approaches max pooling. PyTorch's
    ``lp_pool`` omits the ``|.|``; the two agree for non-negative ``x`` or even ``p``.
    The gradient is defined as 0 where the whole window is 0.

    Args:
      x: ``(*batch, *spatial, C)``.
      p: the norm's power, a float > 0.
      window, stride, padding, dilation, ceil_mode, spatial_dims: as :func:`max_pool` (zero padding).

    Returns:
      ``(*batch, *out, C)``.

    Example:
      >>> lp_pool(jnp.array([3., 4.]).reshape(2, 1), 2, (2,))[:, 0]
      Array([5.], dtype=float32)
    """
    utils.check_float(x, "lp_pool")
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p < float("inf"):
        raise ValueError(f"lp_pool: p must be a finite number > 0, got p={p!r}")
    n, k, s, pads, d, _ = _geometry(x, window, stride, padding, dilation, ceil_mode, "lp_pool", spatial_dims)
    total = _window_sum(jnp.abs(x) ** p, n, k, s, pads, d)
    positive = total > 0
    return jnp.where(positive, jnp.where(positive, total, 1.0) ** (1.0 / p), 0.0).astype(x.dtype)


def _spatial_axes(x, spatial_dims, fn):
    n = utils.spatial_rank(fn, spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    return tuple(range(x.ndim - n - 1, x.ndim - 1))


@utils.array_args("x")
def global_avg_pool(x: jax.Array, *, spatial_dims: int, keepdims: bool = False) -> jax.Array:
    """Mean over all spatial positions.

    Args:
      x: ``(*batch, *spatial, C)``.
      spatial_dims: how many dims before C are spatial (1, 2 or 3).
      keepdims: keep the spatial dims as size 1.

    Returns:
      ``(*batch, C)``, or ``(*batch, 1, ..., 1, C)`` with ``keepdims``.

    Example:
      >>> global_avg_pool(jnp.ones((8, 7, 7, 512)), spatial_dims=2).shape
      (8, 512)
    """
    axes = _spatial_axes(x, spatial_dims, "global_avg_pool")
    acc = utils.accumulation_dtype(x.dtype)
    return jnp.mean(x.astype(acc), axis=axes, keepdims=keepdims).astype(x.dtype)


@utils.array_args("x")
def global_max_pool(x: jax.Array, *, spatial_dims: int, keepdims: bool = False) -> jax.Array:
    """Max over all spatial positions: ``(*batch, *spatial, C) -> (*batch, C)``.

    Example:
      >>> global_max_pool(jnp.arange(6.).reshape(3, 2), spatial_dims=1)
      Array([4., 5.], dtype=float32)
    """
    return jnp.max(x, axis=_spatial_axes(x, spatial_dims, "global_max_pool"), keepdims=keepdims)


def _adaptive(x, output_size, spatial_dims, fn, reduce):
    n = utils.spatial_rank(fn, ("output_size", output_size), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    out = utils.as_tuple(output_size, n, "output_size", fn, minimum=1)
    for dim in range(n):
        axis = x.ndim - n - 1 + dim
        size, o = x.shape[axis], out[dim]
        # PyTorch's bins: [floor(i*I/O), ceil((i+1)*I/O)).
        start = (np.arange(o) * size) // o
        end = -((-(np.arange(o) + 1) * size) // o)
        length = int((end - start).max())
        idx = start[:, None] + np.arange(length)[None, :]
        valid = idx < end[:, None]
        g = jnp.take(x, np.minimum(idx, size - 1).ravel(), axis=axis)
        g = g.reshape(x.shape[:axis] + (o, length) + x.shape[axis + 1 :])
        shape = (1,) * axis + (o, length) + (1,) * (x.ndim - axis - 1)
        x = reduce(g, valid.reshape(shape), axis + 1)
    return x


@utils.array_args("x")
def adaptive_avg_pool(x: jax.Array, output_size: int | Sequence[int], *, spatial_dims: int | None = None) -> jax.Array:
    """Average pooling to a fixed output size, with PyTorch's bins.

    Output cell ``j`` of a dim of size ``I -> O`` averages input ``[floor(jI/O), ceil((j+1)I/O))``;
    the bins overlap when ``O`` does not divide ``I``. ``output_size=1`` is global average pooling.

    Args:
      x: ``(*batch, *spatial, C)``.
      output_size: int or one per spatial dim.
      spatial_dims: needed only when ``output_size`` is a bare int.

    Returns:
      ``(*batch, *output_size, C)``.

    Example:
      >>> adaptive_avg_pool(jnp.ones((2, 13, 9, 4)), (7, 7)).shape
      (2, 7, 7, 4)
    """
    def mean(g, valid, axis):
        acc = utils.accumulation_dtype(g.dtype)
        total = jnp.sum(jnp.where(valid, g.astype(acc), 0), axis=axis)
        return (total / valid.sum(axis=axis)).astype(g.dtype)

    return _adaptive(x, output_size, spatial_dims, "adaptive_avg_pool", mean)


@utils.array_args("x")
def adaptive_max_pool(x: jax.Array, output_size: int | Sequence[int], *, spatial_dims: int | None = None) -> jax.Array:
    """Max pooling to a fixed output size, with PyTorch's bins (see :func:`adaptive_avg_pool`).

    Returns:
      ``(*batch, *output_size, C)``.

    Example:
      >>> adaptive_max_pool(jnp.arange(5.).reshape(5, 1), (2,))[:, 0]
      Array([2., 4.], dtype=float32)
    """
    def biggest(g, valid, axis):
        return jnp.max(jnp.where(valid, g, utils.lowest(g.dtype)), axis=axis)

    return _adaptive(x, output_size, spatial_dims, "adaptive_max_pool", biggest)


@utils.array_args("x")
def max_pool_with_indices(x: jax.Array, window: int | Sequence[int], stride: int | Sequence[int] | None = None, padding: Any = 0, *,
                          dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
                          spatial_dims: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Max pooling that also returns where each maximum came from.

    Indices are flat (row-major) positions in the input's spatial dims, per channel, as in
    PyTorch's ``return_indices=True``; ties pick the first position in the window.

    Args:
      x: ``(*batch, *spatial, C)``.
      window, stride, padding, dilation, ceil_mode, spatial_dims: as :func:`max_pool`.

    Returns:
      ``(y, indices)``, both ``(*batch, *out, C)``; ``indices`` is int32.

    Example:
      >>> y, i = max_pool_with_indices(jnp.array([1., 3., 2., 0.]).reshape(4, 1), (2,))
      >>> i[:, 0]
      Array([1, 2], dtype=int32)
    """
    fn = "max_pool_with_indices"
    n, k, s, pads, d, _ = _geometry(x, window, stride, padding, dilation, ceil_mode, fn, spatial_dims)
    spatial = x.shape[-n - 1 : -1]
    px = patches(x, k, s, pads, d, pad_value=utils.lowest(x.dtype))  # (*batch, *out, K, C)
    positions = jnp.arange(utils.num_elements(spatial), dtype=jnp.int32).reshape(spatial + (1,))
    pi = patches(positions, k, s, pads, d, pad_value=-1)  # (*out, K, 1)
    best = jnp.argmax(px, axis=-2)[..., None, :]
    y = jnp.take_along_axis(px, best, axis=-2)[..., 0, :]
    indices = jnp.take_along_axis(jnp.broadcast_to(pi, px.shape), best, axis=-2)[..., 0, :]
    return y, indices


@utils.array_args("y", "indices")
def max_unpool(y: jax.Array, indices: jax.Array, output_size: Sequence[int]) -> jax.Array:
    """Partial inverse of :func:`max_pool_with_indices`: put each value back where it came from.

    Positions that were not a window's maximum are 0. Out-of-range indices are dropped
    (they cannot raise inside ``jit``).

    Args:
      y: pooled values ``(*batch, *out, C)``.
      indices: ``(*batch, *out, C)`` flat spatial positions, from :func:`max_pool_with_indices`.
      output_size: the spatial size to restore, one int per spatial dim.

    Returns:
      ``(*batch, *output_size, C)``.

    Example:
      >>> y, i = max_pool_with_indices(jnp.array([1., 3., 2., 0.]).reshape(4, 1), (2,))
      >>> max_unpool(y, i, (4,))[:, 0]
      Array([0., 3., 2., 0.], dtype=float32)
    """
    fn = "max_unpool"
    if tuple(y.shape) != tuple(indices.shape):
        raise ValueError(f"{fn}: y and indices must have the same shape, got {tuple(y.shape)} and {tuple(indices.shape)}")
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{fn}: indices must be integers, got dtype {indices.dtype}")
    if not isinstance(output_size, Sequence) or isinstance(output_size, str):
        raise TypeError(f"{fn}: output_size must be a sequence of spatial sizes, got {output_size!r}")
    n = len(output_size)
    utils.check_input(y, n, fn, name="y")
    out = utils.as_tuple(output_size, n, "output_size", fn, minimum=1)
    batch, c = y.shape[: y.ndim - n - 1], y.shape[-1]
    y2 = y.reshape((-1, utils.num_elements(y.shape[-n - 1 : -1]), c))
    i2 = indices.reshape(y2.shape)
    b = jnp.arange(y2.shape[0])[:, None, None]
    ch = jnp.arange(c)[None, None, :]
    flat = jnp.zeros((y2.shape[0], utils.num_elements(out), c), y.dtype).at[b, i2, ch].set(y2, mode="drop")
    return flat.reshape(batch + out + (c,))
