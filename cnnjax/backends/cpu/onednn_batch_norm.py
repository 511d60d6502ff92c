"""oneDNN's batch normalization (training mode) inside XLA:CPU programs, with a ReLU or a residual add and ReLU fused in.

XLA:CPU computes a training batch norm as separate passes over the activations: reductions for
the mean and the variance, the normalisation, and about as many again backward; oneDNN's one call
was faster timed alone (docs/performance.md, "oneDNN batch norm"). :func:`batch_norm` runs oneDNN's,
through the library :mod:`cnnjax.backends.cpu.onednn` builds (``onednn_batch_norm.cc``), with
``max(bn(x), 0)`` (oneDNN's fused ReLU) or ``max(bn(x) + r, 0)`` (one more pass over the output)
in the same call. Inside a whole ResNet-20 training step, where XLA fuses its passes with the
ReLUs and adds around them, the two were within noise of each other.

Three JAX primitives carry it: the forward ``(x, scale, shift, r) -> (y, mean, var, workspace)``;
its tangent ``dy = mask * (J_x dx + xhat * dscale + dshift + dr)``, linear in ``(dx, dscale, dshift,
dr)``; and that tangent's transpose, oneDNN's backward ``dy -> (dx, dscale, dshift, dr)``. So
``grad``, ``jvp`` and ``linear_transpose`` work; derivatives of the tangent and of the backward
(second order and up), and ``vmap``, run the same formulas in ``jax.numpy`` on XLA's ops.
"""

from __future__ import annotations

import ctypes
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir, xla

from cnnjax.backends.cpu import onednn

#: A batch norm over fewer elements runs on one thread (see :data:`cnnjax.backends.cpu.onednn.PARALLEL_MACS`).
PARALLEL_ELEMENTS = 1 << 18
#: ``mode``: what follows the normalisation in the same call
MODES = {"plain": 0, "relu": 1, "add_relu": 2}


def _axes(x):
    return tuple(range(x.ndim - 1))


def _xhat(x, mean, var, eps):
    r = jax.lax.rsqrt(var + eps)
    return (x - mean) * r, r


def _activate(z, r, mode):
    if mode == MODES["add_relu"]:
        z = z + r
    return z if mode == MODES["plain"] else jnp.maximum(z, 0)


def _forward_ref(x, scale, shift, r, *, eps, mode):
    mean = jnp.mean(x, _axes(x))
    var = jnp.mean(jnp.square(x - mean), _axes(x))
    xhat, _ = _xhat(x, mean, var, eps)
    return [_activate(xhat * scale + shift, r, mode), mean, var, jnp.zeros((1,), jnp.uint8)]


def _tangent_ref(x, mean, var, scale, y, ws, dx, dscale, dshift, dr, *, eps, mode):
    xhat, rs = _xhat(x, mean, var, eps)
    axes = _axes(x)
    dz = scale * rs * (dx - jnp.mean(dx, axes) - xhat * jnp.mean(dx * xhat, axes)) + xhat * dscale + dshift
    if mode == MODES["add_relu"]:
        dz = dz + dr
    return dz if mode == MODES["plain"] else jnp.where(y > 0, dz, 0)


def _backward_ref(x, mean, var, scale, y, ws, dy, *, eps, mode):
    if mode != MODES["plain"]:
        dy = jnp.where(y > 0, dy, 0)
    xhat, rs = _xhat(x, mean, var, eps)
    axes = _axes(x)
    dshift, dscale = jnp.sum(dy, axes), jnp.sum(dy * xhat, axes)
    m = math.prod(x.shape[:-1])
    dx = scale * rs * (dy - dshift / m - xhat * (dscale / m))
    return [dx, dscale, dshift, dy if mode == MODES["add_relu"] else jnp.zeros((0,), dy.dtype)]


def _threads(x) -> int:
    return 0 if x.size >= PARALLEL_ELEMENTS else 1


def _attrs(eps, threads, mode):
    return {"eps": np.float32(eps), "threads": np.int64(threads), "mode": np.int64(mode)}


def _primitive(name, multiple_results, abstract, ref, target=None):
    p = Primitive(f"onednn_batch_norm_{name}")
    p.multiple_results = multiple_results
    p.def_impl(functools.partial(xla.apply_primitive, p))
    p.def_abstract_eval(abstract)
    if target is None:
        mlir.register_lowering(p, mlir.lower_fun(lambda *a, eps, mode: ref(*a, eps=eps, mode=mode), multiple_results))
    else:
        lowering = jax.ffi.ffi_lowering(target)
        mlir.register_lowering(p, lambda ctx, *a, ws_bytes=None, **params: lowering(ctx, *a, **_attrs(**params)),
                               platform="cpu")
    batching.primitive_batchers[p] = _batched_by(ref, multiple_results)
    return p


def _batched_by(ref, multiple_results):
    """A batching rule running ``ref`` (``jax.numpy``) under ``vmap``: a batch norm per vmapped member."""
    def rule(args, dims, *, eps, mode, **_):
        out = jax.vmap(lambda *a: ref(*a, eps=eps, mode=mode), in_axes=dims)(*args)
        return out, [0] * len(out) if multiple_results else 0
    return rule


def _aval(a):
    return jax.core.ShapedArray(a.shape, a.dtype)


def _forward_abstract(x, scale, shift, r, *, ws_bytes, **_):
    return [_aval(x), _aval(scale), _aval(scale), jax.core.ShapedArray((ws_bytes,), jnp.uint8)]


