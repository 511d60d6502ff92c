"""Upsampling: nearest repeat, ``resize`` matching ``torch.nn.functional.interpolate``, pixel (un)shuffle."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.functional import utils

RESIZE_METHODS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) Keys cubic coefficient


@utils.array_args("x")
def upsample_nearest(x: jax.Array, scale: int | Sequence[int], *, spatial_dims: int | None = None) -> jax.Array:
    """Nearest-neighbour upsampling by integer factors: every pixel becomes a ``scale`` block.

    Args:
      x: ``(*batch, *spatial, C)``.
      scale: positive int, or one per spatial dim.
      spatial_dims: needed only when ``scale`` is a bare int.

    Returns:
      ``(*batch, *(i * scale), C)``.

    Example:
      >>> upsample_nearest(jnp.array([1., 2.]).reshape(2, 1), (2,))[:, 0]
      Array([1., 1., 2., 2.], dtype=float32)
    """
    fn = "upsample_nearest"
    n = utils.spatial_rank(fn, ("scale", scale), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    for dim, f in enumerate(utils.as_tuple(scale, n, "scale", fn, minimum=1)):
        x = jnp.repeat(x, f, axis=x.ndim - n - 1 + dim)
    return x


def _source_index(out: int, size: int, align_corners: bool, cubic: bool, scale: np.float32) -> np.ndarray:
    """PyTorch's ``area_pixel_compute_source_index``, in float32 like its kernels."""
    dst = np.arange(out, dtype=np.float32)
    if align_corners:
        scale = np.float32((size - 1) / (out - 1)) if out > 1 else np.float32(0)
        return dst * scale
    src = scale * (dst + np.float32(0.5)) - np.float32(0.5)
    return src if cubic else np.maximum(src, np.float32(0))


