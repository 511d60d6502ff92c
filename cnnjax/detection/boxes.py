"""Box utilities on ``(..., 4)`` arrays: format conversion, area, pairwise IoU. All jit and vmap."""

from __future__ import annotations

import jax.numpy as jnp

from cnnjax.functional import utils

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_format(fmt: str, name: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"box_convert: {name} must be one of {', '.join(BOX_FORMATS)}, got {fmt!r}")


def _check_boxes(boxes, fn: str, name: str = "boxes"):
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: {name} must have shape (..., 4), got {boxes.shape}")
    return boxes


@utils.array_args("boxes")
def box_convert(boxes, in_fmt: str, out_fmt: str):
    """Convert boxes between ``xyxy`` (corners), ``xywh`` (top-left corner and size) and ``cxcywh`` (centre and size).

    Same names and meaning as ``torchvision.ops.box_convert``.

    Args:
      boxes: ``(..., 4)``.
      in_fmt, out_fmt: one of ``"xyxy"``, ``"xywh"``, ``"cxcywh"``.

    Returns:
      ``(..., 4)`` in ``out_fmt``.

    Example:
      >>> box_convert(jnp.array([10., 20., 30., 60.]), "xyxy", "cxcywh")
      Array([20., 40., 20., 40.], dtype=float32)
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    boxes = _check_boxes(boxes, "box_convert")
    a, b, c, d = jnp.moveaxis(boxes, -1, 0)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return jnp.stack([a, b, c, d], axis=-1)


@utils.array_args("boxes")
def box_area(boxes):
    """Areas of ``xyxy`` boxes ``(..., 4) -> (...)``; inverted boxes count as 0."""
    boxes = _check_boxes(boxes, "box_area")
    return jnp.clip(boxes[..., 2] - boxes[..., 0], 0) * jnp.clip(boxes[..., 3] - boxes[..., 1], 0)


@utils.array_args("boxes1", "boxes2")
def box_iou(boxes1, boxes2):
    """Pairwise intersection over union of ``xyxy`` boxes.

    ``IoU(a, b) = |a ∩ b| / |a ∪ b|``, and 0 where the union is empty.

    Args:
      boxes1: ``(..., N, 4)``.
      boxes2: ``(..., M, 4)`` (leading dims broadcast with ``boxes1``'s).

    Returns:
      ``(..., N, M)``.

    Example:
      >>> box_iou(jnp.array([[0., 0., 2., 2.]]), jnp.array([[1., 0., 3., 2.], [5., 5., 6., 6.]]))
      Array([[0.33333334, 0.        ]], dtype=float32)
    """
    b1 = _check_boxes(boxes1, "box_iou", "boxes1")[..., :, None, :]
    b2 = _check_boxes(boxes2, "box_iou", "boxes2")[..., None, :, :]
    lo = jnp.maximum(b1[..., :2], b2[..., :2])
    hi = jnp.minimum(b1[..., 2:], b2[..., 2:])
    inter = jnp.prod(jnp.clip(hi - lo, 0), axis=-1)
    union = box_area(b1) + box_area(b2) - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1), 0.0)
