"""Normalization modules. BatchNorm keeps its running statistics as ``nnx.BatchStat``."""

from __future__ import annotations

import warnings

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.nn import init
from cnnjax.nn.misc import Identity


def _affine_params(shape, use_scale, use_bias, param_dtype):
    scale = nnx.Param(init.ones(None, shape, param_dtype)) if use_scale else None
    bias = nnx.Param(init.zeros(None, shape, param_dtype)) if use_bias else None
    return scale, bias


def _value(p):
    return None if p is None else p[...]


class BatchNorm(nnx.Module):
    """Batch normalization over every axis but the channels; see :func:`cnnjax.functional.batch_norm`.

    Training mode (``model.train()``, the default) normalises with the batch's statistics
    and updates the running ones; ``model.eval()`` sets ``use_running_average=True``.
    ``momentum`` is Flax's (``0.9`` is PyTorch's ``0.1``). ``axis_name`` averages the
    statistics across a ``vmap``/``shard_map`` axis (sync batch norm).

    Shapes: ``(*batch, *spatial, C) -> same``; ``scale``/``bias``/``mean``/``var`` are ``(C,)``.

    Example:
      >>> bn = BatchNorm(16, rngs=nnx.Rngs(0))
      >>> bn(jnp.ones((4, 8, 8, 16))).shape
      (4, 8, 8, 16)
    """

    def __init__(self, num_features: int, *, momentum: float = 0.9, eps: float = 1e-5, use_scale: bool = True,
                 use_bias: bool = True, use_running_average: bool = False, axis_name: Any = None,
                 dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs | None = None):
        self.scale, self.bias = _affine_params((num_features,), use_scale, use_bias, param_dtype)
        # init_batch_norm_stats' values, made on the host (see cnnjax.nn.init)
        self.mean = nnx.BatchStat(init.zeros(None, (num_features,), jnp.float32))
        self.var = nnx.BatchStat(init.ones(None, (num_features,), jnp.float32))
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.use_running_average, self.axis_name, self.dtype = use_running_average, axis_name, dtype

    @utils.array_args("x")
    def __call__(self, x: jax.Array, use_running_average: bool | None = None, *, residual: jax.Array | None = None,
                 relu: bool = False) -> jax.Array:
        """``bn(x)``. ``residual`` and ``relu`` are deprecated: write ``jax.nn.relu(bn(x) + residual)``."""
        eval_mode = self.use_running_average if use_running_average is None else use_running_average
        if self.dtype is not None:
            x = x.astype(self.dtype)
        y, stats = self._normalize(
            x, _value(self.scale), _value(self.bias), {"mean": self.mean[...], "var": self.var[...]},
            training=not eval_mode, momentum=self.momentum, eps=self.eps, axis_name=self.axis_name,
            residual=residual, relu=relu,
        )
        if not eval_mode:
            self.mean[...], self.var[...] = stats["mean"], stats["var"]
        return y

    def _normalize(self, x, scale, bias, stats, **kwargs):
        return F.batch_norm(x, scale, bias, stats, **kwargs)


class LayerNorm(nnx.Module):
    """Layer normalization over ``axis`` (default: channels); see :func:`cnnjax.functional.layer_norm`.

    Args:
      shape: the size(s) of the normalised axes, e.g. ``C`` or ``(H, W, C)`` with ``axis=(-3, -2, -1)``.

    Example:
      >>> LayerNorm(16, rngs=nnx.Rngs(0))(jnp.ones((4, 8, 16))).shape
      (4, 8, 16)
    """

    def __init__(self, shape: int | Sequence[int], *, axis: int | Sequence[int] = -1, eps: float = 1e-5,
                 use_scale: bool = True, use_bias: bool = True, param_dtype: Any = jnp.float32,
                 rngs: nnx.Rngs | None = None):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.scale, self.bias = _affine_params(shape, use_scale, use_bias, param_dtype)
        self.axis, self.eps = axis, eps

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.layer_norm(x, _value(self.scale), _value(self.bias), axis=self.axis, eps=self.eps)


