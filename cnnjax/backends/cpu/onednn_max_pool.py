"""oneDNN's max pooling inside XLA:CPU programs, for overlapping windows (ResNet's, AlexNet's and Inception's stems).

XLA:CPU's ``reduce_window`` and the gradient :mod:`cnnjax.functional.pool` builds from stride-phase
views run an overlapping pool (ResNet-50's 3x3 stride-2 stem pool) several times slower than PyTorch,
above all backward (docs/performance.md, "oneDNN max pool"). oneDNN's pooling, from the library
:mod:`cnnjax.backends.cpu.onednn` builds (``onednn_max_pool.cc``), records each window's maximum in a
workspace during the forward and adds the output gradient there in the backward.

Three JAX primitives carry it, as for :mod:`.onednn_batch_norm`: the forward ``x -> (y, workspace)``;
the tangent ``dy = dx`` at each window's first maximum, linear in ``dx`` and computed in ``jax.numpy``
(:func:`first_max_tangent`); and its transpose, oneDNN's backward ``dy -> dx``. So ``grad``, ``jvp``
and derivatives of any order work, and ``vmap`` folds the vmapped axis into the batch. Ties go to the
first maximum in row-major order (ReLU zeros included), as with ``reduce_window``'s gradient.
"""

from __future__ import annotations

import ctypes
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir, xla

from cnnjax.backends.cpu import onednn
from cnnjax.backends.cpu.onednn_batch_norm import PARALLEL_ELEMENTS
from cnnjax.functional.pool import first_max_tangent
from cnnjax.functional.utils import out_size


def _attrs(kernel, strides, dilation, pads, threads, **_):
    return {"kernel": np.asarray(kernel, np.int64), "strides": np.asarray(strides, np.int64),
            "dilation": np.asarray(dilation, np.int64), "pad_lo": np.asarray([p[0] for p in pads], np.int64),
            "pad_hi": np.asarray([p[1] for p in pads], np.int64), "threads": np.int64(threads)}


_GEOMETRY = ("kernel", "strides", "pads", "dilation")


def _geometry(params):
    """``(kernel, strides, pads, dilation)``, the order of :func:`first_max_tangent` and :func:`max_pool`."""
    return tuple(params[k] for k in _GEOMETRY)


def _geometry_kw(params):
    return {k: params[k] for k in _GEOMETRY}


def _primitive(name, multiple_results, abstract, target=None, ref=None, skip=0):
    """``skip``: leading operands oneDNN does not read (the backward's x and y, there for its transpose)."""
    p = Primitive(f"onednn_max_pool_{name}")
    p.multiple_results = multiple_results
    p.def_impl(functools.partial(xla.apply_primitive, p))
    p.def_abstract_eval(abstract)
    if target is None:
        mlir.register_lowering(p, mlir.lower_fun(ref, multiple_results))
    else:
        lowering = jax.ffi.ffi_lowering(target)
        mlir.register_lowering(p, lambda ctx, *a, ws_bytes=None, y_shape=None, **params: lowering(
            ctx.replace(avals_in=ctx.avals_in[skip:]), *a[skip:], **_attrs(**params)), platform="cpu")
    return p


def _aval(shape, dtype):
    return jax.core.ShapedArray(tuple(shape), dtype)


def _tangent_ref(x, y, ws, dx, **params):
    return first_max_tangent(x, y, dx, *_geometry(params))


_forward_p = _primitive("forward", True, lambda x, *, y_shape, ws_bytes, **_: [
    _aval(y_shape, x.dtype), _aval((ws_bytes,), jnp.uint8)], "CnnjaxOnednnMaxPool")
_tangent_p = _primitive("tangent", False, lambda x, y, ws, dx, **_: _aval(y.shape, dx.dtype), ref=_tangent_ref)
_backward_p = _primitive("backward", False, lambda x, y, ws, dy, **_: _aval(x.shape, dy.dtype), "CnnjaxOnednnMaxPoolGrad",
                         skip=2)

def _forward_jvp(primals, tangents, **params):
    (x,), (dx,) = primals, tangents
    y, ws = _forward_p.bind(x, **params)
    dy = ad.Zero(y.aval) if type(dx) is ad.Zero else _tangent_p.bind(x, y, ws, dx, **_geometry_kw(params))
    return [y, ws], [dy, ad.Zero(ws.aval.to_tangent_aval())]


def _tangent_transpose(ct, x, y, ws, dx, **params):
    if type(ct) is ad.Zero:
        return [None, None, None, ad.Zero(dx.aval)]
    # the backward passes x and y on only for its own transpose (this tangent); oneDNN reads ws and ct
    return [None, None, None, _backward_p.bind(x, y, ws, ct, **params, threads=_threads(x.aval.size))]


def _backward_transpose(ct, x, y, ws, dy, **params):
    if type(ct) is ad.Zero:
        return [None, None, None, ad.Zero(dy.aval)]
    return [None, None, None, _tangent_p.bind(x, y, ws, ct, **_geometry_kw(params))]


