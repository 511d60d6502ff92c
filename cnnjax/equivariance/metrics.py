"""Measured equivariance and invariance: relative errors, border masks, consistency, Lie derivatives.

Every metric takes any function of one array, a Flax NNX module or a zoo model (called
on a copy of its state, so batch-norm statistics are not touched) and evaluates all the
transform's parameters in one vmapped call.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from cnnjax.equivariance.transforms import Transform, _fft_shift, _integer_shift, _linear_shift, spatial_axes
from cnnjax.functional import utils
from cnnjax.inspect import receptive_field


def as_function(f: Any, **call_kwargs: Any) -> Callable[[jax.Array], Any]:
    """A pure function of one array: modules run jitted on a merged copy of their state (mutations are dropped).

    Jitted, a network compiles once per input shape instead of once per layer and shape.
    """
    if isinstance(f, nnx.Module):
        graphdef, state = nnx.split(f)
        order = {}

        def pure(state, x):
            out = nnx.merge(graphdef, state, copy=True)(x, **call_kwargs)
            order["keys"] = _key_order(out)  # jit returns dicts sorted by key; a model's features are in layer order
            return out

        apply = jax.jit(pure)
        return lambda x: _in_order(apply(state, x), order["keys"])
    if not callable(f):
        raise TypeError(f"expected a function or an NNX module, got {type(f).__name__}")
    return (lambda x: f(x, **call_kwargs)) if call_kwargs else f


def _key_order(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _key_order(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return [_key_order(v) for v in tree]
    return None


def _in_order(tree: Any, order: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _in_order(tree[k], order[k]) for k in order}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_in_order(t, o) for t, o in zip(tree, order))
    return tree


def stride_between(in_shape: tuple[int, ...], out_shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    """Cumulative stride per spatial dim, ``round(in / out)``, of a map with the same spatial rank."""
    ins, outs = in_shape[-n - 1 : -1], out_shape[-n - 1 : -1]
    return tuple(max(1, round(i / o)) for i, o in zip(ins, outs))


def has_spatial(y: jax.Array, x: jax.Array, n: int) -> bool:
    """Whether ``y`` is a map over the same batch dims and spatial rank as ``x`` (else a vector per example)."""
    return y.ndim == x.ndim and y.shape[: x.ndim - n - 1] == x.shape[: x.ndim - n - 1]


def _outer_and(per_axis: list[np.ndarray]) -> np.ndarray:
    """``(*sizes)`` bool from one bool vector per axis: a unit is kept if it is kept along every axis."""
    out = per_axis[0]
    for keep in per_axis[1:]:
        out = np.logical_and.outer(out, keep)
    return out


@utils.array_args("x", "y")
def border_mask(f: Callable, x: jax.Array, y: jax.Array, transform: Transform) -> np.ndarray:
    """``(P, *out_spatial)`` bool: output units whose receptive field stays at least ``|shift|`` from every border.

    Those are the units that zero (or reflect) padding and the wrapped-around pixels of a
    shift cannot reach; for point transforms only the padding band counts.
    """
    n = transform.spatial_dims
    rows = receptive_field(f, x.shape, spatial_axes=spatial_axes(x, n))
    if rows[0].size is None:
        raise ValueError("mask='border': the output sees the whole input (no spatial receptive field); use mask=None")
    size, jump, start = rows[0].size, rows[0].jump, rows[0].start
    in_sizes, out_sizes = x.shape[-n - 1 : -1], y.shape[-n - 1 : -1]
    reach = np.abs(transform.params) if transform.kind == "shift" else np.zeros((len(transform.params), n))
    masks = []
    for r in reach:
        axes = []
        for d in range(n):
            lo = np.arange(out_sizes[d]) * jump[d] + start[d]
            axes.append((lo >= r[d]) & (lo + size[d] <= in_sizes[d] - r[d]))
        masks.append(_outer_and(axes))
    return np.stack(masks)


def disc_mask(spatial: tuple[int, ...]) -> np.ndarray:
    """``(H, W)`` bool: the pixels at most ``min(H, W) / 2 - 1`` from the centre.

    A rotation about the centre keeps that disc inside the image, with the neighbours that
    bilinear interpolation reads, so its pixels never come from outside: the mask that drops
    the corners a rotation brings in.

    Example:
      >>> disc_mask((5, 5)).astype(int)
      array([[0, 0, 0, 0, 0],
             [0, 1, 1, 1, 0],
             [0, 1, 1, 1, 0],
             [0, 1, 1, 1, 0],
             [0, 0, 0, 0, 0]])
    """
    if len(spatial) != 2:
        raise ValueError(f"disc_mask: needs 2 spatial dims, got {tuple(spatial)}")
    h, w = spatial
    i, j = np.mgrid[:h, :w]
    return np.hypot(i - (h - 1) / 2, j - (w - 1) / 2) <= min(h, w) / 2 - 1


def _resolve_mask(mask: Any, f, x, y, transform, n) -> jax.Array | None:
    if mask is None:
        return None
    out_spatial = y.shape[-n - 1 : -1]
    if isinstance(mask, str):
        if mask not in ("border", "disc"):
            raise ValueError(f"mask must be None, 'border', 'disc', an int band or a boolean array, got {mask!r}")
        if mask == "disc":
            m = np.broadcast_to(disc_mask(out_spatial), (len(transform.params), *out_spatial))
        else:
            m = border_mask(f, x, y, transform)
    elif isinstance(mask, (int, np.integer)):
        keep = [(np.arange(s) >= mask) & (np.arange(s) < s - mask) for s in out_spatial]
        m = np.broadcast_to(_outer_and(keep), (len(transform.params), *out_spatial))
    else:
        m = np.broadcast_to(np.asarray(mask, bool), (len(transform.params), *out_spatial))
    if not m.any():
        raise ValueError(f"the mask leaves no output unit to compare (output spatial shape {tuple(out_spatial)})")
    return jnp.asarray(m)[..., None]


@dataclasses.dataclass
class Comparison:
    """``f(t x)`` and the expected ``t' f(x)`` for every parameter: ``(P, *y.shape)`` each, and the mask."""

    actual: jax.Array
    expected: jax.Array
    mask: jax.Array | None  # (P, *out_spatial, 1), broadcast over batch dims and channels
    exact: np.ndarray  # (P,) whether the output transform is whole-pixel
    stride: tuple[int, ...] | None

    def errors(self) -> jax.Array:
        """``(P,)`` relative errors ``||a - b|| / ||b||`` over the masked units."""
        return relative_error(self.actual, self.expected, self.mask)


