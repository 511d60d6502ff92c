"""Group-equivariant convolutions on the square grid: the rotation groups C_N and the dihedral groups D_N, any N.

``"C4"`` (alias ``"p4"``, Cohen & Welling 2016) has the four quarter turns, ``"D4"`` (alias
``"p4m"``) adds mirrors; ``"C8"``, ``"C16"``, ``"D8"``... rotate by ``360 / N`` degrees
(Weiler & Cesa 2019). Element ``g = m * N + r`` acts on the plane as "mirror ``m`` times
(flip the width axis), then rotate ``r * 360 / N`` degrees counter-clockwise"
(the direction of ``jnp.rot90`` from height towards width).

Feature maps on the group ("regular" fields, escnn's layout) are channels-last
``(*batch, H, W, C * |G|)``: channel ``c * |G| + h`` is field ``c`` at rotation/mirror
``h``. ``g`` acts on them by ``(g f)(x, h) = f(g^-1 x, g^-1 h)``: the plane is transformed
and the group axis permuted. A lifting conv (images -> group maps) and a group conv
(group maps -> group maps) transform their filter bank once, for all ``|G|`` outputs, and
run one planar :func:`~cnnjax.functional.conv`.

Filters turn exactly by whole quarter turns and mirrors (pixel permutations). When ``N``
does not divide 4, the other angles are off the pixel grid: the filters are then rotated
in a steerable basis (:mod:`cnnjax.functional.steerable`: circular harmonics on Gaussian
rings, the construction of escnn's ``R2Conv``), the rest of the angle analytically and the
quarter turns as permutations; a filter outside that basis is projected onto it first.
The convs commute with quarter turns and mirrors exactly (odd kernels with symmetric
padding, or valid convs of square inputs); with the other rotations only approximately,
because the image itself is a grid: the error is measured in ``tests/functional/test_group.py``
and the ``rotated_digits`` study.
"""

from __future__ import annotations

import functools
import re
import warnings

from typing import Any

import jax.numpy as jnp
import numpy as np

from cnnjax.functional import utils
from cnnjax.functional.conv import conv
from cnnjax.functional.norm import batch_norm
from cnnjax.functional.resample import rotate
from cnnjax.functional.steerable import rotate_filters

ALIASES = {"p4": "C4", "p4m": "D4"}


def parse_group(group: str) -> tuple[int, bool]:
    """``(N, mirrors)`` of a group name: ``"C8" -> (8, False)``, ``"D4"``/``"p4m" -> (4, True)``."""
    parsed = _parse(group) if isinstance(group, str) else None
    if parsed is None:
        raise ValueError(f"unknown group {group!r}; allowed: 'C<N>' (N rotations, e.g. 'C8'), 'D<N>' (rotations "
                         f"and mirrors, e.g. 'D8'), 'p4' (= 'C4') and 'p4m' (= 'D4')")
    return parsed


@functools.lru_cache(maxsize=None)
def _parse(group: str) -> tuple[int, bool] | None:
    match = re.fullmatch(r"([CD])([1-9][0-9]*)", ALIASES.get(group, group))
    return None if match is None else (int(match.group(2)), match.group(1) == "D")


def group_order(group: str) -> int:
    """``|G|``: ``N`` for ``"C<N>"``, ``2N`` for ``"D<N>"`` (4 for ``"p4"``, 8 for ``"p4m"``)."""
    n, mirrors = parse_group(group)
    return 2 * n if mirrors else n


def element_angle(g: int, group: str) -> tuple[int, float]:
    """``(mirror, degrees)`` of element ``g``: mirror the width axis if ``mirror``, then rotate by ``degrees``."""
    n, _ = parse_group(group)
    m, r = divmod(int(g), n)
    return m, 360.0 * r / n


def on_grid(group: str) -> bool:
    """Whether every element maps the pixel grid to itself (N divides 4)."""
    return 4 % parse_group(group)[0] == 0


