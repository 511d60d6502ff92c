"""Convolution as a matrix: the dense (doubly block-Toeplitz) operator and its singular values."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from cnnjax import functional as F
from cnnjax.functional import utils


@utils.array_args("w")
def conv_as_matrix(w: jax.Array, input_shape: Sequence[int], **conv_args: Any) -> jax.Array:
    """The matrix ``M`` with ``M @ x.ravel() == conv(x, w, **conv_args).ravel()``.

    Convolution is linear in ``x``, so ``M`` is its exact Jacobian: a doubly block-Toeplitz
    matrix (block-circulant with ``padding_mode="circular"``) with mostly zeros. It shows
    that a conv layer is a fully connected layer with tied, local weights.

    Args:
      w: kernel ``(*k, C_in // groups, C_out)``.
      input_shape: one example's shape ``(*spatial, C_in)``.
      **conv_args: anything :func:`cnnjax.functional.conv` takes (no bias).

    Returns:
      ``(prod(out_spatial) * C_out, prod(spatial) * C_in)``, row-major over ``(*spatial, C)``.

    Example:
      >>> M = conv_as_matrix(jnp.array([1., 2.]).reshape(2, 1, 1), (3, 1))
      >>> M
      Array([[1., 2., 0.],
             [0., 1., 2.]], dtype=float32)
    """
    x0 = jnp.zeros(tuple(input_shape), w.dtype)
    jac = jax.jacfwd(lambda x: F.conv(x, w, **conv_args).ravel())(x0)
    return jac.reshape(jac.shape[0], -1)


@utils.array_args("w")
def singular_values(w: jax.Array, input_size: Sequence[int]) -> jax.Array:
    """Exact singular values of a stride-1 circular convolution, via the FFT (Sedghi et al. 2019).

    A circular conv is block-circulant, so the 2-D (n-D) DFT block-diagonalises it: its
    singular values are those of the ``C_in x C_out`` matrices ``FFT(w)[u]`` over all
    frequencies ``u``. This costs ``prod(n) * SVD(C_in x C_out)`` instead of the SVD of
    a ``prod(n) C_out x prod(n) C_in`` matrix.

    Args:
      w: kernel ``(*k, C_in, C_out)`` (``groups=1``), each ``k <= n``.
      input_size: the spatial size ``(*n,)`` the layer acts on.

    Returns:
      ``(prod(n) * min(C_in, C_out),)`` singular values, descending: the nonzero spectrum of
      ``conv_as_matrix(w, (*n, C_in), padding="SAME", padding_mode="circular")``.

    Example:
      >>> float(singular_values(jnp.ones((3, 3, 1, 1)) / 9, (8, 8))[0])  # a box blur keeps the mean
      1.0
    """
    n = w.ndim - 2
    size = tuple(input_size)
    if len(size) != n:
        raise ValueError(f"singular_values: input_size must have {n} entries (w has {n} spatial dims), got {size}")
    if any(k > s for k, s in zip(w.shape[:n], size)):
        raise ValueError(f"singular_values: kernel {w.shape[:n]} is larger than the input {size}")
    padded = jnp.pad(w, [(0, s - k) for k, s in zip(w.shape[:n], size)] + [(0, 0), (0, 0)])
    spectrum = jnp.fft.fftn(padded, axes=tuple(range(n)))
    sv = jnp.linalg.svd(spectrum, compute_uv=False)
    return jnp.sort(sv.ravel())[::-1]
