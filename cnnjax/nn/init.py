"""Parameter initializers with ``jax.nn.initializers``' values that build a network in one go.

Building a network runs each initializer once per parameter, outside ``jit``. ``jax.nn.initializers``
then compile an XLA program for every new shape (a truncated-normal draw and a multiply per kernel
shape, a broadcast per bias shape), so a deep network compiled dozens of programs before its first
step. These give the same values bit for bit:

- a random draw is computed in chunks of ``CHUNK`` values by one compiled program that takes the
  chunk's offset and the scale, and is written into one host array. JAX's default threefry keys are
  counter-based ("partitionable"): element ``i`` of a draw is ``threefry(key, i)`` pushed through
  ``jax.random.truncated_normal``'s arithmetic, whatever the draw's size, so a chunk at offset ``o``
  holds elements ``o .. o + CHUNK - 1`` of every draw from that key. The program repeats those
  operations (the threefry hash written out as one fused pass, ``uniform``'s mantissa trick,
  ``erf_inv``, the clip), and tests check it against ``jax.random.truncated_normal`` bit for bit;
- constants are numpy arrays put on the device.

Inside a trace (``jit``, ``nnx.eval_shape``, ``vmap``) a draw is the same program over all its chunks
at once, so tracing a deep network traces it once rather than ``jax.random`` once per kernel shape.
For half-precision dtypes, with ``out_sharding``, for other PRNGs or where JAX's threefry is not
partitionable, they call ``jax.nn.initializers``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from typing import Any, Sequence

import flax
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

#: Values per chunk: one compiled program serves every parameter; a small kernel still costs a whole
#: chunk, about a millisecond.
CHUNK = 1 << 17

#: Chunks per thread below which a draw stays on the calling thread (a thread pool costs about a millisecond).
PARALLEL_CHUNKS = 8

#: The standard deviation of a standard normal truncated to (-2, 2), as ``jax.nn.initializers`` divides by it.
TRUNCATED_STD = 0.87962566103423978


def params_key(rngs: Any) -> jax.Array:
    """``rngs.params()``, the next key of the ``params`` stream (Flax's key), with the stream's counter advanced
    on the host.

    Under ``nnx.eval_shape`` or ``jit`` the counter would otherwise become a tracer, and Flax's update of a
    traced counter asks the tracer for its sharding, an error message whose cost grows with everything traced
    so far: building a large model abstractly turned quadratic in its depth. See :func:`_next_key`.
    """
    key = _next_key(rngs.params)
    if key is None:
        with jax.ensure_compile_time_eval():
            key = rngs.params()
    return key


def dropout_stream(rngs: Any) -> Any:
    """``rngs.dropout.fork()``, a layer's own stream of dropout keys, forked on the host for the reason
    :func:`params_key` gives: a network with a Dropout or StochasticDepth per block built quadratically slowly
    under ``nnx.eval_shape``."""
    stream = rngs.dropout
    key = _next_key(stream)
    with jax.ensure_compile_time_eval():
        return stream.fork() if key is None else type(stream)(key, tag=stream.tag)


def _next_key(stream: Any) -> jax.Array | None:
    """The key ``stream()`` gives, with the counter advanced on the host; None where Flax must do it.

    With a concrete counter (``models.create`` makes its stream so, even under ``nnx.eval_shape``) and a
    concrete threefry key the fold-in is computed on the host (:func:`fold_in`): compiling JAX's cost a
    fresh process about a tenth of a second before its first layer. Under a trace with a traced key and a
    concrete counter it is staged, as one traced op, so the draws are not computed any earlier.
    """
    count = getattr(stream, "count", None)
    count = count[...] if isinstance(count, flax.nnx.Variable) else None
    if not isinstance(count, jax.Array) or isinstance(count, jax.core.Tracer) or count.shape != ():
        return None
    key = stream.key[...]
    if not isinstance(key, jax.core.Tracer) and _is_threefry(key):
        key = fold_in(key, int(count))
    elif _tracing():
        key = jax.random.fold_in(key, count)
    else:
        return None
    with jax.ensure_compile_time_eval():  # a traced counter is what this avoids, and device_put would be staged
        stream.count[...] = jax.device_put(np.asarray(count) + np.uint32(1))
    return key


def threefry2x32(k1: Any, k2: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
    """The Threefry-2x32 hash (20 rounds; Salmon et al. 2011) of the count pairs ``(x1, x2)`` under the key
    ``(k1, k2)``: JAX's ``threefry2x32_p``, on uint32 numpy or jax arrays that broadcast together.

    Written out round by round, as JAX lowers it for GPUs: XLA:CPU lowers the primitive to a loop over the
    rounds, each a pass over the whole array, and computes the random draws of a parameter about three
    times slower than this one fused pass. Tests check it against ``jax.random`` bit for bit.
    """
    keys = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x1 = x1 + x2
            x2 = ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r))) ^ x1
        x1 = x1 + keys[(i + 1) % 3]
        x2 = x2 + keys[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def fold_in(key: jax.Array, data: int) -> jax.Array:
    """``jax.random.fold_in(key, data)`` for a concrete threefry ``key`` (typed or raw) and ``0 <= data < 2**32``,
    computed on the host: the same key, without compiling JAX's fold-in (a tenth of a second in a fresh process).

    Example:
      >>> k = jax.random.key(3)
      >>> bool((jax.random.key_data(fold_in(k, 7)) == jax.random.key_data(jax.random.fold_in(k, 7))).all())
      True
    """
    if isinstance(key, jax.core.Tracer) or not _is_threefry(key):
        raise TypeError(f"fold_in: key must be one concrete threefry key, got {getattr(key, 'dtype', type(key))}")
    if not 0 <= int(data) < 2**32:
        raise ValueError(f"fold_in: data must lie in [0, 2**32), got {data}")
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    with jax.ensure_compile_time_eval():  # concrete inside a trace too
        k1, k2 = np.asarray(jax.random.key_data(key) if typed else key, np.uint32)
        with np.errstate(over="ignore"):  # numpy scalars warn where uint32 arithmetic wraps, as threefry means it to
            out = np.array(threefry2x32(k1, k2, np.uint32(0), np.uint32(data)), np.uint32)
        return jax.random.wrap_key_data(out, impl="threefry2x32") if typed else jax.device_put(out)


def seed_key(seed: int) -> jax.Array:
    """``jax.random.key(seed)``, made on the host where JAX's default PRNG is threefry and ``0 <= seed < 2**31``
    (``(0, seed)``, as ``jax.random.key`` packs it), which spares a fresh process compiling the packing."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < 2**31 \
            and jax.config.jax_default_prng_impl == "threefry2x32":
        return jax.random.wrap_key_data(np.array([0, seed], np.uint32), impl="threefry2x32")
    return jax.random.key(seed)


def next_key(stream: Any, layer: str) -> Any:
    """The next key of a layer's ``stream``; under plain ``jax.jit``/``jax.eval_shape`` Flax refuses to advance
    a stream created outside the trace, and the error then says what to do instead."""
    try:
        return stream()
    except flax.errors.TraceContextError:
        raise flax.errors.TraceContextError(
            f"{layer}: in training mode it draws a fresh random key from its rngs on every call, and Flax cannot "
            f"update that stream inside plain jax.jit / jax.eval_shape / jax.grad of a closed-over model. Use nnx.jit / "
            f"nnx.eval_shape / nnx.grad with the model as an argument, call model.eval() first if you meant "
            f"inference, or pass key= explicitly") from None


# The global stream of layers built without rngs=: plain Python numbers, not an nnx.Rngs, so that building a
# layer inside nnx.eval_shape/jit never asks Flax to update state from outside the trace.
_STREAM = {"seed": 0, "count": 0}


def manual_seed(seed: int) -> None:
    """Restart the stream that layers built without ``rngs=`` draw from, as ``torch.manual_seed`` does.

    Only PyTorch's spellings (``nn.Conv2d(1, 6, 5)``, ``nn.BatchNorm2d``, ... in :mod:`cnnjax.nn.fixed_dims`)
    and ``nn.Linear`` take ``rngs`` as optional; the stream starts at seed 0. Passing
    ``rngs=nnx.Rngs(seed)`` is the JAX way, and touches no global state.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__} {seed!r}")
    _STREAM.update(seed=seed, count=0)


def layer_rngs(rngs: Any) -> Any:
    """``rngs``, or for a layer built without one an ``nnx.Rngs`` keyed by the global stream's next key:
    ``fold_in(key(seed), count)``, with ``seed`` from :func:`manual_seed` and ``count`` the layers so far."""
    if rngs is not None:
        return rngs
    from flax import nnx

    with jax.ensure_compile_time_eval():
        base = seed_key(_STREAM["seed"])
        key = fold_in(base, _STREAM["count"]) if _is_threefry(base) else jax.random.fold_in(base, _STREAM["count"])
        _STREAM["count"] += 1
        return nnx.Rngs(key)


def _tracing() -> bool:
    """Whether a transformation (jit, eval_shape, vmap) is tracing the caller: values made now are staged.

    Asked of the current trace, not by making a value and looking at it, which cost a dispatch per
    parameter when building eagerly. Should JAX rename its eager trace, every draw takes the traced
    path: slower, with the same values.
    """
    return type(jax.extend.core.find_top_trace(())).__name__ != "EvalTrace"


def _host_ok(key: Any, dtype: Any, out_sharding: Any) -> bool:
    return not isinstance(key, jax.core.Tracer) and not _tracing() and _chunks_ok(key, dtype, out_sharding)


def _chunks_ok(key: Any, dtype: Any, out_sharding: Any) -> bool:
    """Whether the chunk program gives ``jax.random.truncated_normal``'s values for ``key`` and ``dtype``."""
    return (out_sharding is None and jnp.dtype(dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
            and bool(jax.config.jax_threefry_partitionable) and _is_threefry(key))


def _is_threefry(key: Any) -> bool:
    """Whether ``key`` is one threefry key, typed or raw ``uint32[2]``."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.shape == () and str(jax.random.key_impl(key)) == "threefry2x32"
    return key.shape == (2,) and key.dtype == jnp.uint32 and jax.config.jax_default_prng_impl == "threefry2x32"


@functools.lru_cache(maxsize=None)
def _truncated_normal_chunk(dtype: np.dtype):
    """``(key, offsets uint32[m], std) -> (m, CHUNK)``: row ``i`` holds elements ``offsets[i] ..`` of
    ``jax.random.truncated_normal(key, -2, 2, (n,), dtype) * std`` for any ``n`` reaching them.
    """
    finfo = jnp.finfo(dtype)
    uint = {32: jnp.uint32, 64: jnp.uint64}[finfo.bits]
    sqrt2 = np.array(np.sqrt(2), dtype)
    lower, upper = np.array(-2, dtype), np.array(2, dtype)

    def chunk(key: jax.Array, offsets: jax.Array, std: jax.Array) -> jax.Array:
        key_data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        counts = offsets[:, None] + jax.lax.broadcasted_iota(jnp.uint32, (offsets.shape[0], CHUNK), 1)
        bits1, bits2 = threefry2x32(key_data[0], key_data[1], jnp.zeros_like(counts), counts)
        if finfo.bits == 32:
            bits = bits1 ^ bits2
        else:
            bits = jax.lax.shift_left(bits1.astype(uint), jnp.asarray(32, uint)) | bits2.astype(uint)
        a = jax.lax.erf(lower / sqrt2)
        b = jax.lax.erf(upper / sqrt2)
        float_bits = jax.lax.shift_right_logical(bits, jnp.asarray(finfo.bits - finfo.nmant, uint))
        float_bits = float_bits | jnp.asarray(np.array(1.0, dtype).view(uint), uint)
        floats = jax.lax.bitcast_convert_type(float_bits, dtype) - jnp.asarray(1.0, dtype)
        u = jax.lax.max(a, floats * (b - a) + a)
        out = sqrt2 * jax.lax.erf_inv(u)
        out = jnp.clip(out, jax.lax.nextafter(lower, np.array(np.inf, dtype)),
                       jax.lax.nextafter(upper, np.array(-np.inf, dtype)))
        return out * std

    return jax.jit(chunk)


def _draw(key: jax.Array, n: int, std: np.ndarray) -> np.ndarray:
    """The ``n`` values of ``jax.random.truncated_normal(key, -2, 2, (n,), std.dtype) * std``, on the host.

    A large draw (VGG's first dense layer holds 103 M values) runs its chunks on a thread per core: the calls
    release the GIL and the chunks are independent, so the values are the same. XLA:CPU already spreads one
    call over the cores, so the threads only fill the gaps between calls.
    """
    program, out = _truncated_normal_chunk(std.dtype), np.empty(n, std.dtype)

    def fill(offset: int) -> None:
        out[offset:offset + CHUNK] = np.asarray(program(key, np.full(1, offset, np.uint32), std))[0, :n - offset]
    offsets = range(0, n, CHUNK)
    workers = min(os.cpu_count() or 1, 8, len(offsets) // PARALLEL_CHUNKS)
    if workers < 2:
        for offset in offsets:
            fill(offset)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(fill, offsets))
    return out


def _traced_draw(key: jax.Array, n: int, std: np.ndarray) -> jax.Array:
    """``_draw`` inside a trace: one call of the chunk program over all the chunks' offsets. Every
    parameter with as many chunks reuses one trace, where ``jax.random`` traces anew for each shape,
    which made ``nnx.eval_shape`` of a deep network pay for every kernel shape it had."""
    offsets = jnp.arange(0, n, CHUNK, dtype=jnp.uint32)
    return _truncated_normal_chunk(std.dtype)(key, offsets, std).reshape(-1)[:n]


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
        if len(shape) < 2 or not 0 < n < 2**32 or not _chunks_ok(key, dtype, out_sharding):
            return reference(key, shape, dtype, out_sharding=out_sharding)
        fan_in = n / shape[out_axis]  # in_axis size times the receptive field
        variance = np.asarray(scale / fan_in, dtype)
        std = np.sqrt(variance) / np.asarray(TRUNCATED_STD, dtype)
        if isinstance(key, jax.core.Tracer) or _tracing():
            return _traced_draw(key, n, std).reshape(shape)
        return jax.device_put(_draw(key, n, std).reshape(shape), may_alias=True)  # the host copy is ours alone

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
