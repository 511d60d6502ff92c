"""pytest helpers: ``assert_equivariant`` and ``assert_invariant`` with readable failures."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.equivariance.metrics import Comparison, apply_mask, compare
from cnnjax.equivariance.transforms import Transform
from cnnjax.functional import utils

#: (rtol, atol) by dtype: the check is ``max|f(t x) - t' f(x)| <= atol + rtol * max|t' f(x)|``.
DEFAULT_TOLERANCES = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-6), "bfloat16": (3e-2, 1e-3), "float16": (3e-2, 1e-3)}


def _tolerances(dtype: Any, rtol: float | None, atol: float | None) -> tuple[float, float]:
    r, a = DEFAULT_TOLERANCES.get(jnp.dtype(dtype).name, DEFAULT_TOLERANCES["float32"])
    return (r if rtol is None else rtol), (a if atol is None else atol)


def _check(c: Comparison, transform: Transform, what: str, rtol: float | None, atol: float | None) -> list[dict]:
    rtol, atol = _tolerances(c.expected.dtype, rtol, atol)
    diff = apply_mask(jnp.abs(c.actual - c.expected).astype(jnp.float32), c.mask)
    per = diff.reshape(diff.shape[0], -1)
    max_err = np.asarray(per.max(axis=1))
    where = np.asarray(per.argmax(axis=1))
    scale = np.asarray(jnp.abs(c.expected).reshape(diff.shape[0], -1).max(axis=1))
    rel = np.asarray(c.errors())
    report, failed = [], []
    for i, p in enumerate(transform.params):
        ok = bool(max_err[i] <= atol + rtol * scale[i])
        row = dict(param=np.asarray(p).tolist(), max_abs=float(max_err[i]), rel=float(rel[i]),
                   where=tuple(int(v) for v in np.unravel_index(where[i], diff.shape[1:])),
                   checked=bool(c.exact[i]), ok=ok)
        report.append(row)
        if row["checked"] and not ok:
            failed.append(row)
    if failed:
        lines = [f"f is not {what} under {transform.name} (rtol={rtol:g}, atol={atol:g}); per parameter:"]
        for r in report:
            tag = "FAIL" if r in failed else ("ok" if r["checked"] else f"not checked: not a multiple of stride {c.stride}")
            lines.append(f"  {r['param']}: max |error| {r['max_abs']:.3g} at output index {r['where']}, "
                         f"relative {r['rel']:.3g}  [{tag}]")
        raise AssertionError("\n".join(lines))
    return report


@utils.array_args("x")
def assert_equivariant(f: Any, x: jax.Array, transform: Transform, *, out_transform: Transform | None = None,
                       mask: Any = None, rtol: float | None = None, atol: float | None = None) -> list[dict]:
    """Assert ``f(t x) == t' f(x)`` for every parameter of ``transform`` (vmapped), with a readable failure.

    With a cumulative stride ``S`` (inferred from the shapes), only shifts that ``S`` divides
    are asserted; the others are measured against a sub-pixel shift and reported, not hidden.

    Args:
      f, x, transform, out_transform, mask: as :func:`~cnnjax.equivariance.equivariance_error`.
      rtol, atol: ``max|error| <= atol + rtol * max|t' f(x)|``; defaults by dtype
        (float32: ``1e-4``, ``1e-6``; see ``DEFAULT_TOLERANCES``).

    Returns:
      One dict per parameter: ``param``, ``max_abs``, ``rel``, ``where`` (index of the largest
      error in ``f(x)``), ``checked``, ``ok``.

    Raises:
      AssertionError: naming the transform, each parameter's largest error and where it is.

    Example:
      >>> import cnnjax.functional as F
      >>> from cnnjax.equivariance import shift
      >>> w = jnp.ones((3, 1, 1))
      >>> f = lambda x: F.conv(x, w, padding=1, padding_mode="circular")
      >>> rows = assert_equivariant(f, jnp.arange(8.0).reshape(1, 8, 1), shift([1, 3], spatial_dims=1))
      >>> [r["ok"] for r in rows]
      [True, True]
    """
    c = compare(f, x, transform, out_transform=out_transform, mask=mask)
    return _check(c, transform, "equivariant", rtol, atol)


@utils.array_args("x")
def assert_invariant(f: Any, x: jax.Array, transform: Transform, *, rtol: float | None = None,
                     atol: float | None = None) -> list[dict]:
    """Assert ``f(t x) == f(x)`` for every parameter of ``transform``; see :func:`assert_equivariant`.

    Example:
      >>> from cnnjax.equivariance import rot90
      >>> rows = assert_invariant(lambda x: x.sum((-3, -2)), jnp.ones((2, 4, 4, 3)), rot90())
      >>> len(rows)
      3
    """
    c = compare(f, x, transform, invariant=True)
    return _check(c, transform, "invariant", rtol, atol)
