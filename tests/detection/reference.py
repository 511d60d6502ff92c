"""Straightforward numpy references for the detection ops (loops, no vectorisation tricks)."""

import numpy as np


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[j]) <= thr for j in keep):
            keep.append(i)
    return keep


def batched_nms(boxes, scores, classes, thr):
    keep = []
    for c in set(classes.tolist()):
        idx = [i for i in range(len(classes)) if classes[i] == c]
        keep += [idx[k] for k in nms(boxes[idx], scores[idx], thr)]
    return sorted(keep, key=lambda i: (-scores[i], i))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def yolo_loss(pred, target, b, lc=5.0, ln=0.5):
    """YOLO v1's loss for one image, written cell by cell from the paper."""
    s = pred.shape[0]
    total = 0.0
    for r in range(s):
        for c in range(s):
            p, t = pred[r, c], target[r, c]
            probs = np.exp(p[5 * b:] - p[5 * b:].max())
            probs /= probs.sum()
            preds = [sigmoid(p[5 * j : 5 * j + 5]) for j in range(b)]
            if t[4] == 0:
                total += ln * sum(q[4] ** 2 for q in preds)
                continue
            def xyxy(q):
                cx, cy = (q[0] + c) / s, (q[1] + r) / s
                return [cx - q[2] / 2, cy - q[3] / 2, cx + q[2] / 2, cy + q[3] / 2]
            ious = [iou(xyxy(q), xyxy(t)) for q in preds]
            j = int(np.argmax(ious))
            q = preds[j]
            total += lc * ((q[0] - t[0]) ** 2 + (q[1] - t[1]) ** 2
                           + (np.sqrt(q[2]) - np.sqrt(t[2])) ** 2 + (np.sqrt(q[3]) - np.sqrt(t[3])) ** 2)
            total += (q[4] - ious[j]) ** 2
            total += ln * sum(preds[k][4] ** 2 for k in range(b) if k != j)
            total += sum((probs[k] - (k == int(t[5]))) ** 2 for k in range(len(probs)))
    return total