def _backward_abstract(x, mean, var, scale, y, ws, dy, *, mode, **_):
    dr = _aval(x) if mode == MODES["add_relu"] else jax.core.ShapedArray((0,), x.dtype)
    return [_aval(x), _aval(scale), _aval(scale), dr]


_forward_p = _primitive("forward", True, _forward_abstract, _forward_ref, "CnnjaxOnednnBatchNorm")
_tangent_p = _primitive("tangent", False, lambda x, *rest, **_: _aval(x), _tangent_ref)
_backward_p = _primitive("backward", True, _backward_abstract, _backward_ref, "CnnjaxOnednnBatchNormGrad")


def _forward_jvp(primals, tangents, *, eps, threads, mode, ws_bytes):
    x, scale, _, _ = primals
    y, mean, var, ws = _forward_p.bind(*primals, eps=eps, threads=threads, mode=mode, ws_bytes=ws_bytes)
    dx, dscale, dshift, dr = map(ad.instantiate_zeros, tangents)
    dy = _tangent_p.bind(x, mean, var, scale, y, ws, dx, dscale, dshift, dr, eps=eps, mode=mode)
    axes = _axes(x)
    dws = np.zeros(ws.shape, jax.dtypes.float0)
    return [y, mean, var, ws], [dy, jnp.mean(dx, axes), 2 * jnp.mean((x - mean) * dx, axes), dws]


def _tangent_transpose(ct, x, mean, var, scale, y, ws, *linear, eps, mode):
    if type(ct) is ad.Zero:
        grads = [ad.Zero(a.aval) for a in linear]
    else:
        grads = _backward_p.bind(x, mean, var, scale, y, ws, ct, eps=eps, threads=_threads(x), mode=mode)
        if mode != MODES["add_relu"]:  # r was an empty placeholder
            grads[3] = jnp.zeros(linear[3].aval.shape, ct.dtype)
    return [None] * 6 + [g if ad.is_undefined_primal(a) else None for g, a in zip(grads, linear)]


def _jvp_by(ref, n_nondiff=()):
    """A JVP rule differentiating ``ref``: the tangent's and the backward's own derivatives (second order)."""
    def rule(primals, tangents, *, eps, mode, **_):
        tangents = [np.zeros(p.shape, jax.dtypes.float0) if i in n_nondiff else ad.instantiate_zeros(t)
                    for i, (p, t) in enumerate(zip(primals, tangents))]
        return jax.jvp(lambda *a: ref(*a, eps=eps, mode=mode), tuple(primals), tuple(tangents))
    return rule


ad.primitive_jvps[_forward_p] = _forward_jvp
ad.primitive_transposes[_tangent_p] = _tangent_transpose
ad.primitive_jvps[_tangent_p] = _jvp_by(_tangent_ref, n_nondiff=(5,))
ad.primitive_jvps[_backward_p] = _jvp_by(_backward_ref, n_nondiff=(5,))


def supports(x) -> bool:
    """Whether oneDNN computes this batch norm: float32 ``(N, ..., C)`` with at least one element."""
    return x.dtype == jnp.float32 and x.ndim >= 2 and x.size > 0


def _workspace_bytes(x, eps, mode) -> int:
    return _workspace_bytes_for(x.shape[0], x.shape[-1], math.prod(x.shape[1:-1]), eps, mode)


@functools.lru_cache(maxsize=4096)
def _workspace_bytes_for(n, c, s, eps, mode) -> int:
    fn = onednn.library().CnnjaxOnednnBatchNormWorkspace
    fn.restype, fn.argtypes = ctypes.c_int64, [ctypes.c_int64] * 3 + [ctypes.c_float, ctypes.c_int64]
    got = fn(n, c, s, eps, mode)  # asks oneDNN for the primitive's description: once per shape
    if got < 0:
        raise onednn.OnednnUnavailable(f"oneDNN has no batch norm for (N, C, S)={(n, c, s)}")
    return max(int(got), 1)


def reference(x, scale, shift, eps, residual=None, relu=False):
    """What :func:`batch_norm` computes, in ``jax.numpy``: ``(y, mean, var)``."""
    mode = _mode(residual, relu)
    return tuple(_forward_ref(x, scale, shift, _residual(x, residual), eps=eps, mode=mode)[:3])


def _mode(residual, relu):
    if residual is not None and not relu:
        raise ValueError("onednn_batch_norm: a residual is fused only with relu=True")
    return MODES["add_relu" if residual is not None else "relu" if relu else "plain"]


def _residual(x, residual):
    return jnp.zeros((0,), x.dtype) if residual is None else residual


def batch_norm(x, scale, shift, eps, *, residual=None, relu=False):
    """Training-mode batch norm by oneDNN: ``(y, mean, var)`` of ``(N, *spatial, C)`` float32 ``x``.

    ``y = bn(x)``, ``max(bn(x), 0)`` with ``relu``, or ``max(bn(x) + residual, 0)`` with both, where
    ``bn(x) = (x - mean) / sqrt(var + eps) * scale + shift`` with the batch's mean and biased
    variance over every axis but the last, both ``(C,)``; ``scale`` and ``shift`` are ``(C,)``
    float32, ``residual`` is like ``x``. Raises :class:`~cnnjax.functional.onednn.OnednnUnavailable`
    where oneDNN cannot run.
    """
    reason = onednn.unavailable_reason()
    if reason is not None:
        raise onednn.OnednnUnavailable(reason)
    mode, eps = _mode(residual, relu), float(eps)
    y, mean, var, _ = _forward_p.bind(x, scale, shift, _residual(x, residual), eps=eps, threads=_threads(x), mode=mode,
                                      ws_bytes=_workspace_bytes(x, eps, mode))
    return y, mean, var
