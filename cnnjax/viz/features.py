"""Activation maps of a model's named intermediates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flax import nnx

from cnnjax.functional import utils
from cnnjax.models.base import Model
from cnnjax.viz.figure import finish, image_axes, new_figure, to_display
from cnnjax.viz.filters import conv_kernels
from cnnjax.viz.saliency import eval_copy


@utils.array_args("x")
def feature_maps(model: nnx.Module, x, layer: str) -> np.ndarray:
    """The named intermediate ``layer`` of a zoo model (``model(x, return_features=True)``), in eval mode.

    Args:
      model: a zoo model.
      x: ``(N, *spatial, C)``.
      layer: a feature name (``"conv1"``, ``"layer2"``, ``"enc1"``...).

    Returns:
      ``(N, *spatial', C')``.
    """
    if not isinstance(model, Model):
        raise ValueError(f"feature_maps: {type(model).__name__} does not return named features "
                         f"(zoo models do: model(x, return_features=True))")
    _, features = eval_copy(model)(np.asarray(x, np.float32), return_features=True)
    if layer not in features:
        raise ValueError(f"feature_maps: no feature {layer!r}; this model's are {', '.join(features)}")
    return np.asarray(features[layer])


@utils.array_args("x")
def plot_feature_maps(model: nnx.Module, x, layer: str, path: str | Path | None = None, max_maps: int = 32,
                      cols: int = 8):
    """One example's activation maps at ``layer``, one tile per channel (each with its own scale).

    Args:
      model: a zoo model.
      x: one input ``(*spatial, C)`` or a batch (the first example is drawn).
      layer: a feature name (see :func:`feature_maps`).
      max_maps: channels drawn at most.

    Returns:
      The matplotlib ``Figure`` (the input first, then the maps).
    """
    x = np.asarray(x, np.float32)
    batch = x if _is_batch(model, x) else x[None]
    a = feature_maps(model, batch[:1], layer)[0]
    if a.ndim < 2:
        raise ValueError(f"plot_feature_maps: feature {layer!r} is a vector of shape {a.shape}, not a map")
    c = min(a.shape[-1], max_maps)
    titles = ["input"] + [f"{layer}[{i}]" for i in range(c)]
    fig = new_figure(1.6 * cols, 1.7 * -(-(c + 1) // cols))
    axes = image_axes(fig, c + 1, cols, titles)
    image, gray = to_display(batch[0])
    axes[0].imshow(image, cmap=gray, interpolation="nearest", aspect="auto")
    for i in range(c):
        axes[i + 1].imshow(to_display(a[..., i])[0], cmap="viridis", interpolation="nearest", aspect="auto")
    return finish(fig, path)


def _is_batch(model, x) -> bool:
    """Whether ``x`` already has a batch axis: the model's first kernel tells the spatial rank."""
    kernels = conv_kernels(model)
    rank = next(iter(kernels.values())).ndim - 2 if kernels else x.ndim - 2
    return x.ndim == rank + 2
