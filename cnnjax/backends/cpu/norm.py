"""The CPU backend's batch norm: oneDNN's training-mode batch norm (:mod:`.onednn_batch_norm`).

Registered for :func:`cnnjax.functional.batch_norm` in training mode without ``axis_name``; evaluation
mode is one fused elementwise pass in XLA already.
"""

from __future__ import annotations

import jax.numpy as jnp

from cnnjax.backends.cpu import onednn, onednn_batch_norm
from cnnjax.functional import dispatch


def supports(*, shape, dtype, **_) -> bool:
    """float32 ``(N, ..., C)`` with at least one element."""
    return jnp.dtype(dtype) == jnp.float32 and len(shape) >= 2 and all(d > 0 for d in shape)


def onednn_batch_norm_fn(x, scale, bias, eps):
    """``(y, mean, var)`` of a training batch norm by oneDNN; ``scale``/``bias`` ``None`` mean 1 and 0."""
    c = x.shape[-1]
    scale = jnp.ones((c,), jnp.float32) if scale is None else scale
    bias = jnp.zeros((c,), jnp.float32) if bias is None else bias
    return onednn_batch_norm.batch_norm(x, scale, bias, eps)


def register() -> None:
    dispatch.register("batch_norm", "onednn", onednn_batch_norm_fn, platform="cpu", supports=supports,
                      available=lambda: onednn.available(), native=True, doc="oneDNN's training batch norm; float32, at least 2 dims")
    dispatch.register_rule("batch_norm", "cpu", lambda usable, **g: "onednn" if usable("onednn") and supports(**g)
                           else None)
