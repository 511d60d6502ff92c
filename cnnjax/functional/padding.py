"""Spatial padding of channels-last arrays with the four padding modes."""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp

from cnnjax.functional import utils


def pad_spatial(x: jnp.ndarray, pads: Sequence[tuple[int, int]], mode: str = "zeros", value: Any = 0) -> jnp.ndarray:
    """Pad the ``len(pads)`` spatial dims just before the channel axis; batch dims and C untouched."""
    n = len(pads)
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    width = [(0, 0)] * (x.ndim - n - 1) + list(pads) + [(0, 0)]
    if mode == "zeros":
        return jnp.pad(x, width, constant_values=value)
    return jnp.pad(x, width, mode=utils.JNP_PAD_MODE[mode])


@utils.array_args("x")
def pad(
    x: jnp.ndarray,
    padding: Any,
    mode: str = "zeros",
    *,
    spatial_dims: int | None = None,
    value: float = 0.0,
) -> jnp.ndarray:
    """Pad the spatial dims of a channels-last array.

    Args:
      x: ``(*batch, *spatial, C)``.
      padding: an int (all sides), one int per spatial dim, or one ``(lo, hi)`` pair per dim.
      mode: "zeros" (constant ``value``), "circular" (wrap around), "reflect" (mirror
        without repeating the edge, like ``torch``'s "reflect") or "replicate" (repeat the edge).
      spatial_dims: number of spatial dims; needed only when ``padding`` is a bare int.
      value: fill value for ``mode="zeros"``.

    Returns:
      ``(*batch, *(s + lo + hi for each spatial dim), C)``.

    Example:
      >>> pad(jnp.ones((2, 4, 4, 3)), 1, "circular", spatial_dims=2).shape
      (2, 6, 6, 3)
    """
    fn = "pad"
    n = utils.spatial_rank(fn, ("padding", padding), spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    utils.check_padding_mode(mode, fn)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be numeric here (an int, ints or (lo, hi) pairs), got {padding!r}")
    pads = utils.resolve_padding(padding, x.shape[-n - 1 : -1], (1,) * n, (1,) * n, (1,) * n, fn)
    return pad_spatial(x, pads, mode, value)
