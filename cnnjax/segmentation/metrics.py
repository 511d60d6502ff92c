"""Segmentation metrics from a confusion matrix: pixel accuracy and (mean) intersection over union."""

from __future__ import annotations

import jax.numpy as jnp

from cnnjax.functional import utils


@utils.array_args("pred", "labels")
def confusion_matrix(pred, labels, num_classes: int):
    """``C[t, p]`` = number of pixels of true class ``t`` predicted as ``p``; jit-able (fixed size).

    Args:
      pred, labels: integer class maps of one shape (any batch and spatial dims).
      num_classes: ``K``; labels outside ``[0, K)`` are ignored.

    Returns:
      ``(K, K)`` int32.

    Example:
      >>> confusion_matrix(jnp.array([0, 1, 1]), jnp.array([0, 1, 0]), 2)
      Array([[1, 1],
             [0, 1]], dtype=int32)
    """
    if pred.shape != labels.shape:
        raise ValueError(f"confusion_matrix: pred and labels must have one shape, got {pred.shape} and {labels.shape}")
    ok = (labels >= 0) & (labels < num_classes) & (pred >= 0) & (pred < num_classes)
    idx = jnp.where(ok, labels * num_classes + pred, num_classes * num_classes).reshape(-1)
    counts = jnp.bincount(idx, length=num_classes * num_classes + 1)[:-1]
    return counts.reshape(num_classes, num_classes).astype(jnp.int32)


@utils.array_args("confusion")
def pixel_accuracy(confusion):
    """Correct pixels over all pixels: ``trace(C) / sum(C)``."""
    return jnp.trace(confusion) / jnp.maximum(confusion.sum(), 1)


@utils.array_args("confusion")
def iou_per_class(confusion):
    """``IoU_k = C[k,k] / (Σ_p C[k,p] + Σ_t C[t,k] - C[k,k])``; NaN for classes in neither prediction nor label."""
    c = confusion.astype(jnp.float32)
    tp = jnp.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    return jnp.where(union > 0, tp / jnp.where(union > 0, union, 1), jnp.nan)


@utils.array_args("confusion")
def mean_iou(confusion):
    """Mean of :func:`iou_per_class` over the classes that occur (as torchmetrics/mmseg report mIoU).

    Example:
      >>> float(mean_iou(confusion_matrix(jnp.array([0, 1, 1]), jnp.array([0, 1, 0]), 2)))
      0.5
    """
    return jnp.nanmean(iou_per_class(confusion))