def _cubic_filter(v: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a``, zero for ``|v| >= 2``."""
    v = np.abs(v)
    near = ((a + 2) * v - (a + 3)) * v * v + 1
    far = ((a * v - 5 * a) * v + 8 * a) * v - 4 * a
    return np.where(v <= 1, near, np.where(v < 2, far, 0.0))


def _linear_filter(v: np.ndarray) -> np.ndarray:
    return np.maximum(1 - np.abs(v), 0.0)


def _antialias_taps(out: int, size: int, method: str, scale: float, cubic_a: float):
    """PyTorch's antialiased weights (``_compute_weights_aa``), as for PIL: when shrinking
    (``scale = in / out > 1``) the filter is stretched by ``scale``, so every input pixel
    contributes; weights are cut to the image and normalised to sum to one."""
    interp = 2 if method == "bilinear" else 4
    support = interp / 2 * scale if scale >= 1 else interp / 2
    invscale = 1 / scale if scale >= 1 else 1.0
    centre = scale * (np.arange(out) + 0.5)
    lo = np.maximum(np.trunc(centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum(np.trunc(centre + support + 0.5).astype(np.int64), size)
    width = max(int((hi - lo).max()), 1)
    idx = lo[:, None] + np.arange(width)[None, :]
    v = (idx - centre[:, None] + 0.5) * invscale
    w = _linear_filter(v) if method == "bilinear" else _cubic_filter(v, cubic_a)
    w = np.where(idx < hi[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = w / np.where(total == 0, 1, total)
    return np.minimum(idx, size - 1), w


def _area_taps(out: int, size: int):
    """``adaptive_avg_pool``'s boxes: output ``i`` averages ``[floor(i*in/out), ceil((i+1)*in/out))``."""
    i = np.arange(out)
    lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
    width = int((hi - lo).max())
    idx = lo[:, None] + np.arange(width)[None, :]
    inside = idx < hi[:, None]
    return np.minimum(idx, size - 1), inside / (hi - lo)[:, None]


def _taps(out: int, size: int, method: str, align_corners: bool, scale: float | None, antialias: bool,
          cubic_a: float | None, exclude_outside: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per output position: input indices ``(out, T)`` and weights ``(out, T)``.

    ``scale`` is PyTorch's ``1 / scale_factor`` when one was given (and not recomputed),
    else ``None`` for ``in / out``.
    """
    scale32 = np.float32(scale) if scale is not None else np.float32(np.float32(size) / np.float32(out))
    if method == "nearest":
        # Legacy PyTorch 'nearest': floor(dst * scale) in float32, clamped, with its exact 1x and 2x cases.
        if out == size:
            idx = np.arange(out)
        elif out == 2 * size:
            idx = np.arange(out) >> 1
        else:
            idx = np.floor(np.arange(out, dtype=np.float32) * scale32).astype(np.int64)
        return np.minimum(idx, size - 1)[:, None], np.ones((out, 1), np.float32)
    if method == "nearest-exact":
        # floor((dst + 0.5) * scale): rounds the pixel-centre source position, as PIL and scikit-image do.
        src = ((np.arange(out) + 0.5) * np.float64(scale32)).astype(np.float32)
        return np.minimum(np.floor(src).astype(np.int64), size - 1)[:, None], np.ones((out, 1), np.float32)
    if method == "area":
        return _area_taps(out, size)
    a = (-0.5 if antialias else _CUBIC_A) if cubic_a is None else cubic_a
    if antialias:
        if align_corners:
            scale32 = np.float32((size - 1) / (out - 1)) if out > 1 else np.float32(0)
        return _antialias_taps(out, size, method, float(scale32), a)
    src = _source_index(out, size, align_corners, cubic=method == "bicubic", scale=scale32)
    base = np.floor(src).astype(np.int64)
    t = (src - base).astype(np.float32)
    if method == "bilinear":
        idx = np.stack([base, base + 1], axis=-1)
        w = np.stack([1 - t, t], axis=-1)
    else:
        idx = base[:, None] + np.arange(-1, 3)[None, :]
        w = _cubic_filter(t[:, None] - np.arange(-1, 3)[None, :], a).astype(np.float32)
    if exclude_outside:
        w = np.where((idx >= 0) & (idx < size), w, 0.0)
        w = w / w.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, size - 1), w


def _scaled_size(in_size: Sequence[int], scale_factor: Sequence[float]) -> tuple[int, ...]:
    """PyTorch's output size for a ``scale_factor``: ``floor(in * s)`` per spatial dim."""
    return tuple(int(math.floor(float(i) * float(s))) for i, s in zip(in_size, scale_factor))


@utils.array_args("x")
def resize(
    x: jax.Array,
    size: Sequence[int] | None = None,
    method: str = "nearest",
    align_corners: bool = False,
    *,
    scale_factor: float | Sequence[float] | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
    spatial_dims: int | None = None,
    cubic_coeff: float | None = None,
    exclude_outside: bool = False,
) -> jax.Array:
    """Resize the spatial dims; equals ``torch.nn.functional.interpolate(x, size, scale_factor, mode=...)``.

    Separable over the spatial dims, one small gather-and-weight per dim:

    - "nearest": PyTorch's legacy nearest, ``src = floor(dst * in / out)``.
    - "nearest-exact": ``src = floor((dst + 0.5) * in / out)``, the pixel-centre rounding
      of PIL, scikit-image and ONNX's ``half_pixel`` nearest; shrinking by an integer
      factor then picks the middle of each block instead of its corner.
    - "bilinear": linear per dim (PyTorch's linear, bilinear and trilinear).
    - "bicubic": Keys' cubic with ``a = -0.75`` (``cubic_coeff``) and clamped borders.
    - "area": the mean over each output pixel's box, PyTorch's ``adaptive_avg_pool``.

    With ``align_corners=False`` pixel centres map as ``src = (dst + 0.5) * in / out - 0.5``;
    with ``True`` the corner pixels align, ``src = dst * (in - 1) / (out - 1)``.

    ``antialias=True`` (bilinear and bicubic, as in PyTorch and PIL) widens the filter by
    ``in / out`` when shrinking, so every input pixel contributes and fine detail does not
    alias; the cubic then uses ``a = -0.5`` and weights are normalised inside the image.

    Give either ``size`` or ``scale_factor``. With ``scale_factor`` the output is
    ``floor(in * s)`` and, as in PyTorch, the kernels use ``1 / s`` as the scale unless
    ``recompute_scale_factor=True`` (then ``in / out``); the two differ when ``in * s`` is
    not an integer.

    Args:
      x: ``(*batch, *spatial, C)``.
      size: output spatial size, one int per spatial dim (its length fixes the rank).
      method: "nearest", "nearest-exact", "bilinear" (alias "linear", "trilinear"),
        "bicubic" or "area" (PyTorch's ``mode``).
      align_corners: as in PyTorch; only for "bilinear" and "bicubic".
      scale_factor: a float, or one per spatial dim, instead of ``size``.
      recompute_scale_factor: as in PyTorch; only with ``scale_factor``.
      antialias: antialiased shrinking, for "bilinear" and "bicubic".
      spatial_dims: the rank, needed only when ``scale_factor`` is a bare number.
      cubic_coeff: the cubic's ``a`` (ONNX's ``cubic_coeff_a``); default PyTorch's.
      exclude_outside: give taps outside the image zero weight and renormalise (ONNX's
        ``exclude_outside``); default PyTorch's clamped borders.

    Returns:
      ``(*batch, *size, C)``. Half precision interpolates in float32.

    Example:
      >>> resize(jnp.array([0., 1.]).reshape(2, 1), (4,), "bilinear")[:, 0]
      Array([0.  , 0.25, 0.75, 1.  ], dtype=float32)
      >>> resize(jnp.arange(4.).reshape(4, 1), scale_factor=0.5, method="nearest-exact", spatial_dims=1)[:, 0]
      Array([1., 3.], dtype=float32)
    """
    fn = "resize"
    if not isinstance(method, str):
        raise TypeError(f"{fn}: method must be a string, got method={method!r}")
    method = {"linear": "bilinear", "trilinear": "bilinear", "cubic": "bicubic"}.get(method, method)
    if method not in RESIZE_METHODS:
        raise ValueError(f"{fn}: unknown method {method!r}; allowed: {', '.join(map(repr, RESIZE_METHODS))}")
    if align_corners and method not in ("bilinear", "bicubic"):
        raise ValueError(f"{fn}: align_corners=True only applies to 'bilinear' and 'bicubic', not {method!r}")
    if antialias and method not in ("bilinear", "bicubic"):
        raise ValueError(f"{fn}: antialias=True only applies to 'bilinear' and 'bicubic', not {method!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{fn}: give exactly one of size and scale_factor, got size={size!r}, scale_factor={scale_factor!r}")
    if recompute_scale_factor is not None and scale_factor is None:
        raise ValueError(f"{fn}: recompute_scale_factor only applies with scale_factor, not with size={size!r}")
    if size is not None:
        if not isinstance(size, Sequence) or isinstance(size, str):
            raise TypeError(f"{fn}: size must be a sequence with one int per spatial dim, got size={size!r}")
        n = len(size)
        utils.check_input(x, n, fn)
        size = utils.as_tuple(size, n, "size", fn, minimum=1)
        scales = (None,) * n
    else:
        n = utils.spatial_rank(fn, ("scale_factor", scale_factor), spatial_dims=spatial_dims)
        utils.check_input(x, n, fn)
        factors = utils.as_float_tuple(scale_factor, n, "scale_factor", fn)
        size = _scaled_size(x.shape[x.ndim - n - 1 : -1], factors)
        if min(size) < 1:
            raise ValueError(
                f"{fn}: scale_factor={scale_factor!r} shrinks the spatial shape {x.shape[x.ndim - n - 1 : -1]} "
                f"to {size}; every output dim must be >= 1"
            )
        scales = (None,) * n if recompute_scale_factor else tuple(1.0 / f for f in factors)
    if method != "nearest" and method != "nearest-exact":
        utils.check_float(x, fn)
    dtype = x.dtype
    acc = utils.accumulation_dtype(dtype)
    x = x.astype(acc)
    keeps_size = method == "nearest-exact" and size == x.shape[x.ndim - n - 1 : -1]
    for dim, (out, scale) in enumerate(zip(size, scales)):
        axis = x.ndim - n - 1 + dim
        if out == x.shape[axis] and (method in ("nearest", "bilinear") or antialias or keeps_size):
            continue  # as PyTorch, a dim that keeps its size is copied, whatever scale_factor said
        idx, w = _taps(out, x.shape[axis], method, align_corners, scale, antialias, cubic_coeff, exclude_outside)
        g = jnp.take(x, idx.ravel(), axis=axis).reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1 :])
        if idx.shape[1] == 1:
            x = g[(slice(None),) * (axis + 1) + (0,)]
        else:
            wshape = (1,) * axis + w.shape + (1,) * (x.ndim - axis - 1)
            x = jnp.sum(g * jnp.asarray(w, acc).reshape(wshape), axis=axis + 1)
    return x.astype(dtype)


