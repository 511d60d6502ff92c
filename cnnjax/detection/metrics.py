"""Detection metrics: average precision per class and its mean (PASCAL VOC, all-point interpolation)."""

from __future__ import annotations

import numpy as np

from cnnjax.functional import utils


def _iou_np(box, boxes):
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@utils.array_args("recall", "precision")
def average_precision(recall, precision) -> float:
    """Area under the precision-recall curve after making precision non-increasing (VOC 2010+).

    Args:
      recall, precision: ``(D,)`` along the detections sorted by decreasing score.
    """
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    step = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[step + 1] - r[step]) * p[step + 1]))


@utils.array_args("pred_boxes", "pred_scores", "pred_classes", "gt_boxes", "gt_classes")
def mean_average_precision(pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes,
                           iou_threshold: float = 0.5, num_classes: int | None = None) -> dict:
    """mAP at one IoU threshold (mAP@0.5 by default), as PASCAL VOC computes it.

    Per class, detections from all images are ranked by score; each is a true positive
    if its IoU with a not-yet-matched ground-truth box of that class in its image is
    ``>= iou_threshold``, else a false positive. AP is the area under the interpolated
    precision-recall curve (:func:`average_precision`); mAP averages it over the classes
    that have ground truth.

    Args:
      pred_boxes: ``(N, M, 4)`` xyxy per image (padded), or a list of ``(M_i, 4)``.
      pred_scores: ``(N, M)`` or a list of ``(M_i,)``.
      pred_classes: ``(N, M)`` or a list; class ``-1`` marks padding.
      gt_boxes: ``(N, G, 4)`` or a list. gt_classes: ``(N, G)`` or a list; ``-1`` marks padding.
      iou_threshold: the IoU a match needs.
      num_classes: classes to score (default: ``1 + the largest class id seen``).

    Returns:
      ``{"map": float, "ap": {class: AP}, "num_gt": {class: count}}``.

    Example:
      >>> gt = [np.array([[0, 0, 10, 10]])]
      >>> mean_average_precision(gt, [np.array([0.9])], [np.array([0])], gt, [np.array([0])])["map"]
      1.0
    """
    n = len(gt_boxes)
    if not (len(pred_boxes) == len(pred_scores) == len(pred_classes) == len(gt_classes) == n):
        raise ValueError("mean_average_precision: every argument needs one entry per image; got lengths "
                         f"{[len(a) for a in (pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes)]}")
    preds = [(np.asarray(b, float).reshape(-1, 4), np.asarray(s, float).reshape(-1), np.asarray(c).reshape(-1))
             for b, s, c in zip(pred_boxes, pred_scores, pred_classes)]
    gts = [(np.asarray(b, float).reshape(-1, 4), np.asarray(c).reshape(-1)) for b, c in zip(gt_boxes, gt_classes)]
    if num_classes is None:
        num_classes = 1 + max([int(c.max()) for _, _, c in preds if c.size] + [int(c.max()) for _, c in gts if c.size] + [-1])
    ap, num_gt = {}, {}
    for k in range(num_classes):
        truth = [b[c == k] for b, c in gts]
        total = sum(len(t) for t in truth)
        if total == 0:
            continue
        dets = [(s, i, box) for i, (b, sc, c) in enumerate(preds) for box, s in zip(b[c == k], sc[c == k])]
        dets.sort(key=lambda d: -d[0])
        used = [np.zeros(len(t), bool) for t in truth]
        tp = np.zeros(len(dets))
        for d, (_, i, box) in enumerate(dets):
            if len(truth[i]):
                ious = _iou_np(box, truth[i])
                j = int(np.argmax(np.where(used[i], -1.0, ious)))
                if ious[j] >= iou_threshold and not used[i][j]:
                    tp[d], used[i][j] = 1, True
        hits = np.cumsum(tp)
        ap[k] = average_precision(hits / total, hits / np.arange(1, len(dets) + 1)) if dets else 0.0
        num_gt[k] = total
    return {"map": float(np.mean(list(ap.values()))) if ap else float("nan"), "ap": ap, "num_gt": num_gt}
