"""Pooling: windowed max/avg/Lp, global, adaptive (PyTorch bins), and max pooling with indices.

The spatial rank comes from the first tuple among ``window``, ``stride``, ``padding`` and
``dilation`` (or ``spatial_dims=``); a bare int window fits every rank, so the op refuses
to guess. ``stride`` defaults to ``window``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnnjax.functional import _args, conv_strategies, onednn_max_pool
from cnnjax.functional._args import materialize
from cnnjax.functional.unfold import patches, shifted_views


def _geometry(x, window, stride, padding, dilation, ceil_mode, fn, spatial_dims):
    """Validated ``(n, window, strides, pads, dilation)``; ceil_mode's extra is in the high pads."""
    n, k, s, pads, d = _args.window_geometry(x, window, stride, padding, dilation, fn, spatial_dims=spatial_dims)
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


def max_pool(x, window, stride=None, padding=0, *, dilation=1, ceil_mode=False, spatial_dims=None):
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
    x = jnp.asarray(x)
    n, k, s, pads, d, _ = _geometry(x, window, stride, padding, dilation, ceil_mode, "max_pool", spatial_dims)
    if _tiles(k, s, pads, d):
        out = [i // kk for i, kk in zip(x.shape[-n - 1 : -1], k)]
        crop = (Ellipsis, *(slice(0, o * kk) for o, kk in zip(out, k)), slice(None))  # VALID drops the remainder
        return _tiled_max(x[crop], n, tuple(k))
    if jax.default_backend() == "cpu" or any(dd > 1 for dd in d):  # JAX has no derivative for dilated reduce_window
        batch = x.shape[: x.ndim - n - 1]
        flat = x.reshape(-1, *x.shape[x.ndim - n - 1 :])
        if conv_strategies.overridden() != "lax" and onednn_max_pool.supports(flat, n):
            y = onednn_max_pool.max_pool(flat, k, s, pads, d)
            return y.reshape(*batch, *y.shape[1:])
        return _overlapping_max(x, n, tuple(k), tuple(s), tuple(map(tuple, pads)), tuple(d))
    return _window_max(x, n, k, s, pads, d)


def _window_max(x, n, k, s, pads, d):
    return _reduce(x, np.array(_args.lowest(x.dtype), x.dtype), lax.max, n, k, s, pads, d)


def _tiles(k, s, pads, d) -> bool:
    """Non-overlapping, unpadded, undilated windows on CPU: differentiate by reshaping, not ``select_and_scatter``.

    XLA:CPU's ``select_and_scatter`` (reduce_window's gradient) ran 14-32x slower than the reshaped
    form's gradient for 2x2 pooling of a (64, 32, 32, 64) batch; the values and gradients are
    bit-identical, ties included (tested). Not measured on GPU/TPU, so those keep the default rule.
    """
    return (tuple(s) == tuple(k) and all(p == (0, 0) for p in map(tuple, pads)) and all(dd == 1 for dd in d)
            and jax.default_backend() == "cpu")


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _tiled_max(x, n, k):
    """Max over non-overlapping windows ``k`` of ``x`` ``(*batch, *spatial, C)`` whose spatial sizes are
    multiples of ``k``: ``(*batch, *spatial/k, C)``.

    The maximum of the ``prod(k)`` strided views, one per window position, which XLA:CPU fuses into the
    ops that follow: 2x2 pooling ran 1.4-2.4x faster than ``reduce_window`` on 6-128 channels (0.8x on 16).
    ``cnnjax.inspect.receptive_field`` follows strided slices and ``max`` as it does ``reduce_window``.
    """
    return functools.reduce(lax.max, _window_views(x, n, k))


def _window_views(x, n, k):
    """The ``prod(k)`` strided views ``(*batch, *spatial/k, C)`` of ``x``, one per window position, row-major."""
    return shifted_views(x, k, k, [(0, 0)] * n, (1,) * n)


@_tiled_max.defjvp
def _tiled_max_jvp(n, k, primals, tangents):
    # The derivative flows to the first maximum of each window in row-major order, as reduce_window's
    # select_and_scatter does, so ties (ReLU zeros) get the same gradients; a window whose maximum is NaN
    # passes none, as there. The rule is linear in the tangent, so JAX transposes it for reverse mode.
    # The maximum and each window's first-maximum position are materialized: XLA:CPU otherwise re-runs
    # them for every input element of the backward pass (2x slower than the old rule on reduce_window's
    # output). Materialized, forward + backward of 2x2 pooling ran 1.2-1.9x faster than that rule on 6-64
    # channels and the ResNet stem's map, 0.7-1.5x across runs on 128 channels; SimpleCNN's step 17% faster.
    (x,), (dx,) = primals, tangents
    views = _window_views(x, n, k)
    y = materialize(functools.reduce(lax.max, views))
    index = jnp.int8 if len(views) < 127 else jnp.int32
    first = jnp.full(y.shape, len(views), index)  # len(views): no position (a NaN window)
    for i in range(len(views) - 1, -1, -1):
        first = jnp.where(views[i] == y, index(i), first)
    first = materialize(first)
    xr, axes = _split_windows(x, n, k)
    position = sum(lax.broadcasted_iota(index, tuple(kk if a == ax else 1 for a in range(xr.ndim)), ax) * index(step)
                   for ax, kk, step in zip(axes, k, np.cumprod((1,) + tuple(k[:0:-1]))[::-1]))
    mask = position == jnp.expand_dims(first, axes)
    return y, jnp.where(mask, _split_windows(dx, n, k)[0], 0).sum(axis=axes)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4, 5))