ad.primitive_jvps[_forward_p] = _forward_jvp
ad.primitive_transposes[_tangent_p] = _tangent_transpose
ad.primitive_transposes[_backward_p] = _backward_transpose
# linear in their last argument; the window masks they read from x and y are piecewise constant
ad.defjvp(_tangent_p, None, None, None, lambda g, x, y, ws, dx, **p: _tangent_p.bind(x, y, ws, g, **p))
ad.defjvp(_backward_p, None, None, None, lambda g, x, y, ws, dy, **p: _backward_p.bind(x, y, ws, g, **p))


def _batched_tangent(args, dims, **params):
    # per vmapped member, in jax.numpy: the workspace's layout belongs to the member's own call
    x, y, ws, dx = args
    out = jax.vmap(lambda x, y, dx: first_max_tangent(x, y, dx, *_geometry(params)),
                   in_axes=(dims[0], dims[1], dims[3]))(x, y, dx)
    return out, 0


def _batched_forward(args, dims, **params):
    # the members join the batch axis: one oneDNN call. Its workspace is not passed on (a placeholder is):
    # under vmap the tangent and the gradient run in jax.numpy
    (x,), (d,) = args, dims
    x = jnp.moveaxis(x, d, 0)
    size, n = x.shape[:2]
    y, _ = max_pool_with_workspace(x.reshape(-1, *x.shape[2:]), *_geometry(params))
    return [y.reshape(size, n, *y.shape[1:]), jnp.zeros((size, 1), jnp.uint8)], [0, 0]


def _batched_backward(args, dims, **params):
    x, y, ws, dy = args
    out = jax.vmap(lambda x, y, dy: _backward_ref(x, y, dy, params), in_axes=(dims[0], dims[1], dims[3]))(x, y, dy)
    return out, 0


def _backward_ref(x, y, dy, params):
    tangent = lambda dx: first_max_tangent(x, y, dx, *_geometry(params))  # noqa: E731
    return jax.linear_transpose(tangent, jnp.zeros(x.shape, dy.dtype))(dy)[0]


batching.primitive_batchers[_forward_p] = _batched_forward
batching.primitive_batchers[_tangent_p] = _batched_tangent
batching.primitive_batchers[_backward_p] = _batched_backward


def _threads(elements: int) -> int:
    return 0 if elements >= PARALLEL_ELEMENTS else 1


def _out_shape(x_shape, k, s, pads, d):
    return (x_shape[0], *(out_size(i, lo, hi, kk, ss, dd) for i, (lo, hi), kk, ss, dd in
                          zip(x_shape[1:-1], pads, k, s, d)), x_shape[-1])


@functools.lru_cache(maxsize=4096)
def _workspace_bytes(x_shape, y_shape, k, s, pads, d) -> int:
    fn = onednn.library().CnnjaxOnednnMaxPoolWorkspace
    arr = ctypes.POINTER(ctypes.c_int64)
    fn.restype, fn.argtypes = ctypes.c_int64, [ctypes.c_int64] + [arr] * 7
    buffers = [np.ascontiguousarray(v, np.int64) for v in
               (x_shape, y_shape, k, s, d, [p[0] for p in pads], [p[1] for p in pads])]
    got = fn(len(x_shape), *(b.ctypes.data_as(arr) for b in buffers))  # asks oneDNN once per geometry
    if got < 0:
        raise onednn.OnednnUnavailable(f"oneDNN has no max pool for x {x_shape} with windows {k}, strides {s}")
    return max(int(got), 1)


def max_pool_with_workspace(x, k, s, pads, d):
    """oneDNN's max pool of ``(N, *spatial, C)`` float32 ``x``: ``(y, workspace)``; see :func:`max_pool`."""
    reason = onednn.unavailable_reason()
    if reason is not None:
        raise onednn.OnednnUnavailable(reason)
    geometry = {"kernel": tuple(map(int, k)), "strides": tuple(map(int, s)), "dilation": tuple(map(int, d)),
                "pads": tuple((int(lo), int(hi)) for lo, hi in pads)}
    y_shape = _out_shape(x.shape, geometry["kernel"], geometry["strides"], geometry["pads"], geometry["dilation"])
    ws = _workspace_bytes(tuple(x.shape), y_shape, geometry["kernel"], geometry["strides"], geometry["pads"],
                          geometry["dilation"])
    return _forward_p.bind(x, **geometry, y_shape=y_shape, ws_bytes=ws, threads=_threads(x.size))


def max_pool(x, k, s, pads, d):
    """Max over windows ``k`` at strides ``s``, dilation ``d`` and ``(lo, hi)`` ``pads`` (``-inf``) of ``(N, *spatial, C)``
    float32 ``x``: ``(N, *out, C)``. Raises :class:`~cnnjax.backends.cpu.onednn.OnednnUnavailable` where oneDNN cannot run."""
    return max_pool_with_workspace(x, k, s, pads, d)[0]
