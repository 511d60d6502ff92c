"""Rotating small filters by any angle: a steerable basis of circular harmonics on Gaussian rings.

A filter on the ``k x k`` grid is expanded in basis functions
``b(rho, phi) = exp(-(rho - r)^2 / (2 sigma^2)) * (cos(m phi) | sin(m phi))``, one ring per
radius ``r = 0, 1, ..., (k - 1) / 2`` (``sigma = 0.6``), ring ``r`` carrying the angular
frequencies ``m = 0 .. min(2 r, k // 2 + 1)`` (only ``m = 0`` at the centre), or up to a
lower ``max_frequency`` (escnn's frequency cutoff). This is
the construction escnn's ``R2Conv`` uses for its kernel bases (Weiler & Cesa 2019):
rotating such a filter is rotating each harmonic analytically,
``cos(m (phi - t))``, and sampling it again, so a filter in the basis' span is rotated
exactly as a continuous function; no interpolation between pixels. A filter outside the span is first
projected onto it (least squares). Angular frequencies are capped because a ring of a few pixels
cannot carry more without aliasing. Even below that cap the square grid is not isotropic: on a
3x3 grid a frequency-2 filter's second moments turn by the wrong amount off quarter turns,
so a band-limited basis (``max_frequency=1``) trades expressiveness for smaller errors at
angles off the grid. It spans a subspace of the full basis that rotations map to itself, so
:func:`rotate_filters` rotates its filters exactly too.

Coordinates: rows are ``y`` (down), columns ``x``; angles count counter-clockwise as
displayed, the direction of ``jnp.rot90`` on the first two axes.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

RING_WIDTH = 0.6


def _polar(k: int) -> tuple[np.ndarray, np.ndarray]:
    c = (k - 1) / 2
    i, j = np.mgrid[:k, :k]
    x, y = j - c, c - i  # y up, so that positive angles turn counter-clockwise on screen
    return np.hypot(x, y), np.arctan2(y, x)


def _harmonics(k: int, max_frequency: int | None = None) -> list[tuple[float, int, str]]:
    out = []
    for r in range((k - 1) // 2 + 1):
        top = 0 if r == 0 else min(2 * r, k // 2 + 1)
        if max_frequency is not None:
            top = min(top, max_frequency)
        for m in range(top + 1):
            out += [(float(r), m, "cos")] + ([(float(r), m, "sin")] if m else [])
    return out


def _sample(k: int, angle: float, max_frequency: int | None = None) -> np.ndarray:
    """The basis rotated by ``angle`` radians, sampled: ``(k * k, M)``.

    A cos/sin pair shares one scale (the cos function's norm unrotated), so that rotating
    mixes the pair and nothing else; harmonics with ``m > 0`` vanish at the centre, where
    the angle is undefined.
    """
    rho, phi = _polar(k)
    cols, scale = [], {}
    for r, m, kind in _harmonics(k, max_frequency):
        ring = np.exp(-((rho - r) ** 2) / (2 * RING_WIDTH**2)) * ((rho > 0) | (m == 0))
        if (r, m) not in scale:
            scale[(r, m)] = np.linalg.norm(ring * np.cos(m * phi))
        wave = np.cos(m * (phi - angle)) if kind == "cos" else np.sin(m * (phi - angle))
        cols.append((ring * wave).ravel() / scale[(r, m)])
    return np.stack(cols, 1)


def filter_basis(kernel_size: int, max_frequency: int | None = None) -> np.ndarray:
    """The steerable basis on a ``k x k`` grid (each cos/sin pair scaled to a unit-norm cos): ``(k, k, M)`` float32.

    ``max_frequency``: the highest angular frequency on any ring (``None``: each ring's own cap).

    Example:
      >>> filter_basis(3).shape  # the centre, and frequencies 0, 1, 2 on the ring of radius 1
      (3, 3, 6)
      >>> filter_basis(3, max_frequency=1).shape  # band-limited: frequencies 0 and 1
      (3, 3, 4)
    """
    k = _check_size(kernel_size, "filter_basis")
    if max_frequency is not None and (isinstance(max_frequency, bool) or not isinstance(max_frequency, (int, np.integer))
                                      or max_frequency < 0):
        raise ValueError(f"filter_basis: max_frequency must be None or an int >= 0, got {max_frequency!r}")
    return _sample(k, 0.0, max_frequency).reshape(k, k, -1).astype(np.float32)


@functools.lru_cache(maxsize=None)
def rotation_matrix(kernel_size: int, angle: float) -> np.ndarray:
    """``R`` with ``vec(rotated w) = R @ vec(w)`` for filters in the basis' span (others are projected first): ``(k*k, k*k)``.

    ``angle`` is in degrees, counter-clockwise.
    """
    k = _check_size(kernel_size, "rotation_matrix")
    basis = _sample(k, 0.0)
    return (_sample(k, np.deg2rad(angle)) @ np.linalg.pinv(basis)).astype(np.float32)


def rotate_filters(w: jnp.ndarray, angle: float) -> jnp.ndarray:
    """Rotate ``w`` ``(k, k, ...)`` by ``angle`` degrees (a static number) in the steerable basis: ``(k, k, ...)``.

    Whole quarter turns of the projected filter are exact (``jnp.rot90``); only the rest of
    the angle goes through :func:`rotation_matrix`.
    """
    k = w.shape[0]
    quarter, rest = divmod(float(angle), 90.0)
    flat = w.reshape(k * k, -1)
    r = jnp.asarray(rotation_matrix(k, rest), w.dtype)
    rotated = jnp.einsum("pq,q...->p...", r, flat, precision="highest").reshape(w.shape)
    return jnp.rot90(rotated, int(quarter) % 4, axes=(0, 1))


def _check_size(k: int, fn: str) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise ValueError(f"{fn}: the kernel size must be an odd positive int (rotations turn about the centre pixel), got {k!r}")
    return int(k)