def _overlapping_max(x, n, k, s, pads, d):
    """``reduce_window``'s max with a derivative rule for any windows: used on CPU (where :func:`_tiled_max`
    is faster for non-overlapping ones), and for dilated windows everywhere."""
    return _window_max(x, n, k, s, pads, d)


@_overlapping_max.defjvp
def _overlapping_max_jvp(n, k, s, pads, d, primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _overlapping_max(x, n, k, s, pads, d)
    return y, onednn_max_pool.first_max_tangent(x, y, dx, k, s, pads, d)


def _split_windows(x, n, k):
    """``x`` reshaped to ``(*batch, o1, k1, ..., on, kn, C)`` and the window axes."""
    nb = x.ndim - n - 1
    out = [i // kk for i, kk in zip(x.shape[nb:-1], k)]
    shape = (*x.shape[:nb], *(v for o, kk in zip(out, k) for v in (o, kk)), x.shape[-1])
    return x.reshape(shape), tuple(nb + 2 * i + 1 for i in range(n))


def _window_sum(x, n, k, s, pads, d):
    acc = _args.accumulation_dtype(x.dtype)
    return _reduce(x.astype(acc), np.array(0, acc), lax.add, n, k, s, pads, d)


def avg_pool(
    x, window, stride=None, padding=0, *, dilation=1, ceil_mode=False, count_include_pad=True, spatial_dims=None
):
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
    x = jnp.asarray(x)
    _args.check_float(x, "avg_pool")
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


def lp_pool(x, p, window, stride=None, padding=0, *, dilation=1, ceil_mode=False, spatial_dims=None):
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
    x = jnp.asarray(x)
    _args.check_float(x, "lp_pool")
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p < float("inf"):
        raise ValueError(f"lp_pool: p must be a finite number > 0, got p={p!r}")
    n, k, s, pads, d, _ = _geometry(x, window, stride, padding, dilation, ceil_mode, "lp_pool", spatial_dims)
    total = _window_sum(jnp.abs(x) ** p, n, k, s, pads, d)
    positive = total > 0
    return jnp.where(positive, jnp.where(positive, total, 1.0) ** (1.0 / p), 0.0).astype(x.dtype)


def _spatial_axes(x, spatial_dims, fn):
    n = _args.spatial_rank(fn, spatial_dims=spatial_dims)
    _args.check_input(x, n, fn)
    return tuple(range(x.ndim - n - 1, x.ndim - 1))


def global_avg_pool(x, *, spatial_dims: int, keepdims: bool = False):
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
    x = jnp.asarray(x)
    axes = _spatial_axes(x, spatial_dims, "global_avg_pool")
    acc = _args.accumulation_dtype(x.dtype)
    return jnp.mean(x.astype(acc), axis=axes, keepdims=keepdims).astype(x.dtype)


def global_max_pool(x, *, spatial_dims: int, keepdims: bool = False):
    """Max over all spatial positions: ``(*batch, *spatial, C) -> (*batch, C)``.

    Example:
      >>> global_max_pool(jnp.arange(6.).reshape(3, 2), spatial_dims=1)
      Array([4., 5.], dtype=float32)
    """
    x = jnp.asarray(x)
    return jnp.max(x, axis=_spatial_axes(x, spatial_dims, "global_max_pool"), keepdims=keepdims)


def _adaptive(x, output_size, spatial_dims, fn, reduce):
    x = jnp.asarray(x)
    n = _args.spatial_rank(fn, ("output_size", output_size), spatial_dims=spatial_dims)
    _args.check_input(x, n, fn)
    out = _args.as_tuple(output_size, n, "output_size", fn, minimum=1)
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


def adaptive_avg_pool(x, output_size, *, spatial_dims=None):
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
        acc = _args.accumulation_dtype(g.dtype)
        total = jnp.sum(jnp.where(valid, g.astype(acc), 0), axis=axis)
        return (total / valid.sum(axis=axis)).astype(g.dtype)

    return _adaptive(x, output_size, spatial_dims, "adaptive_avg_pool", mean)


def adaptive_max_pool(x, output_size, *, spatial_dims=None):
    """Max pooling to a fixed output size, with PyTorch's bins (see :func:`adaptive_avg_pool`).

    Returns:
      ``(*batch, *output_size, C)``.

    Example:
      >>> adaptive_max_pool(jnp.arange(5.).reshape(5, 1), (2,))[:, 0]
      Array([2., 4.], dtype=float32)
    """
    def biggest(g, valid, axis):
        return jnp.max(jnp.where(valid, g, _args.lowest(g.dtype)), axis=axis)

    return _adaptive(x, output_size, spatial_dims, "adaptive_max_pool", biggest)


def max_pool_with_indices(x, window, stride=None, padding=0, *, dilation=1, ceil_mode=False, spatial_dims=None):
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
    x = jnp.asarray(x)
    fn = "max_pool_with_indices"
    n, k, s, pads, d, _ = _geometry(x, window, stride, padding, dilation, ceil_mode, fn, spatial_dims)
    spatial = x.shape[-n - 1 : -1]
    px = patches(x, k, s, pads, d, pad_value=_args.lowest(x.dtype))  # (*batch, *out, K, C)
    positions = jnp.arange(_args.num_elements(spatial), dtype=jnp.int32).reshape(spatial + (1,))
    pi = patches(positions, k, s, pads, d, pad_value=-1)  # (*out, K, 1)
    best = jnp.argmax(px, axis=-2)[..., None, :]
    y = jnp.take_along_axis(px, best, axis=-2)[..., 0, :]
    indices = jnp.take_along_axis(jnp.broadcast_to(pi, px.shape), best, axis=-2)[..., 0, :]
    return y, indices


def max_unpool(y, indices, output_size):
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
    y, indices = jnp.asarray(y), jnp.asarray(indices)
    if tuple(y.shape) != tuple(indices.shape):
        raise ValueError(f"{fn}: y and indices must have the same shape, got {tuple(y.shape)} and {tuple(indices.shape)}")
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{fn}: indices must be integers, got dtype {indices.dtype}")
    if not isinstance(output_size, Sequence) or isinstance(output_size, str):
        raise TypeError(f"{fn}: output_size must be a sequence of spatial sizes, got {output_size!r}")
    n = len(output_size)
    _args.check_input(y, n, fn, name="y")
    out = _args.as_tuple(output_size, n, "output_size", fn, minimum=1)
    batch, c = y.shape[: y.ndim - n - 1], y.shape[-1]
    y2 = y.reshape((-1, _args.num_elements(y.shape[-n - 1 : -1]), c))
    i2 = indices.reshape(y2.shape)
    b = jnp.arange(y2.shape[0])[:, None, None]
    ch = jnp.arange(c)[None, None, :]
    flat = jnp.zeros((y2.shape[0], _args.num_elements(out), c), y.dtype).at[b, i2, ch].set(y2, mode="drop")
    return flat.reshape(batch + out + (c,))