def apply_mask(a: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Zero the units ``mask`` ``(P, *spatial, 1)`` drops from ``a`` ``(P, *batch, *spatial, C)``."""
    if mask is None:
        return a
    return a * mask.reshape(mask.shape[:1] + (1,) * (a.ndim - mask.ndim) + mask.shape[1:])


@utils.array_args("actual", "expected")
def relative_error(actual: jax.Array, expected: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``(P,)``: ``||a_p - b_p|| / ||b_p||`` over all but the leading axis; ``mask`` ``(P, *spatial, 1)`` selects units."""
    diff, ref = apply_mask(actual - expected, mask), apply_mask(expected, mask)
    axes = tuple(range(1, diff.ndim))
    num = jnp.sqrt(jnp.sum(jnp.square(diff.astype(jnp.float32)), axis=axes))
    den = jnp.sqrt(jnp.sum(jnp.square(ref.astype(jnp.float32)), axis=axes))
    return num / jnp.maximum(den, jnp.finfo(jnp.float32).tiny)


def expected_outputs(x: jax.Array, y: jax.Array, transform: Transform, *, out_transform: Transform | None = None,
                     invariant: bool = False) -> tuple[jax.Array, np.ndarray, tuple[int, ...] | None]:
    """What ``f(t x)`` should be, given ``y = f(x)``: ``(expected (P, *y.shape), exact (P,), stride or None)``.

    Invariance: ``y`` itself. Equivariance: ``out_transform`` applied to ``y``, by default
    ``transform`` rescaled by the cumulative stride inferred from the shapes.
    """
    count = len(transform.params)
    if invariant:
        return jnp.broadcast_to(y, (count,) + y.shape), np.ones(count, bool), None
    if out_transform is not None:
        if len(out_transform.params) != count:
            raise ValueError(f"out_transform has {len(out_transform.params)} parameters, transform {count}")
        return out_transform.apply_all(y), np.ones(count, bool), None
    n = transform.spatial_dims
    if not has_spatial(y, x, n):
        raise ValueError(
            f"equivariance needs an output with the input's {n} spatial dim(s) (f(x).shape={tuple(y.shape)}, "
            f"x.shape={tuple(x.shape)}); for a classifier measure invariance, or pass out_transform"
        )
    stride = stride_between(x.shape, y.shape, n)
    return transform.rescaled(stride).apply_all(y), transform.exact_under(stride), stride


@utils.array_args("x")
def compare(f: Any, x: jax.Array, transform: Transform, *, out_transform: Transform | None = None,
            invariant: bool = False, mask: Any = None) -> Comparison:
    """Evaluate ``f`` on ``x`` and on every ``transform(x, p)``; build the expected outputs."""
    fn = as_function(f)
    y = fn(x)
    actual = jax.vmap(lambda p: fn(transform.fn(x, p)))(jnp.asarray(transform.params))
    expected, exact, stride = expected_outputs(x, y, transform, out_transform=out_transform, invariant=invariant)
    m = None if mask is None else _resolve_mask(mask, fn, x, y, transform, transform.spatial_dims)
    return Comparison(actual, expected, m, exact, stride)


@utils.array_args("x")
def equivariance_error(f: Any, x: jax.Array, transform: Transform, *, out_transform: Transform | None = None,
                       mask: Any = None) -> jax.Array:
    """Relative equivariance error ``||f(t x) - t' f(x)|| / ||t' f(x)||`` for every parameter of ``transform``.

    Args:
      f: a function ``(*batch, *spatial, C) -> (*batch, *out_spatial, C')``, an NNX module or a zoo model.
      x: the input batch.
      transform: e.g. ``shift([1, 2, 4], spatial_dims=1)`` or ``group_action("p4")``.
      out_transform: how the output should move. Default: the same transform, with shifts
        divided by the output's cumulative stride (inferred from the shapes; a shift that
        the stride does not divide becomes a sub-pixel shift: see ``exact`` in :func:`compare`).
      mask: None (every unit); ``"border"`` (drop output units whose receptive field, from
        :func:`cnnjax.inspect.receptive_field`, comes within ``|shift|`` of a border:
        what zero padding and wrap-around can reach); ``"disc"`` (keep the disc that a
        rotation about the centre keeps inside the image, :func:`disc_mask`); an int (drop
        that many units at each border); or a boolean array broadcastable to the output's spatial shape.

    Returns:
      ``(P,)`` float32 relative errors, one per parameter.

    Example:
      >>> import cnnjax.functional as F
      >>> from cnnjax.equivariance import shift
      >>> w = jnp.ones((3, 1, 2))
      >>> f = lambda x: F.conv(x, w, padding="SAME", padding_mode="circular")
      >>> x = jax.random.normal(jax.random.key(0), (4, 16, 1))
      >>> bool(equivariance_error(f, x, shift([1, 5], spatial_dims=1)).max() < 1e-6)
      True
    """
    return compare(f, x, transform, out_transform=out_transform, mask=mask).errors()


@utils.array_args("x")
def invariance_error(f: Any, x: jax.Array, transform: Transform) -> jax.Array:
    """Relative invariance error ``||f(t x) - f(x)|| / ||f(x)||`` for every parameter: ``(P,)``.

    Example:
      >>> from cnnjax.equivariance import shift
      >>> f = lambda x: x.sum(axis=(-2, -1))
      >>> invariance_error(f, jnp.arange(8.0).reshape(1, 8, 1), shift([1, 3], spatial_dims=1))
      Array([0., 0.], dtype=float32)
    """
    return compare(f, x, transform, invariant=True).errors()


@utils.array_args("x")
def consistency(f: Any, x: jax.Array, *, max_shift: int, key: jax.Array, spatial_dims: int,
                mode: str = "circular") -> jax.Array:
    """Shift consistency: the fraction of examples whose predicted class is the same under two random shifts.

    ``mode="circular"`` rolls each example by two shifts drawn uniformly from
    ``{0..max_shift}`` per dim (Chaman & Dokmanic 2021); ``mode="crop"`` takes two crops of
    size ``spatial - max_shift`` at random offsets (Zhang 2019), so ``f`` must accept the
    smaller input.

    Args:
      f: a classifier ``(B, *spatial, C) -> (B, num_classes)``.
      x: ``(B, *spatial, C)``.
      max_shift: the largest shift (or crop offset) per dim.
      key: a PRNG key.

    Returns:
      A float32 scalar in [0, 1].

    Example:
      >>> x = jax.random.normal(jax.random.key(0), (16, 20, 3))
      >>> float(consistency(lambda a: a.mean(-2), x, max_shift=4, key=jax.random.key(1), spatial_dims=1))
      1.0
    """
    if mode not in ("circular", "crop"):
        raise ValueError(f"consistency: mode must be 'circular' or 'crop', got mode={mode!r}")
    fn = as_function(f)
    n = spatial_dims
    if x.ndim != n + 2:
        raise ValueError(f"consistency: x must be (B, *spatial, C) with {n} spatial dim(s), got x.shape={tuple(x.shape)}")
    spatial = x.shape[1:-1]
    if not 0 <= max_shift < min(spatial):
        raise ValueError(f"consistency: max_shift must be in [0, {min(spatial) - 1}] for spatial shape {spatial}, got {max_shift}")
    offsets = jax.random.randint(key, (2, x.shape[0], n), 0, max_shift + 1)
    if mode == "circular":
        roll = partial(_integer_shift, n=n, circular=True)
        views = [jax.vmap(roll)(x, o) for o in offsets]
    else:
        size = tuple(s - max_shift for s in spatial) + (x.shape[-1],)
        crop = lambda xi, o: jax.lax.dynamic_slice(xi, tuple(o) + (0,), size)  # noqa: E731
        views = [jax.vmap(crop)(x, o) for o in offsets]
    a, b = (jnp.argmax(fn(v), axis=-1) for v in views)
    return jnp.mean((a == b).astype(jnp.float32))


GENERATORS = ("translation", "rotation", "scale")


def _spectral_gradient(a: jax.Array, axis: int) -> jax.Array:
    """``d a / d (index along axis)`` of the band-limited periodic interpolant (FFT)."""
    size = a.shape[axis]
    k = 2j * jnp.pi * jnp.fft.fftfreq(size)
    if size % 2 == 0:
        k = k.at[size // 2].set(0)  # the Nyquist term has no odd derivative
    spec = jnp.fft.fft(a.astype(jnp.result_type(a.dtype, jnp.float32)), axis=axis)
    shape = [1] * a.ndim
    shape[axis] = size
    return jnp.real(jnp.fft.ifft(spec * k.reshape(shape), axis=axis)).astype(a.dtype)


def _central_gradient(a: jax.Array, axis: int) -> jax.Array:
    """Central differences with zeros outside: ``(a[i + 1] - a[i - 1]) / 2``."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (1, 1)
    p = jnp.pad(a, pad)
    n = a.shape[axis]
    return (lax.slice_in_dim(p, 2, n + 2, axis=axis) - lax.slice_in_dim(p, 0, n, axis=axis)) / 2


def vector_field(a: jax.Array, generator: str, method: str) -> jax.Array:
    """The infinitesimal rotation or scaling of ``a`` ``(*batch, H, W, C)`` about its centre: ``d/dt T_t a`` at 0.

    Rotation (counter-clockwise, per radian): ``Y d/dX - X d/dY``; scaling (by ``e^t``):
    ``-(X d/dX + Y d/dY)``, with ``(X, Y)`` the pixel's offset from the centre (``Y`` up) and
    the derivatives spectral (``method="fft"``) or central differences (``"linear"``).
    """
    grad = _spectral_gradient if method == "fft" else _central_gradient
    h, w = a.shape[-3:-1]
    i = (jnp.arange(h) - (h - 1) / 2).reshape(h, 1, 1)
    j = (jnp.arange(w) - (w - 1) / 2).reshape(1, w, 1)
    d_i, d_j = grad(a, a.ndim - 3), grad(a, a.ndim - 2)  # along rows (down) and columns
    if generator == "rotation":  # X = j, Y = -i, d/dX = d_j, d/dY = -d_i
        return (-i * d_j + j * d_i).astype(a.dtype)
    return (-(j * d_j + i * d_i)).astype(a.dtype)


@utils.array_args("x")
def lie_derivative(f: Any, x: jax.Array, *, spatial_dims: int, axis: int = 0, method: str = "fft",
                   equivariant: bool = False, generator: str = "translation") -> jax.Array:
    """The Lie derivative of ``f`` along a continuous transformation (Gruver et al. 2023), per example.

    ``L f(x) = d/dt f(T_t x)`` at ``t = 0`` (invariance), or ``d/dt T_t^-1 f(T_t x)`` with
    ``equivariant=True``. The derivative is one ``jax.jvp``; it is zero for a perfectly
    invariant (equivariant) function, and its size measures how far a model is from it.

    ``generator`` picks ``T_t``:

    - "translation": a sub-pixel shift by ``t`` along one spatial ``axis`` (``method`` "fft":
      circular band-limited; "linear": interpolation, zero fill). With ``equivariant=True``
      the output map moves by ``t / S`` for its cumulative stride ``S``.
    - "rotation": by ``t`` radians counter-clockwise about the centre (2 spatial dims).
    - "scale": zooming by ``e^t`` about the centre (2 spatial dims).

    For rotation and scale the input's derivative is :func:`vector_field` (spectral
    derivatives for ``method="fft"``, central differences for "linear").

    Returns:
      ``(B,)``: the norm of the derivative for each example (``x`` is ``(B, *spatial, C)``).

    Example:
      >>> x = jax.random.normal(jax.random.key(0), (2, 16, 1))
      >>> lie_derivative(lambda a: a.mean(axis=(1, 2)), x, spatial_dims=1).round(4)
      Array([0., 0.], dtype=float32)
    """
    if method not in ("fft", "linear"):
        raise ValueError(f"lie_derivative: method must be 'fft' or 'linear', got method={method!r}")
    if generator not in GENERATORS:
        raise ValueError(f"lie_derivative: generator must be one of {GENERATORS}, got generator={generator!r}")
    if generator != "translation" and spatial_dims != 2:
        raise ValueError(f"lie_derivative: generator={generator!r} needs spatial_dims=2, got {spatial_dims}")
    if not 0 <= axis < spatial_dims:
        raise ValueError(f"lie_derivative: axis must be in [0, {spatial_dims}), got axis={axis}")
    fn = as_function(f)
    n = spatial_dims
    if generator == "translation":
        e = jnp.zeros(n).at[axis].set(1.0)

        def move(a, t):
            s = e * t
            return _fft_shift(a, s, n) if method == "fft" else _linear_shift(a, s, n, circular=False)

        y, dy = jax.jvp(lambda t: fn(move(x, t)), (jnp.float32(0.0),), (jnp.float32(1.0),))
    else:
        y, dy = jax.jvp(fn, (x,), (vector_field(x, generator, method),))
    if equivariant:
        if not has_spatial(y, x, n):
            raise ValueError(f"lie_derivative: equivariant=True needs a spatial output, got f(x).shape={tuple(y.shape)}")
        if generator == "translation":
            stride = stride_between(x.shape, y.shape, n)[axis]
            _, dmove = jax.jvp(lambda t: move(y, t / stride), (jnp.float32(0.0),), (jnp.float32(1.0),))
        else:
            dmove = vector_field(y, generator, method)
        dy = dy - dmove
    dy = dy.reshape(dy.shape[0], -1) if dy.ndim > 1 else dy[:, None]
    return jnp.linalg.norm(dy.astype(jnp.float32), axis=1)
