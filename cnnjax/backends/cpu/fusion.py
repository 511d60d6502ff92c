"""The CPU backend's fusions: models are written layer by layer, and the steps cnnjax jits get fused kernels.

:func:`cnnjax.functional.dispatch.fused` hands a step's loss function to :func:`rewrite`, which traces it
to a jaxpr and evaluates that jaxpr with two patterns replaced:

- ``relu(bn(x) + r)`` and ``relu(bn(x))``, where ``bn`` is oneDNN's training batch norm
  (:mod:`.onednn_batch_norm`): one oneDNN call with the add and the ReLU fused in, forward and backward;
- ``max_pool(relu(y + b))`` with a per-channel ``b`` (a conv's bias) and non-overlapping windows
  (:mod:`.pool`'s tiled max): ``relu(max_pool(y) + b)``, the same values bit for bit (max pooling commutes
  with adding a per-channel constant and with ReLU, both non-decreasing), computed on a quarter of the
  elements for 2x2 windows, and the backward pass builds no ReLU mask on the full map.

Each replaced intermediate must have no other use, so the function computed is unchanged. Gradients
agree with the unfused ones to float rounding, with one exception in the second pattern: where two
different values of one window round to the same value once ``b`` is added, the gradient goes to the
larger one, not the first one.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

import jax
from jax.extend import core as jcore

from cnnjax.backends.cpu import onednn_batch_norm, pool
from cnnjax.functional import dispatch

_BN_FORWARD = "onednn_batch_norm_forward"
_TILED_MAX = pool.tiled_max_name


def rewrite(fn: Callable) -> Callable:
    """``fn`` (positional array arguments, any pytrees) evaluated with this module's fusions applied."""
    def run(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        plan = _plan(closed.jaxpr)
        if plan is None:  # nothing to fuse: the function as written
            return fn(*args)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args), plan)
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)
    return run


def _body(eqn):
    """The jaxpr a call-like eqn (``custom_jvp_call``, ``jit``) runs, or ``None``."""
    inner = eqn.params.get("call_jaxpr", eqn.params.get("jaxpr"))
    return getattr(inner, "jaxpr", inner)


def _is_relu(eqn) -> bool:
    """``max(x, 0)``, possibly inside ``jax.nn.relu``'s custom_jvp and jit wrappers."""
    body = _body(eqn)
    if body is not None:
        return len(body.eqns) == 1 and _is_relu(body.eqns[0])
    return (eqn.primitive.name == "max" and len(eqn.invars) == 2 and isinstance(eqn.invars[1], jcore.Literal)
            and eqn.invars[1].val == 0)


def _is_tiled_max(eqn) -> bool:
    """The CPU backend's non-overlapping max pool (:func:`.pool.tiled_max_pool`)."""
    body = _body(eqn)
    info = None if body is None else body.debug_info
    return eqn.primitive.name == "custom_jvp_call" and info is not None and info.func_name == _TILED_MAX


class _Plan:
    """An evaluation order (eqn indices) and, for some eqns, what to compute instead (``replace[i](read)``)."""

    def __init__(self, order: list[int], replace: dict[int, Callable]):
        self.order, self.replace = order, replace


def _plan(jaxpr) -> _Plan | None:
    eqns = jaxpr.eqns
    producer = {v: i for i, e in enumerate(eqns) for v in e.outvars}
    uses = collections.Counter(v for e in eqns for v in e.invars if not isinstance(v, jcore.Literal))
    uses.update(v for v in jaxpr.outvars if not isinstance(v, jcore.Literal))
    order, replace, dropped = list(range(len(eqns))), {}, set()

    def single(v) -> int | None:
        """The producing eqn of ``v`` when ``v`` has exactly one use and was not taken by an earlier fusion."""
        i = producer.get(v) if not isinstance(v, jcore.Literal) else None
        return i if i is not None and uses[v] == 1 and i not in dropped and i not in replace else None

    for k, eqn in enumerate(eqns):
        if _is_relu(eqn):
            _fuse_bn(k, eqn, eqns, single, order, replace, dropped, uses, producer)
        elif _is_tiled_max(eqn):
            _fuse_pool(k, eqn, eqns, single, replace, dropped)
    if not replace:
        return None
    return _Plan([i for i in order if i not in dropped], replace)