def _shuffle_args(x, factor, spatial_dims, fn):
    n = utils.spatial_rank(fn, ("factor", factor), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    return x, n, utils.as_tuple(factor, n, "factor", fn, minimum=1)


@utils.array_args("x")
def pixel_shuffle(x: jax.Array, factor: int | Sequence[int], *, spatial_dims: int | None = None) -> jax.Array:
    """Depth-to-space: ``(*batch, *spatial, C * prod(r)) -> (*batch, *(spatial * r), C)``.

    Channel ``c * prod(r) + offset`` (offset row-major over the ``r`` block) moves to
    block position ``offset`` of output channel ``c``, exactly PyTorch's ``pixel_shuffle``
    order, so weights of sub-pixel conv layers port unchanged.

    Args:
      x: ``(*batch, *spatial, C * prod(factor))``.
      factor: upscale factor ``r``, int or one per spatial dim.
      spatial_dims: needed only when ``factor`` is a bare int.

    Example:
      >>> pixel_shuffle(jnp.ones((1, 4, 4, 12)), 2, spatial_dims=2).shape
      (1, 8, 8, 3)
    """
    fn = "pixel_shuffle"
    x, n, r = _shuffle_args(x, factor, spatial_dims, fn)
    block = utils.num_elements(r)
    if x.shape[-1] % block:
        raise ValueError(
            f"{fn}: the channel count {x.shape[-1]} must be divisible by prod(factor)={block}, got x.shape={tuple(x.shape)}"
        )
    nb = x.ndim - n - 1
    batch, spatial = x.shape[:nb], x.shape[nb:-1]
    c = x.shape[-1] // block
    x = x.reshape(batch + spatial + (c,) + r)
    # (*b, s1..sn, c, r1..rn) -> (*b, s1, r1, ..., sn, rn, c)
    perm = list(range(nb))
    for i in range(n):
        perm += [nb + i, nb + n + 1 + i]
    perm.append(nb + n)
    return x.transpose(perm).reshape(batch + tuple(s * f for s, f in zip(spatial, r)) + (c,))


@utils.array_args("x")
def pixel_unshuffle(x: jax.Array, factor: int | Sequence[int], *, spatial_dims: int | None = None) -> jax.Array:
    """Space-to-depth, the inverse of :func:`pixel_shuffle`.

    ``(*batch, *(spatial * r), C) -> (*batch, *spatial, C * prod(r))``, PyTorch's channel order.

    Example:
      >>> pixel_unshuffle(jnp.ones((1, 8, 8, 3)), (2, 2)).shape
      (1, 4, 4, 12)
    """
    fn = "pixel_unshuffle"
    x, n, r = _shuffle_args(x, factor, spatial_dims, fn)
    nb = x.ndim - n - 1
    batch, spatial, c = x.shape[:nb], x.shape[nb:-1], x.shape[-1]
    if any(s % f for s, f in zip(spatial, r)):
        raise ValueError(f"{fn}: spatial shape {tuple(spatial)} must be divisible by factor={r}")
    shape = list(batch)
    for s, f in zip(spatial, r):
        shape += [s // f, f]
    x = x.reshape(tuple(shape) + (c,))
    # (*b, s1, r1, ..., sn, rn, c) -> (*b, s1..sn, c, r1..rn)
    perm = list(range(nb)) + [nb + 2 * i for i in range(n)] + [x.ndim - 1] + [nb + 2 * i + 1 for i in range(n)]
    return x.transpose(perm).reshape(batch + tuple(s // f for s, f in zip(spatial, r)) + (c * utils.num_elements(r),))
