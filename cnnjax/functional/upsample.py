"""Upsampling: nearest repeat, ``resize`` matching ``torch.nn.functional.interpolate``, pixel (un)shuffle."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.functional import utils

RESIZE_METHODS = ("nearest", "bilinear", "bicubic")
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) Keys cubic coefficient


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
    x = jnp.asarray(x)
    n = utils.spatial_rank(fn, ("scale", scale), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    for dim, f in enumerate(utils.as_tuple(scale, n, "scale", fn, minimum=1)):
        x = jnp.repeat(x, f, axis=x.ndim - n - 1 + dim)
    return x


def _source_index(out: int, size: int, align_corners: bool, cubic: bool) -> np.ndarray:
    """PyTorch's ``area_pixel_compute_source_index``, in float32 like its kernels."""
    dst = np.arange(out, dtype=np.float32)
    if align_corners:
        scale = np.float32((size - 1) / (out - 1)) if out > 1 else np.float32(0)
        return dst * scale
    src = np.float32(size / out) * (dst + np.float32(0.5)) - np.float32(0.5)
    return src if cubic else np.maximum(src, np.float32(0))


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    a = _CUBIC_A

    def near(v):  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _taps(out: int, size: int, method: str, align_corners: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per output position: input indices ``(out, T)`` and weights ``(out, T)``."""
    if method == "nearest":
        # Legacy PyTorch 'nearest': floor(dst * in/out) in float32, clamped.
        idx = np.floor(np.arange(out, dtype=np.float32) * np.float32(size / out)).astype(np.int64)
        return np.minimum(idx, size - 1)[:, None], np.ones((out, 1), np.float32)
    src = _source_index(out, size, align_corners, cubic=method == "bicubic")
    base = np.floor(src).astype(np.int64)
    t = (src - base).astype(np.float32)
    if method == "bilinear":
        idx = np.stack([base, base + 1], axis=-1)
        w = np.stack([1 - t, t], axis=-1)
    else:
        idx = base[:, None] + np.arange(-1, 3)[None, :]
        w = _cubic_weights(t)
    return np.clip(idx, 0, size - 1), w


def resize(x: jax.Array, size: Sequence[int], method: str = "nearest", align_corners: bool = False) -> jax.Array:
    """Resize the spatial dims; equals ``torch.nn.functional.interpolate(x, size, mode=...)``.

    Separable over the spatial dims: "nearest" is PyTorch's legacy nearest
    (``src = floor(dst * in / out)``); "bilinear" is linear per dim (PyTorch's linear,
    bilinear and trilinear); "bicubic" is Keys' cubic with ``a = -0.75`` and clamped
    borders. With ``align_corners=False`` pixel centres map as
    ``src = (dst + 0.5) * in / out - 0.5``; with ``True`` the corner pixels align,
    ``src = dst * (in - 1) / (out - 1)``. No antialiasing when shrinking.

    Args:
      x: ``(*batch, *spatial, C)``.
      size: output spatial size, one int per spatial dim (its length fixes the rank).
      method: "nearest", "bilinear" (alias "linear", "trilinear") or "bicubic".
      align_corners: as in PyTorch; not allowed with "nearest".

    Returns:
      ``(*batch, *size, C)``. Half precision interpolates in float32.

    Example:
      >>> resize(jnp.array([0., 1.]).reshape(2, 1), (4,), "bilinear")[:, 0]
      Array([0.  , 0.25, 0.75, 1.  ], dtype=float32)
    """
    fn = "resize"
    x = jnp.asarray(x)
    method = {"linear": "bilinear", "trilinear": "bilinear"}.get(method, method)
    if method not in RESIZE_METHODS:
        raise ValueError(f"{fn}: unknown method {method!r}; allowed: {', '.join(map(repr, RESIZE_METHODS))}")
    if method == "nearest" and align_corners:
        raise ValueError(f"{fn}: align_corners=True only applies to 'bilinear' and 'bicubic', not 'nearest'")
    if not isinstance(size, Sequence) or isinstance(size, str):
        raise TypeError(f"{fn}: size must be a sequence with one int per spatial dim, got size={size!r}")
    n = len(size)
    utils.check_input(x, n, fn)
    size = utils.as_tuple(size, n, "size", fn, minimum=1)
    if method != "nearest":
        utils.check_float(x, fn)
    dtype = x.dtype
    acc = utils.accumulation_dtype(dtype)
    x = x.astype(acc)
    for dim, out in enumerate(size):
        axis = x.ndim - n - 1 + dim
        idx, w = _taps(out, x.shape[axis], method, align_corners)
        g = jnp.take(x, idx.ravel(), axis=axis).reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1 :])
        if method == "nearest":
            x = g[(slice(None),) * (axis + 1) + (0,)]
        else:
            wshape = (1,) * axis + w.shape + (1,) * (x.ndim - axis - 1)
            x = jnp.sum(g * jnp.asarray(w, acc).reshape(wshape), axis=axis + 1)
    return x.astype(dtype)


def _shuffle_args(x, factor, spatial_dims, fn):
    x = jnp.asarray(x)
    n = utils.spatial_rank(fn, ("factor", factor), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    return x, n, utils.as_tuple(factor, n, "factor", fn, minimum=1)


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
