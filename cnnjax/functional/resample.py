"""Sampling an array at arbitrary points: ``affine_grid`` and ``grid_sample``, as in PyTorch, channels-last.

A sampling grid holds, for every output pixel, where to read the input, in normalised
coordinates: ``-1`` and ``1`` are the input's first and last pixel centres
(``align_corners=True``) or its outer edges (``False``). As in PyTorch the grid's last
axis lists the coordinates in ``(x, y[, z])`` order, width first, so a grid made for
``torch.nn.functional.grid_sample`` works unchanged. Spatial transformer networks
(Jaderberg et al. 2015), any-angle rotations and scalings are built from these two.
"""

from __future__ import annotations

from functools import partial
from itertools import product
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.functional import utils

SAMPLE_MODES = ("bilinear", "nearest", "bicubic")
SAMPLE_PADDING_MODES = ("zeros", "border", "reflection")
_CUBIC_A = -0.75  # PyTorch's bicubic grid_sample coefficient


def check_sampling(mode: str, padding_mode: str, fn: str) -> None:
    """``mode`` and ``padding_mode`` are ones :func:`grid_sample` knows; the error names ``fn``."""
    if mode not in SAMPLE_MODES:
        raise ValueError(f"{fn}: mode must be one of {SAMPLE_MODES}, got mode={mode!r}")
    if padding_mode not in SAMPLE_PADDING_MODES:
        raise ValueError(f"{fn}: padding_mode must be one of {SAMPLE_PADDING_MODES}, got padding_mode={padding_mode!r}")


def _base_coords(size: int, align_corners: bool) -> np.ndarray:
    """Normalised coordinates of the ``size`` pixel centres along one axis."""
    if align_corners:
        return np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


@utils.array_args("theta")
def affine_grid(theta: jax.Array, size: Sequence[int], align_corners: bool = False) -> jax.Array:
    """The sampling grid of an affine map; equals ``torch.nn.functional.affine_grid`` (channels-last ``size``).

    ``grid[..., i, j, :] = theta @ (x_j, y_i, 1)``, where ``(x_j, y_i)`` are the normalised
    coordinates of output pixel ``(i, j)``. ``theta`` maps output coordinates to input
    coordinates (the inverse of how the image moves).

    Args:
      theta: ``(*batch, 2, 3)`` for images, ``(*batch, 3, 4)`` for volumes.
      size: the output's shape ``(*batch, H, W, C)`` (or ``(*batch, D, H, W, C)``); only its
        batch dims (which must equal ``theta``'s) and spatial sizes are used.
      align_corners: whether ``-1``/``1`` are the corner pixels' centres (True) or edges.

    Returns:
      ``(*batch, H, W, 2)`` (or ``(*batch, D, H, W, 3)``), coordinates in ``(x, y[, z])`` order.

    Example:
      >>> affine_grid(jnp.eye(2, 3)[None], (1, 2, 2, 1))[0]
      Array([[[-0.5, -0.5],
              [ 0.5, -0.5]],
      <BLANKLINE>
             [[-0.5,  0.5],
              [ 0.5,  0.5]]], dtype=float32)
    """
    fn = "affine_grid"
    if theta.ndim < 2 or theta.shape[-2] not in (2, 3) or theta.shape[-1] != theta.shape[-2] + 1:
        raise ValueError(f"{fn}: theta must be (*batch, 2, 3) or (*batch, 3, 4), got theta.shape={tuple(theta.shape)}")
    n = theta.shape[-2]
    size = tuple(int(s) for s in size) if isinstance(size, Sequence) and not isinstance(size, str) else None
    batch = theta.shape[:-2]
    if size is None or len(size) != len(batch) + n + 1 or any(s < 1 for s in size):
        raise ValueError(f"{fn}: size must be the output shape (*batch, *spatial, C) with {len(batch)} batch dim(s) "
                         f"(theta's) and {n} spatial dims, got size={size!r}")
    if tuple(size[: len(batch)]) != tuple(batch):
        raise ValueError(f"{fn}: size's batch dims {size[:len(batch)]} must equal theta's {tuple(batch)}")
    spatial = size[len(batch): len(batch) + n]
    axes = [_base_coords(s, align_corners) for s in reversed(spatial)]  # x (width) first
    mesh = np.meshgrid(*axes, indexing="xy") if n == 2 else [m.transpose(2, 0, 1) for m in np.meshgrid(*axes, indexing="xy")]
    base = np.stack([*mesh, np.ones(spatial)], axis=-1).astype(np.float32)  # (*spatial, n + 1)
    dtype = jnp.result_type(theta.dtype, jnp.float32)
    return jnp.einsum("...k,bnk->b...n", jnp.asarray(base, dtype), theta.reshape((-1, n, n + 1)).astype(dtype),
                      precision="highest").reshape(batch + tuple(spatial) + (n,))