def _compose(a: int, b: int, n: int) -> int:
    """Index of ``a * b`` in D_N (also right inside C_N): ``r^ra m^ma r^rb m^mb = r^(ra + (-1)^ma rb) m^(ma+mb)``."""
    ma, ra = divmod(a, n)
    mb, rb = divmod(b, n)
    return ((ma + mb) % 2) * n + (ra + (rb if ma == 0 else -rb)) % n


def inverse(g: int, group: str = "p4m") -> int:
    """Index of ``g^-1`` (mirrors are their own inverses)."""
    n, _ = parse_group(group)
    m, r = divmod(g, n)
    return g if m else (-r) % n


def cayley_table(group: str) -> np.ndarray:
    """``table[a, b]`` = index of ``a * b``: ``(|G|, |G|)``."""
    n = parse_group(group)[0]
    size = group_order(group)
    return np.array([[_compose(a, b, n) for b in range(size)] for a in range(size)])


def regular_permutation(group: str, g: int) -> np.ndarray:
    """``perm`` with ``(g f)[..., h] = f[..., perm[h]]``, i.e. ``perm[h] = g^-1 h``: ``(|G|,)``."""
    n = parse_group(group)[0]
    return np.array([_compose(inverse(g, group), h, n) for h in range(group_order(group))])


@utils.array_args("x")
def transform_plane(x: jnp.ndarray, g: int, axes: tuple[int, int] = (-3, -2), group: str = "p4m") -> jnp.ndarray:
    """Apply the element ``g`` (a static int) of ``group`` to the two ``axes`` of ``x``: flip, then rotate.

    Quarter turns and mirrors permute pixels exactly; other angles resample the plane
    (:func:`~cnnjax.functional.rotate`: bilinear, zeros outside), about its centre.

    Example:
      >>> transform_plane(jnp.arange(4).reshape(2, 2, 1), 1)[..., 0]
      Array([[1, 3],
             [0, 2]], dtype=int32)
    """
    m, degrees = element_angle(g, group)
    if m:
        x = jnp.flip(x, axes[1])
    quarter, rest = divmod(degrees, 90.0)
    if rest:
        y = x[..., None] if x.ndim == 2 else x  # rotate wants a trailing channel axis
        plane = tuple(a % x.ndim for a in axes)
        y = jnp.moveaxis(rotate(jnp.moveaxis(y, plane, (-3, -2)), rest), (-3, -2), plane)
        x = y[..., 0] if x.ndim == 2 else y
    return jnp.rot90(x, int(quarter), axes=axes)


@utils.array_args("x")
def act_regular(x: jnp.ndarray, g: int, group: str, axes: tuple[int, int] = (-3, -2)) -> jnp.ndarray:
    """``g`` acting on a regular group map ``(*batch, H, W, C * |G|)``: transform the plane, permute ``h``.

    Example:
      >>> act_regular(jnp.arange(4.0).reshape(1, 1, 4), 1, "p4")[0, 0]
      Array([3., 0., 1., 2.], dtype=float32)
    """
    y = transform_plane(x, g, axes, group)
    return _fields(y, group, "act_regular")[..., regular_permutation(group, g)].reshape(y.shape)


def _check_planar(x: jnp.ndarray, w: jnp.ndarray, w_rank: int, fn: str, what: str, group: str) -> None:
    group_order(group)
    if w.ndim != w_rank or w.shape[0] != w.shape[1]:
        raise ValueError(f"{fn}: w must be {what} with a square kernel, got w.shape={tuple(w.shape)}")
    if not on_grid(group) and w.shape[0] % 2 == 0:
        raise ValueError(f"{fn}: {group!r} rotates filters off the pixel grid about their centre pixel, so the "
                         f"kernel size must be odd, got w.shape={tuple(w.shape)}")
    if x.ndim < 3:
        raise ValueError(f"{fn}: x must be (*batch, H, W, C), got x.shape={tuple(x.shape)}")


