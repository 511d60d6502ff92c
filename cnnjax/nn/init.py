"""Parameter initializers with ``jax.nn.initializers``' values that build a network in one go.

Building a network runs each initializer once per parameter, outside ``jit``. ``jax.nn.initializers``
then compile an XLA program for every new shape (a truncated-normal draw and a multiply per kernel
shape, a broadcast per bias shape), so a deep network compiled dozens of programs before its first
step. These give the same values bit for bit:

- a random draw comes from one compiled program per size in ``MIN_DRAW * 4**k``, shared by every
  parameter whose size rounds up to it, and is cut to size and scaled on the host. JAX's default threefry keys are
  counter-based ("partitionable"): element ``i`` of a draw depends only on the key and ``i``, so the
  first ``n`` values of a longer flat draw are the draw of ``n`` values;
- constants are numpy arrays put on the device.

Inside a trace (``jit``, ``nnx.eval_shape``, ``vmap``), for half-precision dtypes, with
``out_sharding`` or where JAX's threefry is not partitionable, they call ``jax.nn.initializers``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

#: The smallest draw: parameters up to this many elements share one program.
MIN_DRAW = 4096

#: The standard deviation of a standard normal truncated to (-2, 2), as ``jax.nn.initializers`` divides by it.
TRUNCATED_STD = 0.87962566103423978


def params_key(rngs: Any) -> jax.Array:
    """``rngs.params()``, the next key of the ``params`` stream, with the stream's counter advanced eagerly.

    Under ``nnx.eval_shape`` or ``jit`` the counter would otherwise become a tracer, and Flax's update of a
    traced counter asks the tracer for its sharding, an error message whose cost grows with everything traced
    so far: building a large model abstractly turned quadratic in its depth. The key itself stays traced
    whenever the stream's key is, so the draws are not computed any earlier.
    """
    with jax.ensure_compile_time_eval():
        return rngs.params()


def _tracing() -> bool:
    """Whether a transformation (jit, eval_shape, vmap) is tracing the caller: values made now are staged."""
    return isinstance(jnp.zeros((), jnp.int8), jax.core.Tracer)


def _host_ok(key: Any, dtype: Any, out_sharding: Any) -> bool:
    return (out_sharding is None and not isinstance(key, jax.core.Tracer) and not _tracing()
            and jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
            and bool(jax.config.jax_threefry_partitionable))


@functools.lru_cache(maxsize=None)
def _truncated_normal_draw(size: int, dtype: np.dtype):
    return jax.jit(lambda key: jax.random.truncated_normal(key, -2, 2, (size,), dtype))


def draw_size(n: int) -> int:
    """The size of the draw that ``n`` values are cut from: the least ``MIN_DRAW * 4**k >= n``."""
    size = MIN_DRAW
    while size < n:
        size *= 4  # few programs to compile; at most 4x the values drawn, which takes milliseconds
    return size


def _draw(key: jax.Array, n: int, dtype: np.dtype) -> np.ndarray:
    size = draw_size(n)
    return np.asarray(_truncated_normal_draw(size, dtype)(key))[:n]


def variance_scaling_truncated(scale: float, in_axis: int = -2, out_axis: int = -1):
    """``jax.nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal", in_axis, out_axis)``.

    ``(key, shape, dtype=float32) -> (*shape)``: a normal truncated at two standard deviations,
    scaled to standard deviation ``sqrt(scale / fan_in)``, where ``fan_in`` is ``shape[in_axis]``
    times the receptive field (every axis but ``in_axis`` and ``out_axis``).

    Example:
      >>> init = variance_scaling_truncated(2.0)
      >>> bool((init(jax.random.key(0), (3, 3, 16, 8)) == jax.nn.initializers.he_normal()(jax.random.key(0), (3, 3, 16, 8))).all())
      True
    """
    reference = jax.nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal", in_axis, out_axis)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = None, out_sharding: Any = None) -> jax.Array:
        dtype = jnp.dtype(dtype or jnp.float32)
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        if len(shape) < 2 or n == 0 or not _host_ok(key, dtype, out_sharding):
            return reference(key, shape, dtype, out_sharding=out_sharding)
        fan_in = n / shape[out_axis]  # in_axis size times the receptive field
        variance = np.asarray(scale / fan_in, dtype)
        std = np.sqrt(variance) / np.asarray(TRUNCATED_STD, dtype)
        return jax.device_put(_draw(key, n, dtype).reshape(shape) * std)

    return init


def he_normal():
    """He normal over the fan-in, truncated (``jax.nn.initializers.he_normal()``'s values); ``(key, shape, dtype)``."""
    return variance_scaling_truncated(2.0)


def lecun_normal():
    """LeCun normal over the fan-in, truncated (``jax.nn.initializers.lecun_normal()``'s values)."""
    return variance_scaling_truncated(1.0)


def constant(value: float):
    """``(key, shape, dtype=float32) -> full(shape, value)``, made on the host; the key is ignored."""

    def init(key: Any, shape: Sequence[int], dtype: Any = None, out_sharding: Any = None) -> jax.Array:
        dtype = jnp.dtype(dtype or jnp.float32)
        if out_sharding is not None or isinstance(key, jax.core.Tracer) or _tracing():
            return jax.nn.initializers.constant(value, dtype)(key, shape, dtype, out_sharding=out_sharding)
        return jax.device_put(np.full(tuple(shape), value, dtype))

    return init


zeros = constant(0.0)
ones = constant(1.0)
