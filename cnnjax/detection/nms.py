"""Non-maximum suppression with a fixed output size, so it jits and vmaps over images."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cnnjax.detection.boxes import _check_boxes, box_iou
from cnnjax.functional import utils


@utils.array_args("boxes", "scores")
def nms(boxes, scores, iou_threshold: float = 0.5, max_outputs: int = 100, score_threshold: float = -jnp.inf):
    """Greedy non-maximum suppression, padded to ``max_outputs`` so the shape is static.

    Repeatedly keeps the highest-scoring box left and drops every box whose IoU with it
    is above ``iou_threshold`` (as ``torchvision.ops.nms``). Boxes scoring at or below
    ``score_threshold``, or with a non-finite score, are never kept.

    Args:
      boxes: ``(N, 4)`` in ``xyxy``.
      scores: ``(N,)``.
      iou_threshold: suppress boxes overlapping a kept one by more than this.
      max_outputs: the length of the result.
      score_threshold: minimum score to be considered.

    Returns:
      ``(max_outputs,)`` int32 indices into ``boxes``, by decreasing score, padded with -1.

    Example:
      >>> b = jnp.array([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
      >>> nms(b, jnp.array([0.9, 0.8, 0.7]), 0.5, max_outputs=3)
      Array([ 0,  2, -1], dtype=int32)
    """
    boxes = _check_boxes(boxes, "nms")
    if boxes.ndim != 2 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: expected boxes (N, 4) and scores (N,), got {boxes.shape} and {scores.shape}; "
                         f"vmap it for batches")
    n = boxes.shape[0]
    iou = box_iou(boxes, boxes)
    alive = jnp.isfinite(scores) & (scores > score_threshold)

    def pick(alive, _):
        j = jnp.argmax(jnp.where(alive, scores, -jnp.inf))
        ok = alive[j]
        alive = alive & ~(ok & ((iou[j] > iou_threshold) | (jnp.arange(n) == j)))
        return alive, jnp.where(ok, j, -1).astype(jnp.int32)

    if n == 0:
        return jnp.full((max_outputs,), -1, jnp.int32)
    return jax.lax.scan(pick, alive, None, length=max_outputs)[1]


@utils.array_args("boxes", "scores", "classes")
def batched_nms(boxes, scores, classes, iou_threshold: float = 0.5, max_outputs: int = 100,
                score_threshold: float = -jnp.inf):
    """Non-maximum suppression within each class: boxes of different classes never suppress each other.

    Uses torchvision's offset trick: each class's boxes are shifted far apart, then one
    :func:`nms` runs. Entries with class ``< 0`` are padding and never kept.

    Args:
      boxes: ``(N, 4)`` xyxy. scores: ``(N,)``. classes: ``(N,)`` integer class ids.
      iou_threshold, max_outputs, score_threshold: as in :func:`nms`.

    Returns:
      ``(max_outputs,)`` int32 indices, by decreasing score, padded with -1.

    Example:
      >>> b = jnp.array([[0., 0., 10., 10.], [1., 1., 11., 11.]])
      >>> batched_nms(b, jnp.array([0.9, 0.8]), jnp.array([0, 1]), 0.5, max_outputs=2)
      Array([0, 1], dtype=int32)
    """
    boxes = _check_boxes(boxes, "batched_nms")
    if classes.shape != boxes.shape[:1]:
        raise ValueError(f"batched_nms: classes must have shape {boxes.shape[:1]}, got {classes.shape}")
    span = jnp.max(jnp.abs(boxes)) * 2 + 1 if boxes.size else 1.0
    shifted = boxes + (jnp.maximum(classes, 0).astype(boxes.dtype) * span)[:, None]
    scores = jnp.where(classes >= 0, scores, -jnp.inf)
    return nms(shifted, scores, iou_threshold, max_outputs, score_threshold)


@utils.array_args("boxes", "scores", "classes")
def select_detections(boxes, scores, classes, iou_threshold: float = 0.5, max_outputs: int = 100,
                      score_threshold: float = -jnp.inf, *, class_agnostic: bool = False):
    """The detections NMS keeps, gathered into ``max_outputs`` fixed slots.

    Args:
      boxes ``(N, 4)``, scores ``(N,)``, classes ``(N,)``: candidates for one image.
      class_agnostic: one NMS over all classes (default: per class, :func:`batched_nms`).

    Returns:
      ``boxes (M, 4)``, ``scores (M,)``, ``classes (M,)`` by decreasing score; unused slots have
      class -1, score 0 and a zero box.
    """
    if class_agnostic:
        keep = nms(boxes, jnp.where(classes >= 0, scores, -jnp.inf), iou_threshold, max_outputs,
                   score_threshold)
    else:
        keep = batched_nms(boxes, scores, classes, iou_threshold, max_outputs, score_threshold)
    ok = keep >= 0
    k = jnp.maximum(keep, 0)
    return jnp.where(ok[:, None], boxes[k], 0.0), jnp.where(ok, scores[k], 0.0), jnp.where(ok, classes[k], -1)