def transform_filter(w: jnp.ndarray, g: int, group: str) -> jnp.ndarray:
    """The planar filter ``w`` ``(k, k, ...)`` transformed by element ``g``: mirrored, then rotated.

    On-grid groups permute pixels. Off-grid groups rotate in the steerable basis
    (:func:`~cnnjax.functional.steerable.rotate_filters`), so every element, the identity
    included, sees the filter's projection onto that basis.
    """
    m, degrees = element_angle(g, group)
    if m:
        w = jnp.flip(w, 1)
    if on_grid(group):
        return jnp.rot90(w, int(degrees // 90), axes=(0, 1))
    return rotate_filters(w, degrees)


def lifting_filters(w: jnp.ndarray, group: str) -> jnp.ndarray:
    """The planar filter bank of a lifting conv: ``(k, k, C_in, C_out) -> (k, k, C_in, C_out * |G|)``."""
    n = group_order(group)
    bank = jnp.stack([transform_filter(w, h, group) for h in range(n)], axis=-1)
    return bank.reshape(w.shape[:3] + (-1,))


def group_filters(w: jnp.ndarray, group: str) -> jnp.ndarray:
    """The planar filter bank of a group conv: ``(k, k, C_in, |G|, C_out) -> (k, k, C_in * |G|, C_out * |G|)``."""
    n = group_order(group)
    if w.shape[3] != n:
        raise ValueError(f"group_filters: w's axis 3 must be |G| = {n} for {group!r}, got w.shape={tuple(w.shape)}")
    bank = [transform_filter(w, h, group)[:, :, :, regular_permutation(group, h), :] for h in range(n)]
    k = w.shape[0]
    return jnp.stack(bank, axis=-1).reshape(k, k, w.shape[2] * n, -1)


def _bias(b: jnp.ndarray | None, n: int) -> jnp.ndarray | None:
    return None if b is None else jnp.repeat(b, n)


@utils.array_args("x", "w", "b")
def lifting_conv(x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray | None = None, *, group: str = "p4",
                 **conv_args: Any) -> jnp.ndarray:
    """Lifting convolution Z2 -> G: correlate with every rotated (and mirrored) copy of each filter.

    ``y[x, o * |G| + h] = b[o] + sum_{y, c} (h w)[y - x, c, o] in[y, c]``, where ``h w`` is
    the filter transformed by ``h``.

    Args:
      x: ``(*batch, H, W, C_in)``.
      w: ``(k, k, C_in, C_out)``.
      b: optional ``(C_out,)``, shared over the group axis.
      group: "C<N>" or "D<N>" (any N; "p4" = "C4", "p4m" = "D4").
      **conv_args: ``stride``, ``padding``, ``padding_mode``, ``dilation`` of :func:`conv`.

    Returns:
      ``(*batch, H', W', C_out * |G|)``, a regular group map.

    Example:
      >>> lifting_conv(jnp.ones((2, 9, 9, 1)), jnp.ones((3, 3, 1, 10))).shape
      (2, 7, 7, 40)
    """
    _check_planar(x, w, 4, "lifting_conv", "(k, k, C_in, C_out)", group)
    return conv(x, lifting_filters(w, group), _bias(b, group_order(group)), **conv_args)


@utils.array_args("x", "w", "b")
def group_conv(x: jnp.ndarray, w: jnp.ndarray, b: jnp.ndarray | None = None, *, group: str = "p4",
               **conv_args: Any) -> jnp.ndarray:
    """Group convolution G -> G: ``y(x, h) = sum_{y, k, c} w(h^-1 (y - x), h^-1 k)[c, o] f(y, k)[c]``.

    Implemented by transforming the filter bank once (:func:`group_filters`) and running
    one planar conv over the ``C_in * |G|`` input channels.

    Args:
      x: ``(*batch, H, W, C_in * |G|)``, a regular group map.
      w: ``(k, k, C_in, |G|, C_out)``.
      b: optional ``(C_out,)``, shared over the group axis.
      group: "C<N>" or "D<N>" (any N; "p4" = "C4", "p4m" = "D4").
      **conv_args: ``stride``, ``padding``, ``padding_mode``, ``dilation`` of :func:`conv`.

    Returns:
      ``(*batch, H', W', C_out * |G|)``.

    Example:
      >>> group_conv(jnp.ones((2, 7, 7, 40)), jnp.ones((3, 3, 10, 4, 10)), padding=1).shape
      (2, 7, 7, 40)
    """
    _check_planar(x, w, 5, "group_conv", "(k, k, C_in, |G|, C_out)", group)
    n = group_order(group)
    if x.shape[-1] != w.shape[2] * n:
        raise ValueError(
            f"group_conv: x has {x.shape[-1]} channels but w expects C_in * |G| = {w.shape[2]} * {n}; "
            f"x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}"
        )
    return conv(x, group_filters(w, group), _bias(b, n), **conv_args)


def _fields(x: jnp.ndarray, group: str, fn: str) -> jnp.ndarray:
    n = group_order(group)
    if x.shape[-1] % n:
        raise ValueError(f"{fn}: the channel count {x.shape[-1]} is not a multiple of |G| = {n} ({group!r})")
    return x.reshape(x.shape[:-1] + (-1, n))


@utils.array_args("x")
def group_pool(x: jnp.ndarray, group: str = "p4", reduce: str = "max") -> jnp.ndarray:
    """Pool over the group axis: ``(*batch, *spatial, C * |G|) -> (*batch, *spatial, C)``, invariant to ``h``.

    Example:
      >>> group_pool(jnp.arange(8.0).reshape(1, 8), "p4")
      Array([[3., 7.]], dtype=float32)
    """
    if reduce not in ("max", "mean"):
        raise ValueError(f"group_pool: reduce must be 'max' or 'mean', got {reduce!r}")
    f = _fields(x, group, "group_pool")
    return f.max(-1) if reduce == "max" else f.mean(-1)


@utils.array_args("x", "scale", "bias")
def group_batch_norm(x: jnp.ndarray, scale: jnp.ndarray | None, bias: jnp.ndarray | None,
                     stats: dict[str, jnp.ndarray], *, group: str = "p4", residual: jnp.ndarray | None = None,
                     **bn_args: Any):
    """Batch norm of a regular group map with one mean/var/scale/bias per field, shared over the group axis.

    Sharing the statistics over ``h`` is what keeps the layer equivariant (per-channel
    statistics would differ between rotated copies). See :func:`~cnnjax.functional.batch_norm`.

    Args:
      x: ``(*batch, *spatial, C * |G|)``.
      scale, bias: ``(C,)`` or None; stats: ``{"mean": (C,), "var": (C,)}``.
      residual: deprecated (as ``relu`` in ``bn_args``): add and apply ReLU after the call.
      **bn_args: ``training``, ``momentum``, ``eps``, ``axis_name``.

    Returns:
      ``(y, new_stats)``, ``y`` shaped like ``x``.
    """
    relu = bn_args.pop("relu", False)
    if residual is not None or relu:
        warnings.warn("group_batch_norm: residual= and relu= are deprecated; write jax.nn.relu(y + residual) "
                      "after the call", DeprecationWarning, stacklevel=3)  # past utils.array_args
    if residual is not None and jnp.shape(residual) != x.shape:
        raise ValueError(f"group_batch_norm: residual must have x's shape {tuple(x.shape)}, "
                         f"got residual.shape={jnp.shape(residual)}")
    fields = lambda a: jnp.swapaxes(_fields(a, group, "group_batch_norm"), -1, -2)  # noqa: E731
    y, new = batch_norm(fields(x), scale, bias, stats, **bn_args)
    y = jnp.swapaxes(y, -1, -2).reshape(x.shape)
    y = y if residual is None else y + residual
    return (jnp.maximum(y, 0) if relu else y), new
