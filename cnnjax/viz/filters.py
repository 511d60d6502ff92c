"""Looking at filters: learned conv kernels, and the classic hand-crafted bank applied to an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import filters, utils
from cnnjax.models.transfer import dotted_path
from cnnjax.viz.figure import finish, image_axes, new_figure, normalize, to_display
from cnnjax.viz.grid import make_grid


def conv_kernels(model: nnx.Module) -> dict[str, np.ndarray]:
    """Every conv kernel of a model, by layer name (``"conv1.0"``, as :func:`cnnjax.models.param_paths` names it)."""
    out = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Param) and path and path[-1] == "kernel" and node[...].ndim >= 3:
            out[dotted_path(path[:-1])] = np.asarray(node[...])
    return out


def _kernel(model_or_kernel: Any, layer: str | None) -> tuple[np.ndarray, str]:
    if isinstance(model_or_kernel, nnx.Module):
        kernels = conv_kernels(model_or_kernel)
        if not kernels:
            raise ValueError(f"plot_filters: {type(model_or_kernel).__name__} has no conv kernels")
        if layer is None:
            layer = next(iter(kernels))
        # a block's name ("conv2", as return_features names it) means its first conv
        want = ".".join(p for p in layer.split(".") if p != "layers")
        for name, k in kernels.items():
            if name == want or name.startswith(want + "."):
                return k, name
        raise ValueError(f"plot_filters: no conv layer {layer!r}; the model's are {', '.join(kernels)}")
    k = np.asarray(model_or_kernel, np.float32)
    if k.ndim not in (3, 4):
        raise ValueError(f"plot_filters: a kernel must be (kw, C_in, C_out) or (kh, kw, C_in, C_out), got shape {k.shape}")
    return k, layer or "kernel"


def plot_filters(model_or_kernel: Any, layer: str | None = None, path: str | Path | None = None,
                 max_filters: int = 64, max_channels: int = 16):
    """A grid of conv filters: one tile per output filter.

    With 3 input channels a filter is one RGB tile (the first layer of an image model,
    where Gabor-like edges and colour blobs appear); otherwise each row is one filter
    and each column one of its input channels. Every filter is min-max normalised on
    its own. 1-D kernels are drawn as one-row images.

    Args:
      model_or_kernel: an ``nnx.Module`` (its first conv, or ``layer``) or a kernel
        ``(kh, kw, C_in, C_out)`` / ``(kw, C_in, C_out)``.
      layer: the conv's name (see :func:`conv_kernels`: ``"conv2.0"``), or a block's name from
        ``return_features`` or :func:`cnnjax.inspect.summary` (``"conv2"``: that block's first conv).
      path: where to write the PNG.
      max_filters, max_channels: caps on what is drawn.

    Returns:
      The matplotlib ``Figure``.
    """
    k, name = _kernel(model_or_kernel, layer)
    if k.ndim == 3:
        k = k[None]
    k = k[..., :max_filters]
    kh, kw, cin, cout = k.shape
    if cin == 3:
        tiles = np.stack([normalize(k[..., o]) for o in range(cout)])
        grid = make_grid(tiles, nrow=int(np.ceil(np.sqrt(cout))), padding=1, pad_value=1.0)
    else:
        c = min(cin, max_channels)
        tiles = np.stack([normalize(k[..., i, o]) for o in range(cout) for i in range(c)])
        grid = make_grid(tiles, nrow=c, padding=1, pad_value=1.0)
    fig = new_figure(min(12.0, 1.0 + grid.shape[1] / 12), min(12.0, 1.0 + grid.shape[0] / 12))
    ax = image_axes(fig, 1, 1, [f"{name}: {cout} filters {kh}x{kw}x{cin}"])[0]
    image, cmap = to_display(grid)
    ax.imshow(image, cmap=cmap, interpolation="nearest")
    return finish(fig, path)


def filter_bank() -> dict[str, jnp.ndarray]:
    """The classic filters of :mod:`cnnjax.functional.filters`, each ``(kh, kw, 1, 1)``, by name."""
    gab = filters.gabor(15, 3.0, np.arange(4) * np.pi / 4, 8.0)
    bank = {"sobel x": filters.sobel()[..., :1], "sobel y": filters.sobel()[..., 1:],
            "prewitt x": filters.prewitt()[..., :1], "prewitt y": filters.prewitt()[..., 1:],
            "box 7x7": filters.box(7), "gaussian σ=2": filters.gaussian(13, 2.0),
            "LoG σ=2": filters.laplacian_of_gaussian(13, 2.0)}
    bank.update({f"gabor {45 * i}°": gab[..., i : i + 1] for i in range(4)})
    return bank


def _grey(image: Any) -> jnp.ndarray:
    a = jnp.asarray(image, jnp.float32)
    if a.ndim == 3:
        a = a.mean(-1)
    if a.ndim != 2:
        raise ValueError(f"apply_filter_bank: image must be (H, W) or (H, W, C), got shape {np.shape(image)}")
    return a[..., None]


@utils.array_args("image")
def apply_filter_bank(image: Any) -> dict[str, jnp.ndarray]:
    """Each filter of :func:`filter_bank` run over the (grey) image, same size, reflect-padded.

    Args:
      image: ``(H, W)`` or ``(H, W, C)`` (colour is averaged to grey).

    Returns:
      ``{name: (H, W)}`` responses, starting with ``"image"`` (the grey input).

    Example:
      >>> r = apply_filter_bank(np.eye(16))
      >>> r["sobel x"].shape, len(r)
      ((16, 16), 12)
    """
    grey = _grey(image)
    out = {"image": grey[..., 0]}
    for name, k in filter_bank().items():
        out[name] = F.conv(grey, k, padding="SAME", padding_mode="reflect")[..., 0]
    return out


@utils.array_args("image")
def plot_filter_bank(image: Any, path: str | Path | None = None, cols: int = 4):
    """:func:`apply_filter_bank` shown as a grid, each response with its own colour scale."""
    responses = apply_filter_bank(image)
    fig = new_figure(3.0 * cols, 3.0 * -(-len(responses) // cols))
    for ax, (name, r) in zip(image_axes(fig, len(responses), cols, list(responses)), responses.items()):
        ax.imshow(np.asarray(r), cmap="gray")
    return finish(fig, path)


def sample_image() -> np.ndarray:
    """A real photograph that ships with matplotlib (Grace Hopper, 600x512 RGB) as float32 in [0, 1]."""
    import matplotlib.image
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(matplotlib.image.imread(f, format="jpg"), np.float32) / 255.0
