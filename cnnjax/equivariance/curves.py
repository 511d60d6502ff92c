"""Equivariance error as a curve over a transform's parameter (error vs angle, vs scale, vs shift), and its plot."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from cnnjax.equivariance.metrics import compare
from cnnjax.equivariance.transforms import Transform
from cnnjax.functional import utils


@dataclasses.dataclass
class ErrorCurve:
    """Relative errors ``(P,)`` at the parameter values ``(P,)`` of one transform family."""

    transform: str
    values: np.ndarray
    errors: np.ndarray
    kind: str  # "equivariance" or "invariance"

    def __str__(self) -> str:
        rows = [f"{self.kind} error under {self.transform}", f"{'param':>10} {'error':>10}"]
        rows += [f"{v:>10.4g} {e:>10.3e}" for v, e in zip(self.values, self.errors)]
        return "\n".join(rows)

    def plot(self, path: str | None = None, *, ax: Any = None, label: str | None = None):
        """One line of error against the parameter (log scale). Saves a PNG when ``path`` is given."""
        return plot_error_curves({label or self.transform: self}, path, ax=ax)


def _values(transform: Transform) -> np.ndarray:
    p = np.asarray(transform.params)
    if p.ndim == 1:
        return p.astype(np.float64)
    if p.ndim == 2:  # a shift per spatial dim: its length
        return np.linalg.norm(p.astype(np.float64), axis=1)
    return np.arange(len(p), dtype=np.float64)  # matrices: their index


@utils.array_args("x")
def error_curve(f: Any, x: jax.Array, transform: Transform, *, invariant: bool = False,
                out_transform: Transform | None = None, mask: Any = None) -> ErrorCurve:
    """The relative (in)equivariance error of ``f`` at every parameter of ``transform``, as a curve.

    Args:
      f, x, out_transform, mask: as :func:`~cnnjax.equivariance.equivariance_error`.
      transform: e.g. ``rotate(np.arange(0, 361, 15))`` for an error-vs-angle curve.
      invariant: compare ``f(t x)`` with ``f(x)`` (classifiers) instead of ``t' f(x)``.

    Returns:
      An :class:`ErrorCurve`: ``values`` are the angles / factors (shift lengths for shifts,
      indices for matrices), ``errors`` the relative errors. ``print`` it or ``.plot(path)``.

    Example:
      >>> from cnnjax.equivariance import rotate
      >>> f = lambda a: a.sum(axis=(1, 2))  # invariant to quarter turns, not to 45 degrees (corners)
      >>> c = error_curve(f, jnp.ones((1, 6, 6, 1)), rotate([0, 45, 90]), invariant=True)
      >>> [round(float(e), 2) for e in c.errors]
      [0.0, 0.18, 0.0]
    """
    cmp = compare(f, x, transform, out_transform=out_transform, invariant=invariant,
                  mask=None if invariant else mask)
    return ErrorCurve(transform.name, _values(transform), np.asarray(cmp.errors()),
                      "invariance" if invariant else "equivariance")


def plot_error_curves(curves: dict[str, ErrorCurve], path: str | None = None, *, ax: Any = None,
                      xlabel: str | None = None, title: str | None = None, errors: dict[str, np.ndarray] | None = None):
    """Several curves on one axis (log-scale error), e.g. Z2, C4, C8 and C16 networks over the angle.

    ``errors`` optionally gives a spread per label (e.g. the std over seeds), drawn as a band.
    Saves a PNG when ``path`` is given; returns the figure.
    """
    from cnnjax.viz.figure import finish, new_figure

    fig = None
    if ax is None:
        fig = new_figure(5.5, 3.4)
        ax = fig.subplots()
    for label, c in curves.items():
        err = np.maximum(c.errors, 1e-9)
        (line,) = ax.plot(c.values, err, marker="o", ms=3, label=label)
        if errors and label in errors:
            lo, hi = np.maximum(err - errors[label], 1e-9), err + errors[label]
            ax.fill_between(c.values, lo, hi, color=line.get_color(), alpha=0.2)
    first = next(iter(curves.values()))
    ax.set_yscale("log")
    ax.set_xlabel(xlabel or ("angle (degrees)" if first.transform.startswith("rotate") else "parameter"))
    ax.set_ylabel(f"relative {first.kind} error")
    ax.set_title(title or first.transform, fontsize=9)
    ax.legend(fontsize=8)
    return finish(fig, path) if fig is not None else ax.figure
