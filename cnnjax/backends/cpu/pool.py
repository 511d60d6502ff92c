"""The CPU backend's max pooling: non-overlapping windows as a maximum of strided views, overlapping ones on
oneDNN (:mod:`.onednn_max_pool`), and the rest as ``reduce_window`` with a stride-phase derivative rule.

All compute :func:`cnnjax.functional.max_pool`'s function with its derivative: the gradient goes to the
first maximum of each window in row-major order, ties (ReLU zeros) included, as ``reduce_window``'s
``select_and_scatter`` sends it. XLA:CPU's ``select_and_scatter`` is the slow part there, which is
what every form here avoids (``docs/performance.md``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnnjax.backends.cpu import onednn, onednn_max_pool
from cnnjax.functional import dispatch
from cnnjax.functional.pool import first_max_pool
from cnnjax.functional.unfold import shifted_views
from cnnjax.functional.utils import materialize


def tiles(*, window, strides, pads, dilation, **_) -> bool:
    """Non-overlapping, unpadded, undilated windows: the pooled map is a maximum of strided views."""
    return (tuple(strides) == tuple(window) and all(tuple(p) == (0, 0) for p in pads)
            and all(d == 1 for d in dilation))


def tiled_max_pool(x, window, strides, pads, dilation):
    """Max pooling of ``x`` ``(*batch, *spatial, C)`` over non-overlapping windows (:func:`tiles`); VALID drops the
    remainder."""
    n = len(window)
    out = [i // k for i, k in zip(x.shape[-n - 1:-1], window)]
    crop = (Ellipsis, *(slice(0, o * k) for o, k in zip(out, window)), slice(None))
    return _tiled_max(x[crop], n, tuple(window))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _tiled_max(x, n, k):
    """Max over non-overlapping windows ``k`` of ``x`` ``(*batch, *spatial, C)`` whose spatial sizes are
    multiples of ``k``: ``(*batch, *spatial/k, C)``.

    The maximum of the ``prod(k)`` strided views, one per window position, which XLA:CPU fuses into the
    ops that follow (``reduce_window`` is a separate loop). ``cnnjax.inspect.receptive_field`` follows
    strided slices and ``max`` as it does ``reduce_window``.
    """
    return functools.reduce(lax.max, _window_views(x, n, k))


#: how the tiled max's custom_jvp shows in a jaxpr's debug info (:mod:`.fusion` looks for it)
tiled_max_name = _tiled_max.__name__


def _window_views(x, n, k):
    """The ``prod(k)`` strided views ``(*batch, *spatial/k, C)`` of ``x``, one per window position, row-major."""
    return shifted_views(x, k, k, [(0, 0)] * n, (1,) * n)


@_tiled_max.defjvp
def _tiled_max_jvp(n, k, primals, tangents):
    # The derivative flows to the first maximum of each window in row-major order, as reduce_window's
    # select_and_scatter does, so ties (ReLU zeros) get the same gradients; a window whose maximum is NaN
    # passes none, as there. The rule is linear in the tangent, so JAX transposes it for reverse mode.
    # The maximum and each window's first-maximum position are materialized: XLA:CPU otherwise re-runs
    # them for every input element of the backward pass.
    (x,), (dx,) = primals, tangents
    views = _window_views(x, n, k)
    y = materialize(functools.reduce(lax.max, views))
    index = jnp.int8 if len(views) < 127 else jnp.int32
    first = jnp.full(y.shape, len(views), index)  # len(views): no position (a NaN window)
    for i in range(len(views) - 1, -1, -1):
        first = jnp.where(views[i] == y, index(i), first)
    first = materialize(first)
    xr, axes = _split_windows(x, n, k)
    position = sum(lax.broadcasted_iota(index, tuple(kk if a == ax else 1 for a in range(xr.ndim)), ax) * index(step)
                   for ax, kk, step in zip(axes, k, np.cumprod((1,) + tuple(k[:0:-1]))[::-1]))
    mask = position == jnp.expand_dims(first, axes)
    return y, jnp.where(mask, _split_windows(dx, n, k)[0], 0).sum(axis=axes)


def _split_windows(x, n, k):
    """``x`` reshaped to ``(*batch, o1, k1, ..., on, kn, C)`` and the window axes."""
    nb = x.ndim - n - 1
    out = [i // kk for i, kk in zip(x.shape[nb:-1], k)]
    shape = (*x.shape[:nb], *(v for o, kk in zip(out, k) for v in (o, kk)), x.shape[-1])
    return x.reshape(shape), tuple(nb + 2 * i + 1 for i in range(n))


def onednn_pool(x, window, strides, pads, dilation):
    """oneDNN's max pooling of ``x`` ``(*batch, *spatial, C)``, the batch dims flattened into one."""
    n = len(window)
    batch = x.shape[: x.ndim - n - 1]
    flat = x.reshape(-1, *x.shape[x.ndim - n - 1:])
    y = onednn_max_pool.max_pool(flat, window, strides, pads, dilation)
    return y.reshape(*batch, *y.shape[1:])


def supports_onednn(*, window, spatial, dtype, **_) -> bool:
    return jnp.dtype(dtype) == jnp.float32 and 1 <= len(window) <= 3 and all(i > 0 for i in spatial)


def rule(usable, **geometry):
    if tiles(**geometry):
        return "tiled"
    return "onednn" if usable("onednn") and supports_onednn(**geometry) else "xla_cpu"


def register() -> None:
    """Register the CPU max-pool implementations and their rule."""
    dispatch.register("max_pool", "tiled", tiled_max_pool, platform=None, supports=tiles,
                      doc="a maximum of strided views; non-overlapping, unpadded, undilated windows")
    dispatch.register("max_pool", "onednn", onednn_pool, platform="cpu", supports=supports_onednn,
                      available=lambda: onednn.available(), native=True, doc="oneDNN's max pooling; float32, 1-3 spatial dims")
    dispatch.register("max_pool", "xla_cpu", first_max_pool, platform=None,
                      doc="reduce_window with a stride-phase derivative rule instead of select_and_scatter")
    dispatch.register_rule("max_pool", "cpu", rule)
