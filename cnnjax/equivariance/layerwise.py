"""Where in a network equivariance is lost: the error after every named intermediate feature map."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.equivariance.metrics import has_spatial, as_function, expected_outputs, relative_error
from cnnjax.equivariance.transforms import Transform
from cnnjax.functional import utils


@dataclasses.dataclass
class LayerError:
    """One feature map: ``kind`` is "equivariance" (spatial maps) or "invariance" (vectors)."""

    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...] | None
    kind: str
    errors: np.ndarray  # (P,) relative error per transform parameter
    exact: np.ndarray  # (P,) whether the parameter is a whole-pixel move at this stride

    @property
    def mean(self) -> float:
        return float(self.errors.mean())

    @property
    def exact_max(self) -> float:
        """The largest error over the parameters the stride divides (``nan`` if none)."""
        return float(self.errors[self.exact].max()) if self.exact.any() else float("nan")


@dataclasses.dataclass
class LayerwiseReport:
    """The rows of :func:`layerwise_equivariance`, printable as a table and plottable over depth."""

    transform: Transform
    rows: list[LayerError]

    def __str__(self) -> str:
        head = f"{'layer':<14} {'shape':<18} {'stride':<8} {'kind':<12} {'mean err':>9} {'max (exact)':>11}"
        lines = [f"{self.transform!r}", head, "-" * len(head)]
        for r in self.rows:
            stride = "x".join(map(str, r.stride)) if r.stride else "-"
            lines.append(f"{r.name:<14} {str(r.shape):<18} {stride:<8} {r.kind:<12} {r.mean:>9.2e} {r.exact_max:>11.2e}")
        return "\n".join(lines)

    def plot(self, path: str | None = None, *, ax: Any = None):
        """Mean relative error per layer (log scale), in network order. Saves a PNG when ``path`` is given."""
        from cnnjax.viz.figure import finish, new_figure

        fig = None
        if ax is None:
            fig = new_figure(max(4.0, 0.7 * len(self.rows) + 2), 3.2)
            ax = fig.subplots()
        depth = np.arange(len(self.rows))
        errs = np.array([max(r.mean, 1e-12) for r in self.rows])
        colors = ["tab:blue" if r.kind == "equivariance" else "tab:orange" for r in self.rows]
        ax.plot(depth, errs, color="0.6", zorder=1)
        ax.scatter(depth, errs, c=colors, zorder=2)
        ax.set_yscale("log")
        ax.set_xticks(depth, [r.name for r in self.rows], rotation=45, ha="right")
        ax.set_ylabel("relative error")
        ax.set_title(f"{self.transform!r}: blue equivariance, orange invariance", fontsize=9)
        return finish(fig, path) if fig is not None else ax.figure


@utils.array_args("x")
def layerwise_equivariance(model: Any, x: jax.Array, transform: Transform, *,
                           out_transforms: dict[str, Transform] | None = None) -> LayerwiseReport:
    """The equivariance (or invariance) error after every named intermediate of a zoo model.

    Runs ``model(x, return_features=True)`` on ``x`` and on every transformed ``x`` (one
    vmapped call, on a copy of the model's state). A map with the input's spatial rank is
    compared with the transformed original map (shifts divided by the map's cumulative
    stride, inferred from its shape); a vector (pooled features, logits) with the original
    itself (invariance).

    Args:
      model: a zoo model, or any callable returning ``(logits, {name: map})`` for ``return_features=True``.
      x: ``(B, *spatial, C)``.
      transform: e.g. ``shift([1, 2, 4], spatial_dims=1)``.
      out_transforms: per-layer output transforms that differ from the default, e.g.
        ``group_action("p4", on="regular")`` for a P4CNN's group maps.

    Returns:
      A :class:`LayerwiseReport`: ``print`` it for a table, ``.plot(path)`` for a figure.

    Example:
      >>> from cnnjax.models import create
      >>> from cnnjax.equivariance import shift
      >>> model = create("mnist1d_cnn")
      >>> report = layerwise_equivariance(model, jnp.ones((2, 40, 1)), shift([2, 8], spatial_dims=1))
      >>> [r.name for r in report.rows]
      ['conv1', 'conv2', 'conv3', 'pre_logits', 'logits']
    """
    call = as_function(model, return_features=True)
    n = transform.spatial_dims
    out_transforms = out_transforms or {}

    def named(a):
        logits, feats = call(a)
        return {**feats, "logits": logits}

    base = named(x)
    moved = jax.vmap(lambda p: named(transform.fn(x, p)))(jnp.asarray(transform.params))
    rows = []
    for name, y in base.items():
        invariant = name not in out_transforms and not has_spatial(y, x, n)
        expected, exact, stride = expected_outputs(x, y, transform, out_transform=out_transforms.get(name),
                                                   invariant=invariant)
        kind = "invariance" if invariant else "equivariance"
        rows.append(LayerError(name, tuple(y.shape), stride, kind, np.asarray(relative_error(moved[name], expected)), exact))
    return LayerwiseReport(transform, rows)
