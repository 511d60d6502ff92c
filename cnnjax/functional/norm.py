"""Normalization with explicit state: batch, layer, group, instance and local response norm.

Statistics are computed in at least float32; outputs keep the input's dtype.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import jax.numpy as jnp
from jax import lax

from cnnjax.functional import dispatch, utils


def _stat_dtype(dtype: Any) -> Any:
    return jnp.promote_types(dtype, jnp.float32)


def _check_affine(param: Any, shape: tuple[int, ...], name: str, fn: str) -> None:
    if param is not None and tuple(jnp.shape(param)) != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {name}.shape={tuple(jnp.shape(param))}")


def _params(sd, shape, *params):
    """``scale`` and ``bias`` reshaped to broadcast against the input and cast to the statistics dtype (None stays)."""
    return tuple(None if p is None else jnp.reshape(p, shape).astype(sd) for p in params)


def _normalize(x, axes, eps, scale, bias, affine_shape):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` in float32+, then ``* scale + bias``."""
    sd = _stat_dtype(x.dtype)
    scale, bias = _params(sd, affine_shape, scale, bias)
    return _normalize_affine(x.astype(sd), scale, bias, eps, axes, None)[0].astype(x.dtype)


def init_batch_norm_stats(num_features: int, dtype: Any = jnp.float32) -> dict[str, jnp.ndarray]:
    """Fresh running statistics for :func:`batch_norm`: ``{"mean": zeros(C), "var": ones(C)}``."""
    return {"mean": jnp.zeros((num_features,), dtype), "var": jnp.ones((num_features,), dtype)}


