"""Dropout: inverted, with optional mask sharing (spatial/channel dropout)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from cnnjax.functional import utils


@utils.array_args("x")
def dropout(x, rate: float, key: Any, *, deterministic: bool = False, broadcast_dims: Sequence[int] = ()):
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by ``1 / (1 - rate)``.

    The expectation is unchanged, so evaluation (``deterministic=True``) is the identity.
    ``broadcast_dims`` shares one mask value along those axes: ``broadcast_dims=(-3, -2)``
    on ``(N, H, W, C)`` drops whole channels (spatial dropout, PyTorch's ``Dropout2d``).

    Args:
      x: any shape.
      rate: drop probability in ``[0, 1]``.
      key: a ``jax.random`` key (unused when ``deterministic``).
      deterministic: return ``x`` unchanged.
      broadcast_dims: axes along which the mask is shared; negative axes count from the end.

    Returns:
      Same shape and dtype as ``x``.

    Example:
      >>> y = dropout(jnp.ones((1000,)), 0.5, jax.random.key(0))
      >>> sorted(set(y.tolist()))
      [0.0, 2.0]
    """
    fn = "dropout"
    if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"{fn}: rate must be a number in [0, 1], got rate={rate!r}")
    try:
        dims = {d % x.ndim for d in broadcast_dims} if x.ndim else set()
    except TypeError:
        raise TypeError(f"{fn}: broadcast_dims must be a sequence of ints, got {broadcast_dims!r}") from None
    if any(not -x.ndim <= d < x.ndim for d in broadcast_dims):
        raise ValueError(f"{fn}: broadcast_dims={tuple(broadcast_dims)} out of range for x.shape={tuple(x.shape)}")
    if deterministic or rate == 0.0:
        return x
    if rate == 1.0:
        return jnp.zeros_like(x)
    mask_shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape))
    keep = jax.random.bernoulli(key, 1.0 - rate, mask_shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


@utils.array_args("x")
def drop_path(x, rate: float, key: Any, *, mode: str = "row", deterministic: bool = False):
    """Stochastic depth (Huang et al. 2016), as torchvision's ``stochastic_depth``: drop whole examples of
    a residual branch with probability ``rate`` and scale the kept ones by ``1 / (1 - rate)``.

    Args:
      x: ``(N, ...)``, a residual branch's output before it is added to the shortcut.
      rate: drop probability in ``[0, 1]``.
      key: a ``jax.random`` key (unused when ``deterministic``).
      mode: ``"row"`` drops each example on its own; ``"batch"`` drops the whole batch at once.
      deterministic: return ``x`` unchanged (evaluation).

    Returns:
      Same shape and dtype as ``x``.

    Example:
      >>> y = drop_path(jnp.ones((1000, 3)), 0.5, jax.random.key(0))
      >>> sorted(set(y[:, 0].tolist())), bool((y == y[:, :1]).all())
      ([0.0, 2.0], True)
    """
    fn = "drop_path"
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"{fn}: rate must be a number in [0, 1], got rate={rate!r}")
    if mode not in ("row", "batch"):
        raise ValueError(f"{fn}: mode must be 'row' or 'batch', got mode={mode!r}")
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have a batch axis, got a scalar")
    if deterministic or rate == 0.0:
        return x
    if rate == 1.0:
        return jnp.zeros_like(x)
    shape = (x.shape[0],) + (1,) * (x.ndim - 1) if mode == "row" else (1,) * x.ndim
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)
