"""Receptive fields: analytic (propagated through the traced graph) and empirical (from gradients).

The analytic pass traces the function to a jaxpr and carries, for every spatial axis of every
value, the receptive field of its first unit: ``size``, ``jump`` (input pixels between
neighbouring units, the cumulative stride) and ``start`` (where the first field begins; negative
from padding). Convolutions and pooling windows grow it, strided slices and padding move it,
and elementwise ops (residual additions, concatenation along channels) take the union, so
networks with skip connections come out right. Ops that mix all positions (flatten + dense,
global pooling, gathers such as adaptive pooling) make the field global.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnnjax.functional import conv_strategy, utils

GLOBAL = "global"


@dataclasses.dataclass(frozen=True)
class Dim:
    """Receptive field of the first unit along one spatial axis."""

    dim: int  # which input spatial dim this axis follows
    size: Fraction
    jump: Fraction
    start: Fraction

    def union(self, other: "Dim") -> "Dim":
        if other.dim != self.dim:
            return self
        start = min(self.start, other.start)
        end = max(self.start + self.size, other.start + other.size)
        return Dim(self.dim, end - start, min(self.jump, other.jump), start)


@dataclasses.dataclass
class FieldRow:
    """One named output's receptive field, per input spatial dim (``None`` where global)."""

    name: str
    size: tuple | None
    jump: tuple | None
    start: tuple | None

    def __str__(self) -> str:
        if self.size is None:
            return f"{self.name}: global (every input position)"
        return f"{self.name}: size {self.size}, jump {self.jump}, start {self.start}"


def _num(v: Fraction) -> int | float:
    return int(v) if v.denominator == 1 else float(v)


def _window(field: dict, axes_params) -> dict:
    """Grow a field through a sliding window: ``[(in_axis, out_axis, k, stride, dilation, lo, lhs_dilation)]``."""
    out = {}
    for in_axis, out_axis, k, stride, dil, lo, lhs_dil in axes_params:
        if in_axis not in field:
            continue
        d = field[in_axis]
        j = d.jump / lhs_dil
        out[out_axis] = Dim(d.dim, d.size + dil * (k - 1) * j, j * stride, d.start - lo * j)
    return out


def _union(fields: list) -> Any:
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    if any(f is GLOBAL for f in fields):
        return GLOBAL
    out = dict(fields[0])
    for f in fields[1:]:
        for a, d in f.items():
            out[a] = out[a].union(d) if a in out else d
    return out


def _reshape(field: dict, in_shape, out_shape) -> Any:
    """Follow spatial axes through a reshape that only merges/splits the other axes."""
    out = {}
    for a, d in field.items():
        prefix = int(np.prod(in_shape[:a]))
        matches = [b for b in range(len(out_shape)) if out_shape[b] == in_shape[a] and int(np.prod(out_shape[:b])) == prefix]
        if not matches:
            return GLOBAL
        out[matches[0]] = d
    return out


def _padded(eqn, ins: list, axis: int) -> Any:
    """Concatenation along a spatial axis that pads one big operand with thin strips (circular,
    reflect and replicate padding) acts like zero padding: the big operand's field, moved by
    the strips before it. Anything else mixes distant positions: global."""
    sizes = [v.aval.shape[axis] for v in eqn.invars]
    main = max((i for i, g in enumerate(ins) if g is not None and axis in g), key=lambda i: sizes[i])
    if sizes[main] <= sum(sizes) - sizes[main]:
        return GLOBAL
    d = ins[main][axis]
    moved = Dim(d.dim, d.size, d.jump, d.start - sum(sizes[:main]) * d.jump)
    return {**ins[main], axis: moved}


_INNER = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def _propagate(jaxpr, fields: list) -> list:
    env: dict = {}

    def read(v):
        return None if isinstance(v, jax.extend.core.Literal) else env.get(v)

    for v, f in zip(jaxpr.invars, fields):
        env[v] = f
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        if all(f is None for f in ins):
            continue
        outs = _rule(eqn, ins)
        for v, f in zip(eqn.outvars, outs):
            env[v] = f
    return [read(v) for v in jaxpr.outvars]