def _unnormalize(g: jax.Array, size: int, align_corners: bool) -> jax.Array:
    return (g + 1) / 2 * (size - 1) if align_corners else ((g + 1) * size - 1) / 2


def _reflect(p: jax.Array, twice_low: int, twice_high: int) -> jax.Array:
    """PyTorch's ``reflect_coordinates``: fold ``p`` into ``[low, high]`` by mirroring at both ends."""
    if twice_low == twice_high:
        return jnp.zeros_like(p)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    p = jnp.abs(p - low)
    extra, flips = jnp.fmod(p, span), jnp.floor(p / span)
    return jnp.where(jnp.mod(flips, 2) == 0, extra + low, span - extra + low)


def _pad_coord(p: jax.Array, size: int, padding_mode: str, align_corners: bool) -> jax.Array:
    """Where a (possibly outside) coordinate reads, per ``padding_mode`` (zeros: unchanged)."""
    if padding_mode == "zeros":
        return p
    if padding_mode == "reflection":
        p = _reflect(p, 0, 2 * (size - 1)) if align_corners else _reflect(p, -1, 2 * size - 1)
    return jnp.clip(p, 0, size - 1)


def _cubic(t: jax.Array, a: float = _CUBIC_A) -> tuple[jax.Array, ...]:
    """Keys' cubic weights of the taps at offsets -1, 0, 1, 2 for a fraction ``t`` in [0, 1)."""
    def near(v):  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _axis_taps(p: jax.Array, size: int, mode: str, padding_mode: str, align_corners: bool):
    """``[(index, weight, inside)]`` along one axis for source coordinates ``p`` (pixel units)."""
    if mode == "bicubic":
        lo = jnp.floor(p)
        weights = _cubic(p - lo)
        taps = []
        for off, w in zip(range(-1, 3), weights):
            i = _pad_coord(lo + off, size, padding_mode, align_corners)
            taps.append((i, w))
    else:
        p = _pad_coord(p, size, padding_mode, align_corners)
        if mode == "nearest":
            taps = [(jnp.round(p), jnp.ones_like(p))]  # half to even, as PyTorch's nearbyint
        else:
            lo = jnp.floor(p)
            taps = [(lo, 1 - (p - lo)), (lo + 1, p - lo)]
    # reflection and border keep whole-pixel taps inside; zeros drops the ones outside
    return [(jnp.clip(i, 0, size - 1).astype(jnp.int32), w, (i >= 0) & (i <= size - 1)) for i, w in taps]


def _sample_one(x: jax.Array, grid: jax.Array, mode: str, padding_mode: str, align_corners: bool) -> jax.Array:
    """``x`` ``(*spatial, C)`` at ``grid`` ``(*out, n)``: ``(*out, C)``."""
    n = grid.shape[-1]
    spatial = x.shape[:n]
    flat = x.reshape((-1, x.shape[-1]))
    per_axis = [_axis_taps(_unnormalize(grid[..., n - 1 - d], spatial[d], align_corners), spatial[d], mode,
                           padding_mode, align_corners) for d in range(n)]
    strides = np.cumprod((1,) + spatial[::-1])[:-1][::-1]
    acc = jnp.zeros(grid.shape[:-1] + (x.shape[-1],), jnp.result_type(x.dtype, grid.dtype))
    for combo in product(*per_axis):
        index = sum(int(s) * i for s, (i, _, _) in zip(strides, combo))
        weight = 1.0
        for _, w, inside in combo:
            weight = weight * jnp.where(inside, w, 0) if padding_mode == "zeros" else weight * w
        acc = acc + jnp.take(flat, index, axis=0) * weight[..., None]
    return acc.astype(x.dtype)


