"""Detections and segmentations drawn over their images, for looking at what a model predicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.patches import Rectangle

from cnnjax.functional import utils
from cnnjax.viz.figure import finish, image_axes, new_figure, to_display
from cnnjax.viz.grid import PALETTE, overlay_masks


@utils.array_args("images", "boxes", "classes", "scores")
def plot_detections(images: Any, boxes: Any, classes: Any, scores: Any = None, *, class_names: Sequence[str] | None = None,
                    gt_boxes: Any = None, gt_classes: Any = None, path: str | Path | None = None, cols: int = 4,
                    min_score: float = 0.0):
    """Each image with its predicted boxes (coloured by class, labelled with class and score).

    Ground truth, when given, is drawn dashed in white underneath.

    Args:
      images: ``(N, H, W[, C])``.
      boxes: ``(N, M, 4)`` xyxy pixels. classes: ``(N, M)``, ``-1`` for padding. scores: ``(N, M)``.
      class_names: names for the class ids.
      gt_boxes, gt_classes: ``(N, G, 4)`` and ``(N, G)`` (``-1`` padding).
      min_score: hide predictions scoring below this.

    Returns:
      The matplotlib ``Figure``.
    """
    images = np.asarray(images)
    n = len(images)
    fig = new_figure(2.6 * min(cols, n), 2.6 * -(-n // cols))
    for i, ax in enumerate(image_axes(fig, n, cols)):
        image, gray = to_display(images[i])
        ax.imshow(image, cmap=gray, interpolation="nearest")
        if gt_boxes is not None:
            for (x0, y0, x1, y1), k in zip(np.asarray(gt_boxes[i]), np.asarray(gt_classes[i])):
                if k >= 0:
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", ls="--", lw=1))
        for j, ((x0, y0, x1, y1), k) in enumerate(zip(np.asarray(boxes[i]), np.asarray(classes[i]))):
            s = None if scores is None else float(np.asarray(scores[i])[j])
            if k < 0 or (s is not None and s < min_score):
                continue
            color = PALETTE[int(k) % len(PALETTE)]
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.5))
            name = class_names[int(k)] if class_names is not None else str(int(k))
            ax.text(x0 - 0.5, y0 - 1, name + ("" if s is None else f" {s:.2f}"), color="white", fontsize=6,
                    va="bottom", bbox={"facecolor": color, "pad": 0.5, "lw": 0})
    return finish(fig, path)


@utils.array_args("images")
def plot_segmentation(images: Any, masks: Sequence[Any], titles: Sequence[str] = ("input", "truth", "prediction"),
                      *, path: str | Path | None = None, alpha: float = 0.6):
    """One row per image: the image, then each class mask (truth, prediction...) blended over it.

    Args:
      images: ``(N, H, W[, C])``.
      masks: a list of ``(N, H, W)`` integer class maps (0 = background, left uncoloured).
      titles: column titles (the input's, then one per mask list).

    Returns:
      The matplotlib ``Figure``.
    """
    images = np.asarray(images)
    n, cols = len(images), 1 + len(masks)
    fig = new_figure(2.0 * cols, 2.0 * n)
    axes = image_axes(fig, n * cols, cols, [titles[j] if i == 0 else "" for i in range(n) for j in range(cols)])
    for i in range(n):
        image, gray = to_display(images[i])
        axes[i * cols].imshow(image, cmap=gray, interpolation="nearest")
        for j, m in enumerate(masks, start=1):
            axes[i * cols + j].imshow(overlay_masks(image, np.asarray(m[i]), alpha), interpolation="nearest")
    return finish(fig, path)
