"""Figures without pyplot: they render headless and display inline in notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib ``Figure`` not registered with pyplot (no GUI backend, nothing to close)."""
    return Figure(figsize=(width, height))


def finish(fig: Figure, path: str | Path | None, dpi: int = 120) -> Figure:
    """Lay out ``fig`` and write it as a PNG when ``path`` is given (creating the folder)."""
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def image_axes(fig: Figure, count: int, cols: int, titles: Any = None):
    """``count`` axes on a ``cols``-wide grid, ticks off, optionally titled; unused cells hidden."""
    rows = max(1, -(-count // cols))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if titles is not None and i < count:
            ax.set_title(str(titles[i]), fontsize=8)
    return axes[:count]


def to_display(image: Any) -> tuple[np.ndarray, str | None]:
    """An image for ``imshow``: ``(H, W)`` grey or ``(H, W, 3)`` RGB scaled to [0, 1]; and the colormap to use."""
    a = np.asarray(image, np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 1:
        a = a[None]  # a 1-D signal as a one-row image
    if a.ndim == 3 and a.shape[-1] not in (3, 4):
        raise ValueError(f"expected an image (H, W), (H, W, 1) or (H, W, 3), got shape {a.shape}")
    return normalize(a), ("gray" if a.ndim == 2 else None)


def normalize(a: Any) -> np.ndarray:
    """Min-max scale to [0, 1] (a constant array becomes 0)."""
    a = np.asarray(a, np.float32)
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