@utils.array_args("x", "grid")
def grid_sample(x: jax.Array, grid: jax.Array, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False) -> jax.Array:
    """Read ``x`` at the points of ``grid``; equals ``torch.nn.functional.grid_sample`` (channels-last).

    Args:
      x: ``(*batch, H, W, C)`` (or ``(*batch, D, H, W, C)``).
      grid: ``(*batch, H_out, W_out, 2)`` (or ``(*batch, D_out, H_out, W_out, 3)``):
        normalised coordinates in ``(x, y[, z])`` order, as from :func:`affine_grid`.
        Its batch dims broadcast against ``x``'s.
      mode: "bilinear" (trilinear for volumes), "nearest" (ties to even, as PyTorch) or
        "bicubic" (Keys, ``a = -0.75``; images only).
      padding_mode: what is read outside ``x``: "zeros", "border" (the nearest edge pixel)
        or "reflection" (mirrored at the edges, or at the corner centres with ``align_corners``).
      align_corners: whether ``-1``/``1`` are the corner pixels' centres (True) or edges (False).

    Returns:
      ``(*batch, H_out, W_out, C)``. Differentiable in ``x`` and (except "nearest") ``grid``.

    Example:
      >>> x = jnp.arange(4.0).reshape(1, 2, 2, 1)
      >>> grid_sample(x, jnp.zeros((1, 1, 1, 2)))[..., 0]  # the centre: the mean of the four pixels
      Array([[[1.5]]], dtype=float32)
    """
    fn = "grid_sample"
    check_sampling(mode, padding_mode, fn)
    n = grid.shape[-1] if grid.ndim else 0
    if n not in (2, 3) or grid.ndim < n + 1:
        raise ValueError(f"{fn}: grid must be (*batch, H_out, W_out, 2) or (*batch, D_out, H_out, W_out, 3), "
                         f"got grid.shape={tuple(grid.shape)}")
    if mode == "bicubic" and n != 2:
        raise ValueError(f"{fn}: mode='bicubic' samples images only (a grid with 2 coordinates), as in PyTorch")
    utils.check_input(x, n, fn)
    utils.check_float(x, fn)
    if not jnp.issubdtype(grid.dtype, jnp.floating):
        raise TypeError(f"{fn}: grid must be floating point, got dtype {grid.dtype}")
    xb, gb = x.shape[: x.ndim - n - 1], grid.shape[: grid.ndim - n - 1]
    try:
        batch = jnp.broadcast_shapes(xb, gb)
    except ValueError:
        raise ValueError(f"{fn}: the batch dims of x {xb} and grid {gb} do not broadcast "
                         f"(x.shape={tuple(x.shape)}, grid.shape={tuple(grid.shape)})") from None
    x = jnp.broadcast_to(x, batch + x.shape[len(xb):]).reshape((-1,) + x.shape[len(xb):])
    grid = jnp.broadcast_to(grid, batch + grid.shape[len(gb):]).reshape((-1,) + grid.shape[len(gb):])
    out = _sample_batch(x, grid, mode, padding_mode, bool(align_corners))
    return out.reshape(batch + out.shape[1:])


@partial(jax.jit, static_argnums=(2, 3, 4))
def _sample_batch(x, grid, mode, padding_mode, align_corners):
    # one compiled program: the taps are dozens of small ops that eager mode would dispatch one by one
    return jax.vmap(lambda a, g: _sample_one(a, g, mode, padding_mode, align_corners))(x, grid)


def _snap(v: jax.Array) -> jax.Array:
    """cos/sin of whole quarter turns as exact 0 and +-1, so those rotations land on pixel centres."""
    r = jnp.round(v)
    return jnp.where(jnp.abs(v - r) < 1e-6, r, v)


@utils.array_args("x")
def rotate(x: jax.Array, angle: Any, mode: str = "bilinear", padding_mode: str = "zeros") -> jax.Array:
    """Rotate the image plane by ``angle`` degrees counter-clockwise (as displayed) about its centre.

    The direction of ``jnp.rot90`` on ``(H, W)``: ``rotate(x, 90)`` equals ``jnp.rot90(x, 1, (-3, -2))``
    for square images (to float rounding). Pixels that come from outside the image are read
    per ``padding_mode``; the image is resampled with :func:`grid_sample` (``align_corners=False``).

    Args:
      x: ``(*batch, H, W, C)``.
      angle: degrees, a scalar or one per example ``(*batch,)``; may be traced.
      mode, padding_mode: as :func:`grid_sample`.

    Returns:
      ``(*batch, H, W, C)``.

    Example:
      >>> x = jnp.arange(9.0).reshape(3, 3, 1)
      >>> rotate(x, 90)[..., 0].round(4)
      Array([[2., 5., 8.],
             [1., 4., 7.],
             [0., 3., 6.]], dtype=float32)
    """
    utils.check_input(x, 2, "rotate")
    batch, (h, w) = x.shape[:-3], x.shape[-3:-1]
    t = jnp.deg2rad(jnp.broadcast_to(jnp.asarray(angle, jnp.float32), batch))
    c, s = _snap(jnp.cos(t)), _snap(jnp.sin(t))
    zero = jnp.zeros_like(c)
    theta = jnp.stack([jnp.stack([c, -s * h / w, zero], -1), jnp.stack([s * w / h, c, zero], -1)], -2)
    return grid_sample(x, affine_grid(theta, x.shape), mode, padding_mode)
