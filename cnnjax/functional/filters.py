"""Classic hand-crafted 2-D filters, returned in the conv layout ``(kh, kw, 1, C_out)``.

Each kernel is for one input channel; apply it to every channel of an image with
``conv(x, jnp.tile(k, (1, 1, 1, C)), groups=C)``, to a grey image directly, or use it to
initialise a layer. Coordinates: ``x`` runs right along the width, ``y`` down along the
height, both centred on the kernel's middle.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from cnnjax.functional import utils


def _as_kernel(k2d: np.ndarray, dtype: Any) -> jnp.ndarray:
    """``(kh, kw)`` or ``(C_out, kh, kw)`` -> ``(kh, kw, 1, C_out)``."""
    k = np.asarray(k2d, np.float64)
    if k.ndim == 2:
        k = k[None]
    return jnp.asarray(np.moveaxis(k, 0, -1)[:, :, None, :], dtype)


def _grid(k: Any, fn: str) -> tuple[np.ndarray, np.ndarray]:
    kh, kw = utils.as_tuple(k, 2, "k", fn, minimum=1)
    y = np.arange(kh) - (kh - 1) / 2
    x = np.arange(kw) - (kw - 1) / 2
    return np.meshgrid(y, x, indexing="ij")


def _check_sigma(sigma: Any, fn: str) -> None:
    if np.any(np.asarray(sigma) <= 0):
        raise ValueError(f"{fn}: sigma must be > 0, got sigma={sigma!r}")


def _derivative_pair(smooth: list[float], dtype: Any) -> jnp.ndarray:
    gx = np.outer(smooth, [-1.0, 0.0, 1.0])
    return _as_kernel(np.stack([gx, gx.T]), dtype)


def sobel(dtype: Any = jnp.float32) -> jnp.ndarray:
    """Sobel edge detector: ``(3, 3, 1, 2)``, channel 0 is d/dx, channel 1 is d/dy.

    ``Gx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and ``Gy = Gx.T``. Under cross-correlation
    ``Gx`` responds positively where brightness increases to the right (a vertical edge).

    Example:
      >>> sobel()[:, :, 0, 0]
      Array([[-1.,  0.,  1.],
             [-2.,  0.,  2.],
             [-1.,  0.,  1.]], dtype=float32)
    """
    return _derivative_pair([1.0, 2.0, 1.0], dtype)


def prewitt(dtype: Any = jnp.float32) -> jnp.ndarray:
    """Prewitt edge detector: ``(3, 3, 1, 2)``, channels d/dx and d/dy.

    ``Gx = [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]`` and ``Gy = Gx.T``.

    Example:
      >>> prewitt().shape
      (3, 3, 1, 2)
    """
    return _derivative_pair([1.0, 1.0, 1.0], dtype)


def box(k: int | tuple[int, int], dtype: Any = jnp.float32) -> jnp.ndarray:
    """Box (mean) blur: ``(kh, kw, 1, 1)`` of ``1 / (kh * kw)``.

    Example:
      >>> float(box(3).sum())
      1.0
    """
    kh, kw = utils.as_tuple(k, 2, "k", "box", minimum=1)
    return _as_kernel(np.full((kh, kw), 1.0 / (kh * kw)), dtype)


def gaussian(k: int | tuple[int, int], sigma: float, dtype: Any = jnp.float32) -> jnp.ndarray:
    """Gaussian blur ``exp(-(x^2 + y^2) / (2 sigma^2))``, normalised to sum 1: ``(kh, kw, 1, 1)``.

    Example:
      >>> g = gaussian(5, 1.0)
      >>> g.shape, round(float(g.sum()), 6)
      ((5, 5, 1, 1), 1.0)
    """
    _check_sigma(sigma, "gaussian")
    y, x = _grid(k, "gaussian")
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return _as_kernel(g / g.sum(), dtype)


def laplacian_of_gaussian(k: int | tuple[int, int], sigma: float, dtype: Any = jnp.float32) -> jnp.ndarray:
    """Laplacian of Gaussian (Marr-Hildreth blob detector): ``(kh, kw, 1, 1)``.

    ``LoG(x, y) = -1 / (pi sigma^4) * (1 - r^2 / (2 sigma^2)) * exp(-r^2 / (2 sigma^2))``,
    shifted to sum to 0 so flat regions give 0. Bright blobs of radius about
    ``sigma * sqrt(2)`` give strong negative responses.

    Example:
      >>> abs(float(laplacian_of_gaussian(9, 1.4).sum())) < 1e-6
      True
    """
    _check_sigma(sigma, "laplacian_of_gaussian")
    y, x = _grid(k, "laplacian_of_gaussian")
    r2 = (x**2 + y**2) / (2 * sigma**2)
    log = -1.0 / (np.pi * sigma**4) * (1 - r2) * np.exp(-r2)
    return _as_kernel(log - log.mean(), dtype)


def gabor(
    k: int | tuple[int, int],
    sigma: Any,
    theta: Any,
    lambd: Any,
    gamma: Any = 1.0,
    psi: Any = 0.0,
    dtype: Any = jnp.float32,
) -> jnp.ndarray:
    """Gabor filter(s), OpenCV's parameterisation: ``(kh, kw, 1, C_out)``.

    ``g = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) * cos(2 pi x' / lambd + psi)`` with
    ``x' = x cos(theta) + y sin(theta)``, ``y' = -x sin(theta) + y cos(theta)``.
    Array-valued arguments broadcast together; each combination is one output channel,
    so ``theta=np.arange(8) * np.pi / 8`` gives an 8-orientation bank (``C_out = 8``).

    Args:
      k: kernel size, int or ``(kh, kw)``.
      sigma: envelope width (> 0). theta: orientation (radians). lambd: wavelength.
      gamma: spatial aspect ratio. psi: phase offset (0 = even/cosine, pi/2 = odd/sine).

    Example:
      >>> gabor(11, 3.0, np.arange(4) * np.pi / 4, 6.0).shape
      (11, 11, 1, 4)
    """
    _check_sigma(sigma, "gabor")
    if np.any(np.asarray(lambd) <= 0):
        raise ValueError(f"gabor: lambd (the wavelength) must be > 0, got lambd={lambd!r}")
    y, x = _grid(k, "gabor")
    params = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64)) for v in (sigma, theta, lambd, gamma, psi)))
    s, t, lam, g, p = (v.reshape(-1, 1, 1) for v in params)
    xr = x * np.cos(t) + y * np.sin(t)
    yr = -x * np.sin(t) + y * np.cos(t)
    bank = np.exp(-(xr**2 + g**2 * yr**2) / (2 * s**2)) * np.cos(2 * np.pi * xr / lam + p)
    return _as_kernel(bank, dtype)