class GroupNorm(nnx.Module):
    """Group normalization; see :func:`cnnjax.functional.group_norm`. ``(*batch, *spatial, C) -> same``.

    Example:
      >>> GroupNorm(8, 32, spatial_dims=2, rngs=nnx.Rngs(0))(jnp.ones((2, 4, 4, 32))).shape
      (2, 4, 4, 32)
    """

    def __init__(self, num_groups: int, num_features: int, *, spatial_dims: int, eps: float = 1e-5,
                 use_scale: bool = True, use_bias: bool = True, param_dtype: Any = jnp.float32,
                 rngs: nnx.Rngs | None = None):
        if num_features % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide num_features={num_features}")
        self.scale, self.bias = _affine_params((num_features,), use_scale, use_bias, param_dtype)
        self.num_groups, self.spatial_dims, self.eps = num_groups, spatial_dims, eps

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.group_norm(x, self.num_groups, _value(self.scale), _value(self.bias),
                            spatial_dims=self.spatial_dims, eps=self.eps)


class InstanceNorm(nnx.Module):
    """Instance normalization (affine by default, unlike PyTorch); see :func:`cnnjax.functional.instance_norm`.

    Example:
      >>> InstanceNorm(3, spatial_dims=2)(jnp.ones((2, 4, 4, 3))).shape
      (2, 4, 4, 3)
    """

    def __init__(self, num_features: int, *, spatial_dims: int, eps: float = 1e-5, affine: bool = True,
                 param_dtype: Any = jnp.float32, rngs: nnx.Rngs | None = None):
        self.scale, self.bias = _affine_params((num_features,), affine, affine, param_dtype)
        self.spatial_dims, self.eps = spatial_dims, eps

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.instance_norm(x, _value(self.scale), _value(self.bias), spatial_dims=self.spatial_dims, eps=self.eps)


class LocalResponseNorm(nnx.Module):
    """Local response normalization across channels (AlexNet); see :func:`cnnjax.functional.local_response_norm`.

    Example:
      >>> LocalResponseNorm(5, k=2.0)(jnp.ones((1, 4, 4, 8))).shape
      (1, 4, 4, 8)
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)


NORM_KINDS = ("batch", "group", "layer", "instance", "none")


def norm_relu(norm: nnx.Module, x: jax.Array, residual: jax.Array | None = None) -> jax.Array:
    """Deprecated: ``jax.nn.relu(norm(x) + residual)`` (``residual`` optional). Write that; on CPU cnnjax's steps
    fuse it into one oneDNN op themselves (:mod:`cnnjax.backends.cpu.fusion`)."""
    warnings.warn("norm_relu is deprecated: write jax.nn.relu(norm(x) + residual)", DeprecationWarning, stacklevel=2)
    y = norm(x)
    return jax.nn.relu(y if residual is None else y + residual)


def norm_layer(kind: str, num_features: int, *, spatial_dims: int, num_groups: int = 8) -> nnx.Module:
    """The normalization layer named ``kind`` for ``(*batch, *spatial, C)`` feature maps: for ablations.

    ``"batch"``: :class:`BatchNorm`. ``"group"``: :class:`GroupNorm` with ``min(num_groups, C)``
    groups. ``"layer"``: over ``(*spatial, C)`` per example, i.e. ``GroupNorm(1, C)``, the
    usual LayerNorm of CNNs (PyTorch writes it so too). ``"instance"``: :class:`InstanceNorm`
    (affine). ``"none"``: :class:`Identity`. All but ``"none"`` learn a per-channel scale and bias.

    Example:
      >>> type(norm_layer("layer", 16, spatial_dims=2)).__name__
      'GroupNorm'
    """
    if kind == "batch":
        return BatchNorm(num_features)
    if kind in ("group", "layer"):
        groups = 1 if kind == "layer" else min(num_groups, num_features)
        return GroupNorm(groups, num_features, spatial_dims=spatial_dims)
    if kind == "instance":
        return InstanceNorm(num_features, spatial_dims=spatial_dims)
    if kind == "none":
        return Identity()
    raise ValueError(f"norm_layer: kind must be one of {NORM_KINDS}, got kind={kind!r}")
