"""Channel shuffle (ShuffleNet, Zhang et al. 2018): interleave the channels of ``groups`` groups."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cnnjax.functional import utils


@utils.array_args("x")
def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
    """Reorder the channels so that each group of a following grouped conv sees every previous group.

    ``(*batch, *spatial, C) -> same``: channel ``g * (C // groups) + i`` moves to ``i * groups + g``, as
    ``torch.nn.functional.channel_shuffle`` (and ShuffleNet V2's) does on ``(N, C, H, W)``.

    Args:
      x: ``(*batch, *spatial, C)`` with ``C`` divisible by ``groups``.
      groups: the number of groups, a positive int.

    Example:
      >>> channel_shuffle(jnp.arange(6.0).reshape(1, 6), 2).tolist()
      [[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]]
    """
    fn = "channel_shuffle"
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{fn}: x must be an array (*batch, *spatial, C), got {type(x).__name__}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got groups={groups!r}")
    c = x.shape[-1] if x.ndim else 0
    if x.ndim == 0 or c % groups:
        raise ValueError(f"{fn}: the channel axis (last, size {c}) must be divisible by groups={groups}; "
                         f"x.shape={tuple(jnp.shape(x))}")
    return x.reshape(x.shape[:-1] + (groups, c // groups)).swapaxes(-1, -2).reshape(x.shape)
