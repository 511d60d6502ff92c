"""Transforms of channels-last arrays, each a pure function of ``(x, param)`` that vmaps over ``param``.

A :class:`Transform` bundles that function with a default stack of parameters (shifts,
rotation counts, angles, scale factors, affine matrices, group elements), so one object describes "every
1-pixel shift", "every 15 degrees" or "all of D8". ``x`` is ``(*batch, *spatial, C)``; the transform acts on the ``spatial_dims``
axes just before the channels, the same for every example in the batch.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnnjax import functional as F
from cnnjax.functional import act_regular, group_order, transform_plane
from cnnjax.functional.resample import check_sampling


@dataclasses.dataclass(frozen=True)
class Transform:
    """A transform family: ``fn(x, param) -> x'`` and a default ``params`` stack ``(P, *param_shape)``.

    ``t(x)`` applies the first parameter, ``t(x, p)`` a given one, ``t.apply_all(x)`` every
    parameter at once (a vmap): ``(P, *x.shape)``.

    ``kind`` is ``"shift"`` for translations (their parameters scale with a network's
    stride, see :meth:`rescaled`) and ``"point"`` for flips, rotations and group actions.
    """

    name: str
    fn: Callable[[jax.Array, jax.Array], jax.Array]
    params: np.ndarray
    spatial_dims: int
    kind: str = "point"
    rescale: Callable[[np.ndarray, np.ndarray], "Transform"] | None = None  # (params, stride) -> Transform

    def __call__(self, x: jax.Array, param: Any = None) -> jax.Array:
        return self.fn(x, jnp.asarray(self.params[0] if param is None else param))

    def apply_all(self, x: jax.Array, params: Any = None) -> jax.Array:
        """``(P, *x.shape)``: ``x`` under every parameter (``params`` or the defaults)."""
        p = self.params if params is None else np.asarray(params)
        return jax.vmap(self.fn, in_axes=(None, 0))(x, jnp.asarray(p))

    def with_params(self, params: Any) -> "Transform":
        """The same family with another parameter stack (its leading axis indexes the parameters)."""
        p = np.asarray(params)
        if p.ndim == self.params.ndim - 1:
            p = p[None]
        if p.shape[1:] != self.params.shape[1:]:
            raise ValueError(f"{self.name}: each parameter must have shape {self.params.shape[1:]}, got params of shape {p.shape}")
        return dataclasses.replace(self, params=p)

    def rescaled(self, stride: tuple[int, ...]) -> "Transform":
        """The matching transform of a map subsampled by ``stride``: shifts divide by it, point transforms stay."""
        if self.rescale is None or all(s == 1 for s in stride):
            return self
        return self.rescale(self.params, np.asarray(stride))

    def exact_under(self, stride: tuple[int, ...]) -> np.ndarray:
        """``(P,)`` bool: whether each parameter maps to a whole-pixel transform after ``stride``."""
        if self.kind != "shift":
            return np.ones(len(self.params), bool)
        return np.all(np.mod(self.params, np.asarray(stride)) == 0, axis=-1)

    def __repr__(self) -> str:
        return f"{self.name}(params={self.params.tolist()})"


def spatial_axes(x: jax.Array, n: int) -> tuple[int, ...]:
    if x.ndim < n + 1:
        raise ValueError(f"expected (*batch, *spatial, C) with {n} spatial dim(s), got shape {tuple(x.shape)}")
    return tuple(range(x.ndim - n - 1, x.ndim - 1))


def _shift_params(shifts: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    p = np.asarray(shifts, dtype)
    if p.ndim == 0:
        p = np.full((1, n), p)
    elif p.ndim == 1:
        p = p[:, None] if n == 1 else p[None]
    if p.ndim != 2 or p.shape[1] != n:
        raise ValueError(f"{name}: shifts must be one shift per spatial dim ({n}) or a list of them, got shape {np.shape(shifts)}")
    return p


def _check_mode(mode: str, allowed: tuple[str, ...], name: str) -> None:
    if mode not in allowed:
        raise ValueError(f"{name}: mode must be one of {allowed}, got mode={mode!r}")


def _roll_fill(x: jax.Array, s: jax.Array, axis: int, circular: bool) -> jax.Array:
    """Shift by an integer (traced) ``s`` along ``axis``; zero-fill the vacated positions unless circular."""
    y = jnp.roll(x, s, axis=axis)
    if circular:
        return y
    idx = lax.broadcasted_iota(jnp.int32, (x.shape[axis],), 0) - s
    keep = (idx >= 0) & (idx < x.shape[axis])
    return y * keep.reshape((-1,) + (1,) * (x.ndim - axis % x.ndim - 1)).astype(x.dtype)


def _integer_shift(x: jax.Array, shift: jax.Array, n: int, circular: bool) -> jax.Array:
    for i, axis in enumerate(spatial_axes(x, n)):
        x = _roll_fill(x, shift[i].astype(jnp.int32), axis, circular)
    return x


def _fft_shift(x: jax.Array, shift: jax.Array, n: int) -> jax.Array:
    """Band-limited circular shift: multiply the spectrum by ``exp(-2 pi i k s / N)`` along each axis."""
    axes = spatial_axes(x, n)
    spec = jnp.fft.fftn(x.astype(jnp.result_type(x.dtype, jnp.float32)), axes=axes)
    for i, axis in enumerate(axes):
        size = x.shape[axis]
        k = jnp.fft.fftfreq(size) * size
        phase = jnp.exp(-2j * jnp.pi * k * shift[i].astype(k.dtype) / size)
        spec = spec * phase.reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return jnp.real(jnp.fft.ifftn(spec, axes=axes)).astype(x.dtype)


def _linear_shift(x: jax.Array, shift: jax.Array, n: int, circular: bool) -> jax.Array:
    """Shift by a real amount with linear interpolation between the two nearest whole-pixel shifts."""
    for i, axis in enumerate(spatial_axes(x, n)):
        lo = jnp.floor(shift[i])
        frac = (shift[i] - lo).astype(x.dtype)
        a = _roll_fill(x, lo.astype(jnp.int32), axis, circular)
        b = _roll_fill(x, lo.astype(jnp.int32) + 1, axis, circular)
        x = (1 - frac) * a + frac * b
    return x


def shift(shifts: Any = 1, *, spatial_dims: int, mode: str = "circular") -> Transform:
    """Integer translation: ``t(x)[..., i + s, :] = x[..., i, :]``.

    Args:
      shifts: an int (the same along every dim), one int per spatial dim, or a list of those.
      spatial_dims: 1, 2 or 3.
      mode: "circular" (wrap around, ``jnp.roll``) or "zeros" (vacated pixels become 0).

    Returns:
      A :class:`Transform` with ``params`` of shape ``(P, spatial_dims)``. On a map
      subsampled by ``S`` (:meth:`Transform.rescaled`) a shift ``s`` becomes ``s / S``:
      whole-pixel where ``S`` divides ``s``, otherwise a sub-pixel shift (FFT for circular,
      linear for zeros).

    Example:
      >>> shift([1, 2], spatial_dims=1).apply_all(jnp.arange(4.0)[:, None])[..., 0]
      Array([[3., 0., 1., 2.],
             [2., 3., 0., 1.]], dtype=float32)
    """
    _check_mode(mode, ("circular", "zeros"), "shift")
    n = spatial_dims
    params = _shift_params(shifts, n, "shift", np.int32)
    circular = mode == "circular"

    def rescale(params, stride):
        q = params / stride
        if np.all(q == np.round(q)):
            return shift(np.round(q).astype(np.int32), spatial_dims=n, mode=mode)
        return subpixel_shift(q, spatial_dims=n, method="fft" if circular else "linear", mode=mode)

    return Transform(f"shift[{mode}]", lambda x, s: _integer_shift(x, s, n, circular), params, n, "shift", rescale)


def subpixel_shift(shifts: Any = 0.5, *, spatial_dims: int, method: str = "fft", mode: str = "circular") -> Transform:
    """Translation by real amounts: an FFT phase shift (circular signals) or linear interpolation.

    ``method="fft"`` is the band-limited (sinc) interpolation of a periodic signal and is
    exact for whole-pixel shifts; ``method="linear"`` mixes the two nearest whole-pixel
    shifts (``mode`` "circular" or "zeros").

    Returns:
      A :class:`Transform` with float ``params`` of shape ``(P, spatial_dims)``.

    Example:
      >>> t = subpixel_shift(0.5, spatial_dims=1, method="linear")
      >>> t(jnp.array([[0.0], [2.0], [4.0], [6.0]]))[:, 0]
      Array([3., 1., 3., 5.], dtype=float32)
    """
    _check_mode(method, ("fft", "linear"), "subpixel_shift")
    _check_mode(mode, ("circular", "zeros") if method == "linear" else ("circular",), "subpixel_shift")
    n = spatial_dims
    params = _shift_params(shifts, n, "subpixel_shift", np.float32)
    if method == "fft":
        fn = partial(_fft_shift, n=n)
    else:
        fn = partial(_linear_shift, n=n, circular=mode == "circular")

    def rescale(params, stride):
        return subpixel_shift(params / stride, spatial_dims=n, method=method, mode=mode)

    return Transform(f"subpixel_shift[{method},{mode}]", lambda x, s: fn(x, s), params, n, "shift", rescale)


def flip(dims: Any = (True,), *, spatial_dims: int | None = None) -> Transform:
    """Mirror along the spatial dims marked ``True`` (one bool per dim, or a list of such masks).

    Example:
      >>> flip([True, False])(jnp.arange(4.0).reshape(2, 2, 1))[..., 0]
      Array([[2., 3.],
             [0., 1.]], dtype=float32)
    """
    params = np.asarray(dims, bool)
    params = params[None] if params.ndim == 1 else params
    n = params.shape[1] if spatial_dims is None else spatial_dims
    if params.ndim != 2 or params.shape[1] != n:
        raise ValueError(f"flip: dims must be one bool per spatial dim ({n}) or a list of such, got {dims!r}")

    def fn(x, mask):
        for i, axis in enumerate(spatial_axes(x, n)):
            x = jnp.where(mask[i], jnp.flip(x, axis), x)
        return x

    return Transform("flip", fn, params, n)


def _switch(fns: list[Callable], x: jax.Array, index: jax.Array) -> jax.Array:
    return lax.switch(jnp.asarray(index, jnp.int32), fns, x)


def _check_square(x: jax.Array, axes: tuple[int, int], name: str) -> None:
    if x.shape[axes[0]] != x.shape[axes[1]]:
        raise ValueError(f"{name}: the rotated plane must be square, got sizes {x.shape[axes[0]]} and {x.shape[axes[1]]} "
                         f"(x.shape={tuple(x.shape)})")


def rot90(k: Any = (1, 2, 3), *, spatial_dims: int = 2, plane: tuple[int, int] = (0, 1)) -> Transform:
    """Rotation by ``k`` quarter turns in the ``plane`` of two spatial dims (square in that plane).

    Example:
      >>> rot90(1)(jnp.arange(4.0).reshape(2, 2, 1))[..., 0]
      Array([[1., 3.],
             [0., 2.]], dtype=float32)
    """
    params = np.atleast_1d(np.asarray(k, np.int32)) % 4

    def fn(x, kk):
        axes = tuple(spatial_axes(x, spatial_dims)[p] for p in plane)
        _check_square(x, axes, "rot90")
        return _switch([partial(jnp.rot90, k=r, axes=axes) for r in range(4)], x, kk)

    return Transform("rot90", fn, params, spatial_dims)


def _scalar_params(values: Any, name: str, what: str) -> np.ndarray:
    p = np.atleast_1d(np.asarray(values, np.float32))
    if p.ndim != 1 or not np.all(np.isfinite(p)):
        raise ValueError(f"{name}: {what} must be a number or a list of finite numbers, got {values!r}")
    return p


def rotate(angles: Any = (45.0,), *, mode: str = "bilinear", padding_mode: str = "zeros") -> Transform:
    """Rotation of ``(*batch, H, W, C)`` by any angle, in degrees counter-clockwise, about the image centre.

    The plane is resampled with :func:`cnnjax.functional.grid_sample` (``mode``; what comes
    in from outside the image per ``padding_mode``, zeros by default: drop those corners
    with ``mask="disc"`` in the metrics, or keep the background at 0). Whole quarter turns
    land on pixel centres and equal :func:`rot90` to float rounding.

    Returns:
      A :class:`Transform` with float ``params`` ``(P,)``.

    Example:
      >>> t = rotate([0, 90])
      >>> t.apply_all(jnp.arange(4.0).reshape(2, 2, 1))[1, ..., 0]
      Array([[1., 3.],
             [0., 2.]], dtype=float32)
    """
    check_sampling(mode, padding_mode, "rotate")
    params = _scalar_params(angles, "rotate", "angles")
    return Transform(f"rotate[{mode},{padding_mode}]", lambda x, a: F.rotate(x, a, mode, padding_mode), params, 2)


def _affine_fn(mode: str, padding_mode: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    def fn(x, theta):
        spatial_axes(x, 2)
        batch = x.shape[:-3]
        theta = jnp.broadcast_to(theta.astype(jnp.float32), batch + (2, 3))
        return F.grid_sample(x, F.affine_grid(theta, x.shape), mode, padding_mode)
    return fn


def scale(factors: Any = (1.25,), *, mode: str = "bilinear", padding_mode: str = "zeros") -> Transform:
    """Zoom by ``factor`` about the image centre: ``t(x)(c + s (p - c)) = x(p)`` (``s > 1`` enlarges).

    Same resampling as :func:`rotate`; shrinking brings in pixels from outside (``padding_mode``).

    Returns:
      A :class:`Transform` with float ``params`` ``(P,)``.

    Example:
      >>> scale([1.0, 2.0]).params.tolist()
      [1.0, 2.0]
    """
    check_sampling(mode, padding_mode, "scale")
    params = _scalar_params(factors, "scale", "factors")
    if np.any(params <= 0):
        raise ValueError(f"scale: factors must be positive, got {factors!r}")
    affine_fn = _affine_fn(mode, padding_mode)

    def fn(x, s):
        inv = 1 / s
        zero = jnp.zeros_like(inv)
        return affine_fn(x, jnp.array([[inv, zero, zero], [zero, inv, zero]]))

    return Transform(f"scale[{mode},{padding_mode}]", fn, params, 2)


def affine(thetas: Any, *, mode: str = "bilinear", padding_mode: str = "zeros") -> Transform:
    """Any affine resampling, given as :func:`cnnjax.functional.affine_grid`'s ``theta`` ``(2, 3)``.

    ``theta`` maps output coordinates to input coordinates, normalised to ``[-1, 1]`` about
    the image centre (PyTorch's convention): ``[[1, 0, 0], [0, 1, 0]]`` is the identity.

    Returns:
      A :class:`Transform` with ``params`` ``(P, 2, 3)``.

    Example:
      >>> affine([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]).params.shape  # a shear
      (1, 2, 3)
    """
    check_sampling(mode, padding_mode, "affine")
    params = np.asarray(thetas, np.float32)
    params = params[None] if params.ndim == 2 else params
    if params.ndim != 3 or params.shape[1:] != (2, 3):
        raise ValueError(f"affine: thetas must be one (2, 3) matrix or a list of them, got shape {np.shape(thetas)}")
    return Transform(f"affine[{mode},{padding_mode}]", _affine_fn(mode, padding_mode), params, 2)


def group_action(group: str = "p4", *, on: str = "image", elements: Any = None) -> Transform:
    """An element of C_N or D_N (``"C8"``, ``"D4"``, ``"p4"`` = C4, ``"p4m"`` = D4...) acting on images or regular maps.

    ``on="image"`` transforms the plane of ``(*batch, H, W, C)``; ``on="regular"`` also
    permutes the group axis of ``(*batch, H, W, C * |G|)`` maps, as lifting and group convs
    produce (see :mod:`cnnjax.functional.group`). ``elements`` default to the whole group.
    Quarter turns and mirrors are exact; other angles resample the plane (bilinear, zeros
    outside, as :func:`rotate`).

    Example:
      >>> group_action("p4m").params.tolist()
      [0, 1, 2, 3, 4, 5, 6, 7]
    """
    n = group_order(group)
    if on not in ("image", "regular"):
        raise ValueError(f"group_action: on must be 'image' or 'regular', got on={on!r}")
    params = np.arange(n, dtype=np.int32) if elements is None else np.atleast_1d(np.asarray(elements, np.int32))
    if np.any((params < 0) | (params >= n)):
        raise ValueError(f"group_action: elements of {group!r} are 0..{n - 1}, got {params.tolist()}")
    if on == "image":
        branches = [partial(transform_plane, g=g, group=group) for g in range(n)]
    else:
        branches = [partial(act_regular, g=g, group=group) for g in range(n)]

    def fn(x, g):
        _check_square(x, (-3, -2), "group_action")
        return _switch(branches, x, g)

    return Transform(f"{group}[{on}]", fn, params, 2)
