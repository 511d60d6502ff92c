"""Upsample, PixelShuffle, Dropout and Flatten modules."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.nn import init, validation


class Upsample(nnx.Module):
    """Resize by ``scale`` / ``scale_factor`` or to ``size``; matches ``torch.nn.Upsample``.

    ``(*batch, *spatial, C) -> (*batch, *out, C)``, with any :func:`cnnjax.functional.resize`
    method ("nearest", "nearest-exact", "bilinear", "bicubic", "area") and its
    ``align_corners``, ``antialias`` and ``recompute_scale_factor``. ``mode`` is PyTorch's
    name for ``method``. An integer ``scale`` repeats pixels exactly; a float
    ``scale_factor`` gives ``floor(in * s)`` pixels as PyTorch does. A bare-number
    ``scale_factor`` without ``spatial_dims`` takes PyTorch's convention that ``x`` is
    ``(N, *spatial, C)``.

    Example:
      >>> Upsample((2, 2), method="bilinear")(jnp.ones((1, 4, 4, 3))).shape
      (1, 8, 8, 3)
      >>> Upsample(scale_factor=1.5, mode="bilinear", antialias=True)(jnp.ones((1, 4, 4, 3))).shape
      (1, 6, 6, 3)
    """

    def __init__(self, scale: int | Sequence[int] | None = None, *, size: Sequence[int] | None = None,
                 method: str = "nearest", align_corners: bool = False, spatial_dims: int | None = None,
                 scale_factor: float | Sequence[float] | None = None, mode: str | None = None,
                 recompute_scale_factor: bool | None = None, antialias: bool = False):
        fn = "Upsample"
        if sum(v is not None for v in (scale, size, scale_factor)) != 1:
            raise ValueError(f"{fn}: give exactly one of scale, size and scale_factor, got scale={scale!r}, "
                             f"size={size!r}, scale_factor={scale_factor!r}")
        if mode is not None:
            method = mode
        if scale is not None:
            n = utils.spatial_rank(fn, ("scale", scale), spatial_dims=spatial_dims)
            scale = utils.as_tuple(scale, n, "scale", fn, minimum=1)
        else:
            given = size if size is not None else scale_factor
            n = len(given) if isinstance(given, Sequence) and not isinstance(given, str) else spatial_dims
        factor = scale if scale is not None else scale_factor
        validation.check_config(fn, "resize", lambda p: F.resize(
            p, size, method, align_corners, scale_factor=factor, antialias=antialias, spatial_dims=n or 2,
            recompute_scale_factor=recompute_scale_factor), n or 2, size=4096)
        self.scale, self.size, self.scale_factor, self.method = scale, size, scale_factor, method
        self.align_corners, self.spatial_dims, self.antialias = align_corners, spatial_dims, antialias
        self.recompute_scale_factor = recompute_scale_factor

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.size is not None:
            return F.resize(x, self.size, self.method, self.align_corners, antialias=self.antialias)
        if self.scale is not None and self.method == "nearest":
            return F.upsample_nearest(x, self.scale)
        factor = self.scale if self.scale is not None else self.scale_factor
        n = self.spatial_dims
        if n is None and not isinstance(factor, Sequence):
            n = x.ndim - 2
        return F.resize(x, scale_factor=factor, method=self.method, align_corners=self.align_corners,
                        antialias=self.antialias, recompute_scale_factor=self.recompute_scale_factor, spatial_dims=n)


class PixelShuffle(nnx.Module):
    """Depth-to-space by ``factor`` with PyTorch's channel order; see :func:`cnnjax.functional.pixel_shuffle`.

    Example:
      >>> PixelShuffle((2, 2))(jnp.ones((1, 4, 4, 12))).shape
      (1, 8, 8, 3)
    """

    def __init__(self, factor: int | Sequence[int], *, spatial_dims: int | None = None):
        self.factor, self.spatial_dims = factor, spatial_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return F.pixel_shuffle(x, self.factor, spatial_dims=self.spatial_dims)


class Dropout(nnx.Module):
    """Inverted dropout; active in ``model.train()``, the identity after ``model.eval()``.

    ``broadcast_dims=(-3, -2)`` on ``(N, H, W, C)`` drops whole channels (PyTorch's ``Dropout2d``).
    Masks come from the ``dropout`` stream of ``rngs`` (its ``default`` stream when it has none).

    Example:
      >>> drop = Dropout(0.5, rngs=nnx.Rngs(0))
      >>> drop.eval(); bool((drop(jnp.ones(4)) == 1).all())
      True
    """

    def __init__(self, rate: float, *, broadcast_dims: Sequence[int] = (), deterministic: bool = False,
                 rngs: nnx.Rngs | None = None):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1], got rate={rate!r}")
        self.rate, self.broadcast_dims, self.deterministic = rate, tuple(broadcast_dims), deterministic
        self.rngs = init.dropout_stream(rngs) if rngs is not None else None

    @utils.array_args("x")
    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        if key is None:
            if self.rngs is None:
                raise ValueError("Dropout: in training mode it needs rngs=nnx.Rngs(...) at construction or key= at call")
            key = init.next_key(self.rngs, "Dropout")
        return F.dropout(x, self.rate, key, broadcast_dims=self.broadcast_dims)


class Flatten(nnx.Module):
    """Flatten the last ``num_dims`` axes (spatial dims and channels). ``(*batch, *spatial, C) -> (*batch, prod)``.

    ``Flatten()`` keeps the first axis and flattens the rest, as PyTorch's ``nn.Flatten()`` does; the
    order is channels-last ``(H, W, C)``, not PyTorch's ``(C, H, W)``.

    Example:
      >>> Flatten(3)(jnp.ones((8, 4, 4, 16))).shape
      (8, 256)
      >>> Flatten()(jnp.ones((8, 4, 4, 16))).shape
      (8, 256)
    """

    def __init__(self, num_dims: int | None = None):
        if num_dims is not None and (not isinstance(num_dims, int) or isinstance(num_dims, bool) or num_dims < 1):
            raise ValueError(f"Flatten: num_dims must be a positive int or None (all axes but the first), "
                             f"got num_dims={num_dims!r}")
        self.num_dims = num_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.num_dims is None:
            return x.reshape(x.shape[:1] + (-1,))
        if x.ndim < self.num_dims:
            raise ValueError(f"Flatten: x has {x.ndim} dims, fewer than num_dims={self.num_dims}: x.shape={x.shape}")
        return x.reshape(x.shape[: x.ndim - self.num_dims] + (-1,))


class Identity(nnx.Module):
    """Returns its input: the "no layer" choice in ablations (``norm="none"``). ``x -> x``.

    Example:
      >>> Identity()(jnp.ones(3)).shape
      (3,)
    """

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return x


class StochasticDepth(nnx.Module):
    """Stochastic depth on a residual branch (torchvision's ``StochasticDepth``); active in ``model.train()``.

    ``(N, ...) -> same``: see :func:`cnnjax.functional.drop_path` for ``rate`` and ``mode`` ("row" or "batch").
    Keys come from the ``dropout`` stream of ``rngs`` (its ``default`` stream when it has none).

    Example:
      >>> sd = StochasticDepth(0.2, "row", rngs=nnx.Rngs(0))
      >>> sd.eval(); bool((sd(jnp.ones((4, 3))) == 1).all())
      True
    """

    def __init__(self, rate: float, mode: str = "row", *, deterministic: bool = False, rngs: nnx.Rngs | None = None):
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"StochasticDepth: rate must be in [0, 1], got rate={rate!r}")
        if mode not in ("row", "batch"):
            raise ValueError(f"StochasticDepth: mode must be 'row' or 'batch', got mode={mode!r}")
        self.rate, self.mode, self.deterministic = rate, mode, deterministic
        self.rngs = init.dropout_stream(rngs) if rngs is not None and rate > 0 else None

    @utils.array_args("x")
    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        if key is None:
            if self.rngs is None:
                raise ValueError("StochasticDepth: in training mode it needs rngs=nnx.Rngs(...) at construction or "
                                 "key= at call")
            key = init.next_key(self.rngs, "StochasticDepth")
        return F.drop_path(x, self.rate, key, mode=self.mode)


class LayerScale(nnx.Module):
    """Per-channel learned scale of a residual branch (Touvron et al. 2021; ConvNeXt's ``layer_scale``).

    ``(*batch, *spatial, C) -> same``: ``x * scale`` with ``scale`` ``(C,)`` starting at ``init_value``.

    Example:
      >>> LayerScale(4, 0.5)(jnp.ones((2, 3, 3, 4)))[0, 0, 0].tolist()
      [0.5, 0.5, 0.5, 0.5]
    """

    def __init__(self, dim: int, init_value: float = 1e-6, *, param_dtype: Any = jnp.float32):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"LayerScale: dim must be a positive int, got dim={dim!r}")
        self.scale = nnx.Param(jnp.full((dim,), init_value, param_dtype))

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.scale[...]