def _fuse_bn(k, relu, eqns, single, order, replace, dropped, uses, producer) -> None:
    """``relu(bn(x) [+ r])`` -> one oneDNN batch norm in relu / add_relu mode."""
    z = relu.invars[0]
    i = single(z)
    if i is None:
        return
    residual, add = None, None
    if eqns[i].primitive.name == "add":
        add, (a, b) = i, eqns[i].invars
        for y, r in ((a, b), (b, a)):
            j = single(y)
            if (j is not None and eqns[j].primitive.name == _BN_FORWARD and eqns[j].outvars[0] is y
                    and not isinstance(r, jcore.Literal) and r.aval.shape == y.aval.shape
                    and r.aval.dtype == y.aval.dtype):
                i, residual = j, r
                break
        else:
            return
    bn = eqns[i]
    if (bn.primitive.name != _BN_FORWARD or bn.params["mode"] != onednn_batch_norm.MODES["plain"]
            or (residual is None and bn.outvars[0] is not z) or uses[bn.outvars[3]]):
        return
    if residual is not None:
        # the residual may be computed after the batch norm (a shortcut branch): move the batch norm, and whatever
        # reads its other outputs (the running statistics), to just before the add
        moved = {i}
        for e in range(i + 1, add):
            if any(producer.get(v) in moved for v in eqns[e].invars if not isinstance(v, jcore.Literal)):
                moved.add(e)
        if producer.get(residual) in moved:
            return
        for e in sorted(moved):
            order.remove(e)
        pos = order.index(add)
        order[pos:pos] = sorted(moved)
        dropped.add(add)
    x, scale, shift, _ = bn.invars
    eps = bn.params["eps"]

    def fused(read, x=x, scale=scale, shift=shift, residual=residual, eps=eps):
        r = None if residual is None else read(residual)
        y, mean, var = onednn_batch_norm.batch_norm(read(x), read(scale), read(shift), eps, residual=r, relu=True)
        return [y, mean, var, None]

    replace[i] = fused
    replace[k] = lambda read, bn_out=bn.outvars[0]: [read(bn_out)]


def _fuse_pool(k, pool, eqns, single, replace, dropped) -> None:
    """``tiled_max(relu(y + b))`` with ``b`` of shape ``(1, ..., 1, C)`` -> ``relu(tiled_max(y) + b)``."""
    j = single(pool.invars[0])
    if j is None or not _is_relu(eqns[j]):
        return
    i = single(eqns[j].invars[0])
    if i is None or eqns[i].primitive.name != "add":
        return
    a, b = eqns[i].invars
    for y, bias in ((a, b), (b, a)):
        shape = getattr(bias.aval, "shape", None)
        if (not isinstance(bias, jcore.Literal) and shape is not None and len(shape) == len(y.aval.shape)
                and all(d == 1 for d in shape[:-1]) and shape[-1] == y.aval.shape[-1] and y.aval.shape != shape):
            break
    else:
        return
    dropped.update((i, j))

    def fused(read, y=y, bias=bias):
        pooled = _bind(pool, [read(y)])[0]
        return [jax.nn.relu(pooled + read(bias).astype(pooled.dtype))]

    replace[k] = fused


def _bind(eqn, invals: list[Any]) -> list[Any]:
    """Evaluate one eqn as ``jax.core.eval_jaxpr`` does."""
    params = eqn.primitive.get_bind_params(eqn.params)
    subfuns = []
    if isinstance(params, tuple):  # older JAX: (subfuns, params)
        subfuns, params = params
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*subfuns, *invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _evaluate(jaxpr, consts, args, plan: _Plan) -> list[Any]:
    env: dict[Any, Any] = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for i in plan.order:
        eqn = jaxpr.eqns[i]
        outs = plan.replace[i](read) if i in plan.replace else _bind(eqn, [read(v) for v in eqn.invars])
        for v, o in zip(eqn.outvars, outs):
            if o is not None:
                env[v] = o
    return [read(v) for v in jaxpr.outvars]


def register() -> None:
    dispatch.register_rewrite("cpu", rewrite)