def _rule(eqn, ins: list) -> list:
    name, p = eqn.primitive.name, eqn.params
    nout = len(eqn.outvars)
    # Empty operands (jnp.pad's edge mode makes some) carry no input positions.
    ins = [None if 0 in getattr(v.aval, "shape", (1,)) else g for v, g in zip(eqn.invars, ins)]
    if all(g is None for g in ins):
        return [None] * nout
    for key in _INNER if not name.startswith("reduce_window") else ():
        if key in p:
            inner = p[key]
            inner = getattr(inner, "jaxpr", inner)
            return _propagate(inner, ins)
    if any(f is GLOBAL for f in ins):
        return [GLOBAL] * nout
    f = next(f for f in ins if f is not None)
    in_shape = eqn.invars[ins.index(f)].aval.shape
    if name == "conv_general_dilated":
        dn = p["dimension_numbers"]
        rhs = eqn.invars[1].aval.shape
        params = [
            (dn.lhs_spec[2 + i], dn.out_spec[2 + i], rhs[dn.rhs_spec[2 + i]], p["window_strides"][i],
             p["rhs_dilation"][i], p["padding"][i][0], p["lhs_dilation"][i])
            for i in range(len(dn.lhs_spec) - 2)
        ]
        return [_window(ins[0] or {}, params)] if ins[0] is not None else [GLOBAL]
    if name.startswith("reduce_window"):
        params = [
            (a, a, p["window_dimensions"][a], p["window_strides"][a], p["window_dilation"][a], p["padding"][a][0],
             p["base_dilation"][a])
            for a in range(len(in_shape))
        ]
        grown = _window(f, params)
        return [grown] * nout
    if name in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin", "reduce_and", "reduce_or"):
        axes = set(p.get("axes", ()))
        if axes & set(f):
            return [GLOBAL] * nout
        keep = [a for a in range(len(in_shape)) if a not in axes]
        return [{keep.index(a): d for a, d in f.items()}] * nout
    if name == "broadcast_in_dim":
        return [{p["broadcast_dimensions"][a]: d for a, d in f.items()}]
    if name == "transpose":
        perm = list(p["permutation"])
        return [{perm.index(a): d for a, d in f.items()}]
    if name == "reshape":
        return [_reshape(f, in_shape, eqn.outvars[0].aval.shape)]
    if name == "squeeze":
        dims = set(a % len(in_shape) for a in p["dimensions"])
        keep = [a for a in range(len(in_shape)) if a not in dims]
        return [{keep.index(a): d for a, d in f.items() if a in keep}]
    if name == "slice":
        strides = p["strides"] or (1,) * len(in_shape)
        return [{a: Dim(d.dim, d.size, d.jump * strides[a], d.start + p["start_indices"][a] * d.jump) for a, d in f.items()}]
    if name == "pad":
        cfg = p["padding_config"]
        return [{a: Dim(d.dim, d.size, d.jump / (cfg[a][2] + 1), d.start - cfg[a][0] * d.jump / (cfg[a][2] + 1))
                 for a, d in f.items()}]
    if name == "concatenate":
        if p["dimension"] in f:
            return [_padded(eqn, ins, p["dimension"])]
        return [_union(ins)]
    if name == "split":
        return [None if p["axis"] in f else f] * nout if p["axis"] in f else [f] * nout
    if name == "dot_general":
        (lc, rc), (lb, rb) = p["dimension_numbers"]
        out = {}
        for side, (contract, batch) in enumerate(((lc, lb), (rc, rb))):
            g = ins[side]
            if g is None:
                continue
            if set(contract) & set(g):
                return [GLOBAL]
            rank = len(eqn.invars[side].aval.shape)
            free = [a for a in range(rank) if a not in contract and a not in batch]
            nb = len(lb)
            lfree = len(eqn.invars[0].aval.shape) - len(lc) - nb
            for a, d in g.items():
                out[batch.index(a) if a in batch else nb + (0 if side == 0 else lfree) + free.index(a)] = d
        return [out]
    if name in ("gather", "scatter", "scatter-add", "dynamic_slice", "dynamic_update_slice", "sort", "cumsum",
                "cumlogsumexp", "cummax", "fft"):
        return [GLOBAL] * nout
    shapes_ok = all(v.aval.shape == eqn.outvars[0].aval.shape for v, g in zip(eqn.invars, ins) if g is not None)
    return [_union(ins) if shapes_ok else GLOBAL] * nout


def _trace_fields(fn: Callable, input_shape: Sequence[int], spatial_axes: Sequence[int]) -> tuple[list, Any]:
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    # XLA's convolutions, not the CPU's faster forms (im2col flattens the spatial axes into one)
    with conv_strategy("lax"):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(x)
    one = Fraction(1)
    start = {a: Dim(i, one, one, Fraction(0)) for i, a in enumerate(spatial_axes)}
    return _propagate(closed.jaxpr, [start]), out_shape


