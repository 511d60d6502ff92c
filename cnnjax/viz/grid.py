"""Image grids and annotations as arrays (torchvision.utils' make_grid, draw_bounding_boxes, draw_segmentation_masks)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnnjax.functional import utils
from cnnjax.viz.figure import normalize

PALETTE = np.array([
    [0.12, 0.47, 0.71], [1.0, 0.50, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16], [0.58, 0.40, 0.74],
    [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.50, 0.50, 0.50], [0.74, 0.74, 0.13], [0.09, 0.75, 0.81],
], np.float32)  # matplotlib's tab10


@utils.array_args("images")
def make_grid(images: Any, nrow: int = 8, padding: int = 2, normalize_each: bool = False, pad_value: float = 0.0):
    """Tile a batch of images into one image, row by row (``torchvision.utils.make_grid``, channels-last).

    Args:
      images: ``(N, H, W, C)`` (or ``(N, H, W)``).
      nrow: images per row.
      padding: pixels between and around the images.
      normalize_each: min-max scale each image to [0, 1] first.
      pad_value: the value of the padding.

    Returns:
      ``(rows * (H + p) + p, nrow' * (W + p) + p, C)`` with ``nrow' = min(nrow, N)``.

    Example:
      >>> make_grid(np.ones((5, 4, 4, 1)), nrow=3, padding=1).shape
      (11, 16, 1)
    """
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"make_grid: images must be a non-empty (N, H, W, C) or (N, H, W) batch, got shape {x.shape}")
    if normalize_each:
        x = np.stack([normalize(im) for im in x])
    n, h, w, c = x.shape
    cols, rows = min(nrow, n), -(-n // min(nrow, n))
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.float32)
    for i, im in enumerate(x):
        r, q = divmod(i, cols)
        y0, x0 = padding + r * (h + padding), padding + q * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = im
    return grid


def _rgb(image: Any) -> np.ndarray:
    a = np.asarray(image, np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"expected an image (H, W), (H, W, 1) or (H, W, 3), got shape {a.shape}")
    a = normalize(a) if a.min() < 0 or a.max() > 1 else a
    return np.repeat(a, 3, -1) if a.shape[-1] == 1 else a.copy()


@utils.array_args("image", "mask")
def overlay_masks(image: Any, mask: Any, alpha: float = 0.5, colors: Any = None, background: int = 0):
    """Blend a class mask over an image (``torchvision.utils.draw_segmentation_masks``).

    Args:
      image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; values outside [0, 1] are min-max scaled.
      mask: ``(H, W)`` integer classes.
      alpha: opacity of the colours.
      colors: ``(K, 3)`` RGB per class (default: tab10).
      background: the class left uncoloured (``None`` colours every class).

    Returns:
      ``(H, W, 3)`` RGB in [0, 1].
    """
    rgb = _rgb(image)
    mask = np.asarray(mask)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"overlay_masks: mask must be the image's (H, W) = {rgb.shape[:2]}, got {mask.shape}")
    colors = PALETTE if colors is None else np.asarray(colors, np.float32)
    painted = colors[np.mod(mask, len(colors))]
    on = (mask != background)[..., None] if background is not None else np.ones(mask.shape + (1,), bool)
    return np.where(on, (1 - alpha) * rgb + alpha * painted, rgb)


@utils.array_args("image", "boxes", "classes")
def draw_boxes(image: Any, boxes: Any, classes: Sequence[int] | None = None, colors: Any = None, width: int = 1):
    """Rasterise box outlines onto an image (``torchvision.utils.draw_bounding_boxes``, without text).

    Args:
      image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.
      boxes: ``(M, 4)`` xyxy in pixels; rows with class ``< 0`` are padding and skipped.
      classes: ``(M,)`` class ids choosing the colour (default: all 0).
      colors: ``(K, 3)`` RGB per class (default: tab10).
      width: line width in pixels.

    Returns:
      ``(H, W, 3)`` RGB in [0, 1].
    """
    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.zeros(len(boxes), int) if classes is None else np.asarray(classes).reshape(-1)
    colors = PALETTE if colors is None else np.asarray(colors, np.float32)
    for (x0, y0, x1, y1), k in zip(boxes, classes):
        if k < 0:
            continue
        c0, r0 = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1))
        c1, r1 = int(np.clip(np.ceil(x1) - 1, 0, w - 1)), int(np.clip(np.ceil(y1) - 1, 0, h - 1))
        color = colors[k % len(colors)]
        for t in range(width):
            rgb[min(r0 + t, r1), c0 : c1 + 1] = color
            rgb[max(r1 - t, r0), c0 : c1 + 1] = color
            rgb[r0 : r1 + 1, min(c0 + t, c1)] = color
            rgb[r0 : r1 + 1, max(c1 - t, c0)] = color
    return rgb
