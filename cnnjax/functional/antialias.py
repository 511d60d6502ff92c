"""Shift-friendly downsampling: anti-aliased BlurPool (Zhang 2019) and adaptive polyphase sampling (APS).

A stride-``s`` subsampling keeps one of the ``s**d`` polyphase components of a map (the
pixels at offsets ``(i, j, ...)`` modulo ``s``). Shifting the input by one pixel makes it
keep a different component, so strided nets alias. BlurPool low-passes first, which makes
the components alike; APS (Chaman & Dokmanic 2021) keeps, per example, the component with
the largest norm, so the choice moves with the signal and circular nets become exactly
shift-invariant.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax.numpy as jnp
from jax import lax
import numpy as np

from cnnjax.functional import utils
from cnnjax.functional.padding import pad_spatial


def binomial_filter(size: int, spatial_dims: int, dtype: Any = jnp.float32) -> jnp.ndarray:
    """The normalised binomial low-pass filter of ``size`` taps per dim: ``(*[size]*spatial_dims,)``.

    Taps are row ``size - 1`` of Pascal's triangle (``[1]``, ``[1, 1]``, ``[1, 2, 1]``,
    ``[1, 3, 3, 1]``, ...), outer-multiplied over the dims and divided by their sum.

    Example:
      >>> binomial_filter(3, 1)
      Array([0.25, 0.5 , 0.25], dtype=float32)
    """
    taps = binomial_taps(size)
    k = taps
    for _ in range(spatial_dims - 1):
        k = np.multiply.outer(k, taps)
    return jnp.asarray(k, dtype)


def binomial_taps(size: int, fn: str = "binomial_filter", name: str = "size") -> np.ndarray:
    """Row ``size - 1`` of Pascal's triangle, normalised to sum 1: ``(size,)`` float64 numpy, a constant under jit.

    ``fn`` and ``name`` are the caller and argument a ValueError names when ``size`` is not an int from 1 to 7.
    """
    if not utils._is_int(size) or not 1 <= size <= 7:
        raise ValueError(f"{fn}: {name} must be an int from 1 to 7, got {name}={size!r}")
    taps = np.array([math.comb(size - 1, i) for i in range(size)], np.float64)
    return taps / taps.sum()


@utils.array_args("x")
def blur_pool(
    x: jnp.ndarray,
    filter_size: int = 3,
    stride: int | tuple[int, ...] = 2,
    *,
    padding_mode: str = "reflect",
    spatial_dims: int | None = None,
) -> jnp.ndarray:
    """Anti-aliased downsampling (Zhang 2019): a depthwise binomial blur, then subsampling.

    The input is padded by ``(filter_size - 1) // 2`` below and ``filter_size // 2`` above in
    each dim, blurred channel by channel with :func:`binomial_filter`, and every
    ``stride``-th sample is kept, as in the paper's ``Downsample`` layer. ``filter_size=1``
    is plain subsampling ``x[..., ::s, :]``.

    The paper's three recipes: ``MaxPool(k, s)`` becomes ``max_pool(k, stride 1)`` then
    ``blur_pool``; a strided ``conv`` + ReLU becomes ``conv(stride 1)`` + ReLU then ``blur_pool``;
    ``avg_pool`` becomes ``blur_pool``.

    Args:
      x: ``(*batch, *spatial, C)``.
      filter_size: taps of the binomial filter, 1 to 7 (3 and 5 are common).
      stride: int or one per spatial dim.
      padding_mode: "reflect" (the paper's default), "zeros", "circular" or "replicate".
      spatial_dims: needed when ``stride`` is an int.

    Returns:
      ``(*batch, *ceil(spatial / stride), C)``, ``x``'s dtype.

    Example:
      >>> blur_pool(jnp.ones((2, 32, 32, 8)), 3, (2, 2)).shape
      (2, 16, 16, 8)
    """
    fn = "blur_pool"
    n = utils.spatial_rank(fn, ("stride", stride), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    utils.check_float(x, fn)
    utils.check_padding_mode(padding_mode, fn)
    s = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    # The binomial filter is separable: one strided 1-D pass per axis, each a weighted sum of
    # strided slices. Much faster than a depthwise conv (and its gradient) on XLA:CPU, same result.
    taps = binomial_taps(filter_size, fn, "filter_size")
    pads = [((filter_size - 1) // 2, filter_size // 2)] * n
    x = pad_spatial(x, pads, padding_mode)
    for a, stride_a in enumerate(s):
        axis = x.ndim - 1 - n + a
        out = (x.shape[axis] - filter_size) // stride_a + 1
        parts = [lax.slice_in_dim(x, i, i + stride_a * (out - 1) + 1, stride_a, axis) * t.astype(x.dtype)
                 for i, t in enumerate(taps)]
        x = functools.reduce(jnp.add, parts)
    return x


def _polyphase(x: jnp.ndarray, s: tuple[int, ...]) -> jnp.ndarray:
    """``(*batch, *spatial, C) -> (*batch, prod(s), *spatial/s, C)``; component ``i`` is offset ``unravel(i, s)``."""
    n = len(s)
    nb = x.ndim - n - 1
    split = x.shape[:nb]
    for size, ss in zip(x.shape[nb:-1], s):
        split += (size // ss, ss)
    y = x.reshape(split + x.shape[-1:])
    phase_axes = [nb + 2 * i + 1 for i in range(n)]
    y = jnp.moveaxis(y, phase_axes, list(range(nb, nb + n)))
    return y.reshape(x.shape[:nb] + (-1,) + y.shape[nb + n :])


@utils.array_args("x")
def polyphase_components(x: jnp.ndarray, stride: Any = 2, *, spatial_dims: int | None = None) -> jnp.ndarray:
    """The ``prod(stride)`` polyphase components of ``x``, stacked before the spatial dims.

    Component ``i`` is ``x[..., o_1::s_1, ..., o_d::s_d, :]`` with ``(o_1..o_d) = unravel_index(i, stride)``.

    Args:
      x: ``(*batch, *spatial, C)``; every spatial size must be a multiple of its stride.
      stride: int or one per spatial dim.

    Returns:
      ``(*batch, prod(stride), *spatial / stride, C)``.

    Example:
      >>> polyphase_components(jnp.arange(4.0).reshape(4, 1), 2, spatial_dims=1)[:, :, 0]
      Array([[0., 2.],
             [1., 3.]], dtype=float32)
    """
    fn = "polyphase_components"
    n = utils.spatial_rank(fn, ("stride", stride), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    s = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    spatial = x.shape[-n - 1 : -1]
    if any(i % ss for i, ss in zip(spatial, s)):
        raise ValueError(
            f"{fn}: every spatial size must be a multiple of the stride, got spatial shape {tuple(spatial)} "
            f"and stride {s}; pad the input first (circularly, to keep shifts exact)"
        )
    return _polyphase(x, s)


@utils.array_args("x")
def aps_pool(
    x: jnp.ndarray,
    stride: Any = 2,
    *,
    phase: jnp.ndarray | None = None,
    p: float = 2.0,
    spatial_dims: int | None = None,
    return_phase: bool = False,
):
    """Adaptive polyphase sampling (Chaman & Dokmanic 2021): keep the largest-norm polyphase component.

    For each example, of the ``prod(stride)`` components ``x[..., o::s, :]`` keep the one
    with the largest ``l_p`` norm (over its spatial positions and channels); ties go to the
    lowest index. Circularly shifting ``x`` by one pixel permutes the components and shifts
    them by at most one, so the choice follows the signal: a network with circular padding,
    APS for every subsampling and a global-pool head is exactly shift-invariant.

    Pass the ``phase`` returned by one call (``return_phase=True``) to another to subsample
    a second map the same way, e.g. a residual block's shortcut and main branch.

    Args:
      x: ``(*batch, *spatial, C)``. Spatial sizes that are not multiples of the stride are
        padded circularly up to one (as the paper's code does; exactness then holds only
        for shifts that keep the padded seam aligned).
      stride: int or one per spatial dim.
      phase: optional ``(*batch,)`` int component indices to use instead of choosing.
      p: the norm's order.
      spatial_dims: needed when ``stride`` is an int.
      return_phase: also return the chosen ``(*batch,)`` indices.

    Returns:
      ``(*batch, *ceil(spatial / stride), C)`` (and the phase when asked).

    Example:
      >>> x = jnp.zeros((1, 4, 1)).at[0, 3, 0].set(5.0)
      >>> y, phase = aps_pool(x, 2, spatial_dims=1, return_phase=True)
      >>> y[0, :, 0], phase
      (Array([0., 5.], dtype=float32), Array([1], dtype=int32))
    """
    fn = "aps_pool"
    n = utils.spatial_rank(fn, ("stride", stride), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    s = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    spatial = x.shape[-n - 1 : -1]
    extra = [(0, -i % ss) for i, ss in zip(spatial, s)]
    comps = _polyphase(pad_spatial(x, extra, "circular"), s)
    nb = x.ndim - n - 1
    if phase is None:
        mags = jnp.abs(comps.astype(jnp.float32)) ** p
        norms = jnp.sum(mags, axis=tuple(range(nb + 1, comps.ndim)))
        phase = jnp.argmax(norms, axis=-1).astype(jnp.int32)
    elif phase.shape != x.shape[:nb]:
        raise ValueError(f"{fn}: phase must have the batch shape {x.shape[:nb]}, got phase.shape={phase.shape}")
    idx = phase.reshape(phase.shape + (1,) * (comps.ndim - nb))
    y = jnp.take_along_axis(comps, idx, axis=nb).squeeze(nb)
    return (y, phase) if return_phase else y