def _as_function(model_or_fn: Any) -> tuple[Callable, bool]:
    if isinstance(model_or_fn, nnx.Module):
        model = nnx.clone(model_or_fn)
        model.eval()
        if hasattr(model, "forward"):
            return (lambda x: model(x, return_features=True)[1]), True
        return model, False
    return model_or_fn, False


def receptive_field(
    model_or_fn: Any,
    input_shape: Sequence[int],
    position: Sequence[int] | None = None,
    *,
    spatial_axes: Sequence[int] | None = None,
) -> list[FieldRow]:
    """Analytic receptive field of every named feature map (zoo models) or every output (functions).

    Args:
      model_or_fn: a zoo model (its ``return_features`` maps are reported in order), any NNX
        module, or a function of one array.
      input_shape: e.g. ``(1, 32, 32, 3)``.
      position: an output unit's spatial index; ``start`` is then where *its* field begins
        (``start + position * jump``). Default: the first unit.
      spatial_axes: the input's spatial axes; default all but the first and last.

    Returns:
      One :class:`FieldRow` per output: ``size``, ``jump`` (cumulative stride) and ``start`` per
      spatial dim, or ``None`` for outputs that see the whole input.

    Example:
      >>> import cnnjax.functional as F
      >>> w = jnp.ones((3, 3, 1, 1))
      >>> print(receptive_field(lambda x: F.conv(F.conv(x, w), w, stride=2), (1, 16, 16, 1))[0])
      output: size (5, 5), jump (2, 2), start (0, 0)
    """
    input_shape = utils.as_shape(input_shape, "input_shape", "receptive_field", min_rank=2)
    fn, named = _as_function(model_or_fn)
    axes = tuple(range(1, len(input_shape) - 1)) if spatial_axes is None else tuple(spatial_axes)
    names: list[str] = []

    def flat(x):
        out = fn(x)
        if isinstance(out, dict):
            names.extend(out)
            return list(out.values())
        leaves = jax.tree.leaves(out)
        names.extend(["output"] if len(leaves) == 1 else [f"output{i}" for i in range(len(leaves))])
        return leaves

    fields, _ = _trace_fields(flat, input_shape, axes)
    rows = []
    for name, f in zip(names, fields):
        # A spatial input axis spread over several output axes is something we cannot follow: call it global.
        if f is None or f is GLOBAL or len(f) != len(axes) or len({d.dim for d in f.values()}) != len(axes):
            rows.append(FieldRow(name, None, None, None))
            continue
        dims = sorted(f.values(), key=lambda d: d.dim)
        pos = (0,) * len(dims) if position is None else tuple(position)
        rows.append(FieldRow(name, tuple(_num(d.size) for d in dims), tuple(_num(d.jump) for d in dims),
                             tuple(_num(d.start + p * d.jump) for d, p in zip(dims, pos))))
    return rows


def empirical_receptive_field(
    fn: Callable, input_shape: Sequence[int], position: Sequence[int] | None = None, *, seed: int = 0
) -> tuple[int, ...]:
    """Receptive field measured from the gradient of one output unit with respect to the input.

    The size per spatial dim is the extent of the input pixels with nonzero gradient.
    ReLUs that happen to be off, and max pooling, route no gradient, so this can be smaller
    than the analytic field, never larger.

    Args:
      fn: maps ``(1, *spatial, C)`` to ``(1, *out_spatial, C_out)``.
      input_shape: ``(1, *spatial, C)``.
      position: the output unit (spatial index); default the centre.
      seed: for the random input.

    Returns:
      The field's extent in each spatial dim.

    Example:
      >>> import cnnjax.functional as F
      >>> w = jnp.ones((3, 3, 1, 1))
      >>> empirical_receptive_field(lambda x: F.conv(F.conv(x, w), w), (1, 16, 16, 1))
      (5, 5)
    """
    x = jax.random.normal(jax.random.key(seed), tuple(input_shape))
    out_shape = jax.eval_shape(fn, x).shape
    n = len(input_shape) - 2
    pos = tuple(s // 2 for s in out_shape[1 : n + 1]) if position is None else tuple(position)
    grad_fn = jax.grad(lambda a: fn(a)[(0, *pos)].sum())
    # jitted, a stack compiles once instead of once per op; a module may update its state, so it runs eagerly
    grad = (grad_fn if isinstance(fn, nnx.Module) else jax.jit(grad_fn))(x)
    support = np.abs(np.asarray(grad)).sum(axis=(0, -1)) > 0
    extent = []
    for axis in range(n):
        hit = np.nonzero(support.any(axis=tuple(a for a in range(n) if a != axis)))[0]
        extent.append(int(hit.max() - hit.min() + 1) if hit.size else 0)
    return tuple(extent)
