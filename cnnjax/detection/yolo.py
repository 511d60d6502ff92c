"""YOLO v1 (Redmon et al. 2016): grid targets, the sum-squared loss with its λ weights, and decoding.

Layout of a prediction ``(*batch, S, S, B * 5 + C)``: per cell, ``B`` groups of raw
``(x, y, w, h, confidence)`` then ``C`` raw class scores (as :func:`cnnjax.models.create`'s
``yolo_v1`` emits). The activations are applied here: ``x, y = sigmoid`` (offset of the
centre inside its cell), ``w, h = sigmoid`` (fraction of the image), confidence ``sigmoid``,
class probabilities ``softmax``.

Targets are ``(*batch, S, S, 6)``: ``(x, y, w, h, has_object, class)`` in the same units.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cnnjax.detection.boxes import box_convert, box_iou
from cnnjax.detection.nms import select_detections
from cnnjax.functional import utils


def _split(pred, boxes_per_cell: int):
    b = boxes_per_cell
    if pred.shape[-1] <= 5 * b:
        raise ValueError(f"yolo: predictions have {pred.shape[-1]} channels, fewer than boxes_per_cell * 5 + 1 = {5 * b + 1}")
    raw = pred[..., : 5 * b].reshape(pred.shape[:-1] + (b, 5))
    return jax.nn.sigmoid(raw[..., :4]), jax.nn.sigmoid(raw[..., 4]), jax.nn.softmax(pred[..., 5 * b :], axis=-1)


def _cell_boxes(xywh):
    """``(..., S, S, B, 4)`` cell-relative ``(x, y, w, h)`` -> image-fraction xyxy."""
    s = xywh.shape[-3]
    idx = jnp.arange(s, dtype=xywh.dtype)
    cx = (xywh[..., 0] + idx[None, :, None]) / s
    cy = (xywh[..., 1] + idx[:, None, None]) / s
    return box_convert(jnp.stack([cx, cy, xywh[..., 2], xywh[..., 3]], -1), "cxcywh", "xyxy")


@utils.array_args("boxes", "classes")
def yolo_targets(boxes, classes, grid: int, image_size):
    """The YOLO grid target of one image (vmap for batches): each object goes to the cell holding its centre.

    When two centres fall in one cell, the larger object wins (YOLO v1 has one object per cell).

    Args:
      boxes: ``(O, 4)`` xyxy in pixels.
      classes: ``(O,)`` class ids, ``-1`` for padding.
      grid: ``S``.
      image_size: ``(H, W)`` or an int.

    Returns:
      ``(S, S, 6)``: cell-relative centre ``(x, y)``, image-relative ``(w, h)``, ``has_object``, ``class``.

    Example:
      >>> t = yolo_targets(jnp.array([[8., 0., 16., 8.]]), jnp.array([2]), grid=2, image_size=16)
      >>> t[0, 1].tolist()
      [0.5, 0.5, 0.5, 0.5, 1.0, 2.0]
    """
    h, w = utils.as_tuple(image_size, 2, "image_size", "yolo_targets", minimum=1)
    boxes, classes = jnp.asarray(boxes, jnp.float32), jnp.asarray(classes)
    scale = jnp.array([w, h, w, h], jnp.float32)
    cx, cy, bw, bh = jnp.moveaxis(box_convert(boxes / scale, "xyxy", "cxcywh"), -1, 0)
    col = jnp.clip(jnp.floor(cx * grid), 0, grid - 1).astype(jnp.int32)
    row = jnp.clip(jnp.floor(cy * grid), 0, grid - 1).astype(jnp.int32)
    here = (jax.nn.one_hot(row * grid + col, grid * grid) > 0) & (classes >= 0)[:, None]  # (O, S*S)
    winner = jnp.argmax(jnp.where(here, (bw * bh)[:, None], -1.0), axis=0)  # (S*S,)
    values = jnp.stack([cx * grid - col, cy * grid - row, bw, bh, jnp.ones_like(cx), classes.astype(jnp.float32)], -1)
    t = jnp.where(jnp.any(here, 0)[:, None], values[winner], 0.0)
    return t.reshape(grid, grid, 6)


@utils.array_args("pred", "target")
def yolo_loss(pred, target, boxes_per_cell: int = 2, lambda_coord: float = 5.0, lambda_noobj: float = 0.5,
              iou_target: bool = True):
    """YOLO v1's sum-squared loss per image.

    With ``1_ij`` marking the predictor ``j`` of cell ``i`` responsible for the cell's object
    (the one whose box has the highest IoU with it), and ``1_i`` the cells with an object::

        λ_coord Σ 1_ij [(x - x̂)² + (y - ŷ)² + (√w - √ŵ)² + (√h - √ĥ)²]
        + Σ 1_ij (C - Ĉ)² + λ_noobj Σ (1 - 1_ij) C²
        + Σ 1_i Σ_c (p(c) - p̂(c))²

    The confidence target ``Ĉ`` is the IoU of the predicted box with the object's
    (``iou_target=True``, as in the paper; not differentiated through), else 1.

    Args:
      pred: ``(*batch, S, S, B * 5 + C)`` raw outputs.
      target: ``(*batch, S, S, 6)`` from :func:`yolo_targets`.
      boxes_per_cell: ``B``.
      lambda_coord, lambda_noobj: the paper's weights (5 and 0.5).

    Returns:
      ``(*batch,)`` losses (sums over the grid).
    """
    xywh, conf, probs = _split(pred, boxes_per_cell)
    if target.shape[:-1] != pred.shape[:-1] or target.shape[-1] != 6:
        raise ValueError(f"yolo_loss: target must be {pred.shape[:-1] + (6,)} for predictions {pred.shape}, got {target.shape}")
    obj = target[..., 4]
    iou = box_iou(_cell_boxes(xywh), _cell_boxes(target[..., None, :4]))[..., 0]  # (..., S, S, B)
    iou = jax.lax.stop_gradient(iou)
    resp = jax.nn.one_hot(jnp.argmax(iou, -1), boxes_per_cell) * obj[..., None]
    t = target[..., None, :4]
    coord = (xywh[..., :2] - t[..., :2]) ** 2 + (jnp.sqrt(xywh[..., 2:]) - jnp.sqrt(t[..., 2:])) ** 2
    conf_target = iou if iou_target else 1.0
    onehot = jax.nn.one_hot(target[..., 5].astype(jnp.int32), probs.shape[-1])
    per_cell = (lambda_coord * jnp.sum(resp * coord.sum(-1), -1)
                + jnp.sum(resp * (conf - conf_target) ** 2, -1)
                + lambda_noobj * jnp.sum((1 - resp) * conf**2, -1)
                + obj * jnp.sum((probs - onehot) ** 2, -1))
    return per_cell.sum((-2, -1))


@utils.array_args("pred")
def decode_yolo(pred, image_size, boxes_per_cell: int = 2):
    """Every predicted box of every cell, in pixels: ``(boxes, scores, classes)``.

    ``score = confidence x max_c p(c)`` (the paper's class-specific confidence).

    Args:
      pred: ``(*batch, S, S, B * 5 + C)`` raw outputs.
      image_size: ``(H, W)`` or an int.

    Returns:
      ``(*batch, S*S*B, 4)`` xyxy boxes, ``(*batch, S*S*B)`` scores and int32 classes.
    """
    h, w = utils.as_tuple(image_size, 2, "image_size", "decode_yolo", minimum=1)
    xywh, conf, probs = _split(pred, boxes_per_cell)
    boxes = _cell_boxes(xywh) * jnp.array([w, h, w, h], xywh.dtype)
    scores = conf * jnp.max(probs, -1)[..., None]
    classes = jnp.broadcast_to(jnp.argmax(probs, -1)[..., None], scores.shape).astype(jnp.int32)
    lead = pred.shape[:-3]
    return boxes.reshape(lead + (-1, 4)), scores.reshape(lead + (-1,)), classes.reshape(lead + (-1,))


@utils.array_args("pred")
def detect(pred, image_size, boxes_per_cell: int = 2, *, score_threshold: float = 0.05, iou_threshold: float = 0.5,
           max_outputs: int = 20):
    """Decode YOLO outputs and keep the boxes per-class NMS leaves: fixed-size, jit-able, batched.

    Args:
      pred: ``(*batch, S, S, B * 5 + C)`` raw outputs.
      image_size: ``(H, W)`` or an int.
      score_threshold, iou_threshold, max_outputs: as in :func:`~cnnjax.detection.batched_nms`.

    Returns:
      ``boxes (*batch, M, 4)`` xyxy pixels, ``scores (*batch, M)``, ``classes (*batch, M)``; padding
      rows (fewer than ``M = max_outputs`` detections) have class -1 and score 0.
    """
    boxes, scores, classes = decode_yolo(pred, image_size, boxes_per_cell)

    def one(b, s, c):
        return select_detections(b, s, c, iou_threshold, max_outputs, score_threshold)

    f = one
    for _ in range(boxes.ndim - 2):
        f = jax.vmap(f)
    return f(boxes, scores, classes)
