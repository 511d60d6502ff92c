"""Build-time validation of a layer's configuration by tracing its functional op once.

Equinox checks a layer's arguments when it is built; ops here validate theirs when called.
Tracing the op on an abstract probe (``jax.eval_shape``: no compute, no memory) at
construction gives the op's own checks at build time, with the layer's name in the message.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def check_config(layer: str, op: str, call: Callable[[jax.Array], jax.Array], spatial_dims: int,
                 size: int = 64) -> None:
    """Run ``call`` on an abstract ``(*[size] * spatial_dims, 1)`` probe; re-raise its errors as ``layer``'s."""
    probe = jax.ShapeDtypeStruct((size,) * spatial_dims + (1,), jnp.float32)
    try:
        jax.eval_shape(call, probe)
    except (TypeError, ValueError) as e:
        raise type(e)(str(e).replace(f"{op}:", f"{layer}:", 1)) from None
