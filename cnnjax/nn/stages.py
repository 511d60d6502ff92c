"""Deprecated: ``ConvReLUMaxPool``. Write ``nnx.Sequential(conv, jax.nn.relu, pool)``; the CPU backend fuses that
stage itself inside cnnjax's jitted steps (:mod:`cnnjax.backends.cpu.fusion`)."""

from __future__ import annotations

import warnings

import jax
from flax import nnx

from cnnjax.nn.conv import Conv
from cnnjax.nn.pool import MaxPool


class ConvReLUMaxPool(nnx.Sequential):
    """Deprecated alias of ``nnx.Sequential(conv, jax.nn.relu, pool)`` (the same layers, paths and function).

    Shapes: ``(*batch, *spatial, C_in) -> (*batch, *pooled, C_out)``.
    """

    def __init__(self, conv: Conv, pool: MaxPool):
        warnings.warn("ConvReLUMaxPool is deprecated: write nnx.Sequential(conv, jax.nn.relu, pool); cnnjax's steps "
                      "fuse it on CPU", DeprecationWarning, stacklevel=2)
        if not isinstance(conv, Conv) or not isinstance(pool, MaxPool):
            raise TypeError(f"ConvReLUMaxPool: needs a cnnjax.nn.Conv and a cnnjax.nn.MaxPool, got "
                            f"{type(conv).__name__} and {type(pool).__name__}")
        super().__init__(conv, jax.nn.relu, pool)