@utils.array_args("x", "scale", "bias")
def batch_norm(
    x: jnp.ndarray,
    scale: jnp.ndarray | None,
    bias: jnp.ndarray | None,
    stats: dict[str, jnp.ndarray],
    *,
    training: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
    axis_name: Any = None,
    residual: jnp.ndarray | None = None,
    relu: bool = False,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Batch normalization, pure: returns the output and the new running statistics.

    ``y = (x - mu) / sqrt(var + eps) * scale + bias`` per channel. Training uses the batch's
    ``mu``/``var`` (biased) over every axis but the last, and updates
    ``running = momentum * running + (1 - momentum) * batch`` (Flax's convention: PyTorch's
    ``momentum=0.1`` is ``momentum=0.9`` here; PyTorch also stores the unbiased variance).
    Evaluation uses the running statistics and returns them unchanged.

    With ``axis_name``, the statistics are averaged over that named axis (``jax.vmap``/
    ``shard_map``/``pmap``), so a batch split across devices or vmapped examples normalises
    as one batch. Statistics are float32 (or wider) whatever ``x``'s dtype.

    Args:
      x: ``(*batch, *spatial, C)``.
      scale, bias: ``(C,)`` or None.
      stats: ``{"mean": (C,), "var": (C,)}``, e.g. from :func:`init_batch_norm_stats`.
      training: use batch statistics and update ``stats``.
      momentum: running-average decay.
      eps: added to the variance.
      axis_name: optional mapped axis to reduce across.
      residual, relu: deprecated; write ``jax.nn.relu(y + residual)`` after the call. (A backend fuses that
        pattern itself where it has a faster form.)

    Returns:
      ``(y, new_stats)``: ``y`` like ``x``; ``new_stats`` like ``stats``.

    Example:
      >>> x = jnp.arange(6.).reshape(3, 2)
      >>> y, s = batch_norm(x, None, None, init_batch_norm_stats(2), training=True)
      >>> print(jnp.round(y[:, 0], 5), s["mean"])
      [-1.22474  0.       1.22474] [0.2 0.3]
    """
    fn = "batch_norm"
    utils.check_float(x, fn)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have a channel axis, got x.shape={tuple(x.shape)}")
    c = x.shape[-1]
    if not isinstance(stats, dict) or set(stats) != {"mean", "var"}:
        raise TypeError(f"{fn}: stats must be a dict with keys 'mean' and 'var', got {stats!r:.80}")
    for name, p in (("scale", scale), ("bias", bias), ("stats['mean']", stats["mean"]), ("stats['var']", stats["var"])):
        _check_affine(p, (c,), name, fn)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{fn}: momentum must be in [0, 1], got {momentum}")
    if residual is not None or relu:
        warnings.warn(f"{fn}: residual= and relu= are deprecated; write jax.nn.relu(y + residual) after the call",
                      DeprecationWarning, stacklevel=3)  # past utils.array_args
    if residual is not None and jnp.shape(residual) != x.shape:
        raise ValueError(f"{fn}: residual must have x's shape {tuple(x.shape)}, got residual.shape={jnp.shape(residual)}")
    sd = _stat_dtype(x.dtype)
    scale, bias = _params(sd, (c,), scale, bias)
    residual = None if residual is None else jnp.asarray(residual).astype(sd)
    impl = dispatch.implementation("batch_norm", fn=fn, shape=tuple(x.shape), dtype=x.dtype) if (
        training and axis_name is None) else None
    if impl is not None:
        y, mean, var = impl(x, scale, bias, eps)
        return _add_relu(y, residual, relu).astype(x.dtype), _running(stats, momentum, mean, var, c)
    if training:
        y, mean, var = _normalize_affine(x.astype(sd), scale, bias, eps, tuple(range(x.ndim - 1)), axis_name)
        return _add_relu(y, residual, relu).astype(x.dtype), _running(stats, momentum, mean, var, c)
    mean, var = stats["mean"].astype(sd), stats["var"].astype(sd)
    y = _scale_shift(x.astype(sd) - mean, lax.rsqrt(var + eps), scale, bias)
    return _add_relu(y, residual, relu).astype(x.dtype), stats


def _add_relu(y, residual, relu):
    y = y if residual is None else y + residual
    return jnp.maximum(y, 0) if relu else y


def _running(stats, momentum, mean, var, c):
    """``momentum * running + (1 - momentum) * batch`` for the mean and the variance."""
    return {k: (momentum * stats[k] + (1 - momentum) * v.reshape(c)).astype(stats[k].dtype)
            for k, v in (("mean", mean), ("var", var))}


def _mean(v, axes, axis_name):
    m = jnp.mean(v, axis=axes, keepdims=True)
    return m if axis_name is None else lax.pmean(m, axis_name)


def _normalize_affine(x, scale, bias, eps, axes, axis_name):
    """``(y, mean, var)``: ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with statistics over
    ``axes`` (kept as size-1 dims, and averaged over ``axis_name`` when given). ``scale`` and ``bias``
    broadcast against ``x`` or are None; every array is in the statistics dtype."""
    mean = _mean(x, axes, axis_name)
    xc = x - mean
    var = _mean(jnp.square(xc), axes, axis_name)
    return _scale_shift(xc, lax.rsqrt(var + eps), scale, bias), mean, var


def _scale_shift(xc, r, scale, bias):
    """``xc * r * scale + bias``, where ``r`` (and ``scale``) may be smaller than ``xc`` and broadcast."""
    if scale is None:
        y = xc * r
    elif math.prod(jnp.broadcast_shapes(r.shape, jnp.shape(scale))) < xc.size:
        # Folding scale into the smaller factor first leaves one full-size product, and its gradient
        # one reduction of g*xc. With (xc*r)*scale, XLA:CPU materialised full-size intermediates
        # around its reductions, several times slower (docs/performance.md, "Scale before the product").
        y = xc * (r * scale)
    else:
        y = xc * r * scale
    return y if bias is None else y + bias


@utils.array_args("x", "scale", "bias")
def layer_norm(x, scale=None, bias=None, *, axis: int | Sequence[int] = -1, eps: float = 1e-5):
    """Layer normalization over ``axis`` (default: channels), per position and example.

    ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with statistics over ``axis``.
    ``axis=(-3, -2, -1)`` on images normalises over ``(H, W, C)``, like PyTorch's
    ``LayerNorm([C, H, W])`` (up to layout).

    Args:
      x: any shape, channels-last for images.
      scale, bias: the shape of ``x`` at ``axis``, or None.
      axis: int or tuple of ints.
      eps: added to the variance.

    Returns:
      Same shape and dtype as ``x``.

    Example:
      >>> layer_norm(jnp.array([[1., 3.]])).round(4).tolist()
      [[-1.0, 1.0]]
    """
    fn = "layer_norm"
    utils.check_float(x, fn)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    try:
        axes = tuple(sorted(a % x.ndim for a in axes)) if x.ndim else ()
    except TypeError:
        raise TypeError(f"{fn}: axis must be an int or a tuple of ints, got axis={axis!r}") from None
    if not axes or any(a < -x.ndim or a >= x.ndim for a in ((axis,) if isinstance(axis, int) else axis)):
        raise ValueError(f"{fn}: axis={axis!r} is out of range for x.shape={tuple(x.shape)}")
    pshape = tuple(x.shape[a] for a in axes)
    _check_affine(scale, pshape, "scale", fn)
    _check_affine(bias, pshape, "bias", fn)
    bshape = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
    return _normalize(x, axes, eps, scale, bias, bshape)


@utils.array_args("x", "scale", "bias")
def group_norm(x, num_groups: int, scale=None, bias=None, *, spatial_dims: int, eps: float = 1e-5):
    """Group normalization (Wu & He 2018): statistics per example over spatial dims and each group of channels.

    ``num_groups=1`` is layer norm over ``(*spatial, C)``; ``num_groups=C`` is instance norm.

    Args:
      x: ``(*batch, *spatial, C)``.
      num_groups: must divide ``C``.
      scale, bias: ``(C,)`` or None.
      spatial_dims: how many dims before C are spatial.
      eps: added to the variance.

    Returns:
      Same shape and dtype as ``x``.

    Example:
      >>> group_norm(jnp.ones((2, 8, 8, 32)), 8, spatial_dims=2).shape
      (2, 8, 8, 32)
    """
    fn = "group_norm"
    utils.check_float(x, fn)
    n = utils.spatial_rank(fn, spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    c = x.shape[-1]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise ValueError(f"{fn}: num_groups must be a positive divisor of C={c}, got num_groups={num_groups!r}")
    _check_affine(scale, (c,), "scale", fn)
    _check_affine(bias, (c,), "bias", fn)
    xg = x.reshape(x.shape[:-1] + (num_groups, c // num_groups))
    axes = tuple(range(xg.ndim - n - 2, xg.ndim - 2)) + (xg.ndim - 1,)
    return _normalize(xg, axes, eps, scale, bias, (num_groups, c // num_groups)).reshape(x.shape)


@utils.array_args("x", "scale", "bias")
def instance_norm(x, scale=None, bias=None, *, spatial_dims: int, eps: float = 1e-5):
    """Instance normalization: statistics per example and channel over the spatial dims.

    Args:
      x: ``(*batch, *spatial, C)``.
      scale, bias: ``(C,)`` or None.
      spatial_dims: how many dims before C are spatial.

    Returns:
      Same shape and dtype as ``x``.

    Example:
      >>> instance_norm(jnp.array([[1.], [3.]]), spatial_dims=1)[:, 0].round(4).tolist()
      [-1.0, 1.0]
    """
    fn = "instance_norm"
    utils.check_float(x, fn)
    n = utils.spatial_rank(fn, spatial_dims=spatial_dims)
    utils.check_input(x, n, fn)
    c = x.shape[-1]
    _check_affine(scale, (c,), "scale", fn)
    _check_affine(bias, (c,), "bias", fn)
    return _normalize(x, tuple(range(x.ndim - n - 1, x.ndim - 1)), eps, scale, bias, (c,))


@utils.array_args("x")
def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """Local response normalization across channels (AlexNet, Krizhevsky et al. 2012).

    ``y_c = x_c / (k + alpha / size * sum_{c' in window(c)} x_{c'}^2) ^ beta``, where the
    window holds ``size`` channels centred on ``c`` (``size // 2`` before, ``(size - 1) // 2``
    after), zero beyond the ends; PyTorch's definition. AlexNet used size 5, alpha 1e-4,
    beta 0.75, k 2.

    Args:
      x: ``(*batch, *spatial, C)``.

    Returns:
      Same shape and dtype as ``x``.

    Example:
      >>> local_response_norm(jnp.ones((4, 4, 8)), size=3).shape
      (4, 4, 8)
    """
    fn = "local_response_norm"
    utils.check_float(x, fn)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have a channel axis, got x.shape={tuple(x.shape)}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"{fn}: size must be a positive int, got size={size!r}")
    xf = x.astype(_stat_dtype(x.dtype))
    window = (1,) * (x.ndim - 1) + (size,)
    sums = lax.reduce_window(
        jnp.square(xf), 0.0, lax.add, window, (1,) * x.ndim, [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)]
    )
    return (xf / (k + alpha / size * sums) ** beta).astype(x.dtype)
