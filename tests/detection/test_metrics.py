"""mAP@0.5 on cases worked out by hand."""

import numpy as np
import pytest

from cnnjax.detection import average_precision, mean_average_precision

GT = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)]
GT_CLS = [np.array([0, 0])]


def test_perfect_detections_score_one():
    assert mean_average_precision(GT, [np.array([0.9, 0.8])], GT_CLS, GT, GT_CLS)["map"] == 1.0


def test_false_positive_ranked_between_hits():
    # TP (0.9), FP (0.8), TP (0.7): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3
    boxes = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], float)]
    r = mean_average_precision(boxes, [np.array([0.9, 0.8, 0.7])], [np.array([0, 0, 0])], GT, GT_CLS)
    assert r["map"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_duplicates_misses_wrong_class_and_low_iou():
    boxes = [np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 4]], float)]
    scores, classes = [np.array([0.9, 0.8, 0.7, 0.95])], [np.array([0, 0, 1, -1])]
    r = mean_average_precision(boxes, scores, classes, GT, GT_CLS, num_classes=2)
    # class 0: TP then a duplicate (FP); the second box is missed -> recall 1/2 at precision 1
    assert r["ap"] == {0: pytest.approx(0.5)} and r["num_gt"] == {0: 2}
    low = [np.array([[0, 0, 10, 4.9]], float)]  # IoU 0.49 < 0.5
    assert mean_average_precision(low, [np.array([1.0])], [np.array([0])], GT, GT_CLS)["map"] == 0.0
    assert mean_average_precision(low, [np.array([1.0])], [np.array([0])], GT, GT_CLS, iou_threshold=0.4)["map"] == 0.5


def test_padded_arrays_and_images_without_objects():
    gt_boxes = np.zeros((2, 3, 4))
    gt_boxes[0, 0] = [0, 0, 10, 10]
    gt_cls = np.array([[1, -1, -1], [-1, -1, -1]])
    pred_boxes = np.stack([gt_boxes[0], [[5, 5, 9, 9], [0, 0, 0, 0], [0, 0, 0, 0]]])
    pred_scores = np.array([[0.5, 0, 0], [0.9, 0, 0]])
    pred_cls = np.array([[1, -1, -1], [1, -1, -1]])  # an FP in the empty image outranks the TP
    r = mean_average_precision(pred_boxes, pred_scores, pred_cls, gt_boxes, gt_cls)
    assert r["ap"] == {1: pytest.approx(0.5)}


def test_interpolation_takes_the_precision_envelope():
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(5 / 6)
    assert average_precision(np.array([]), np.array([])) == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one entry per image"):
        mean_average_precision([], [], [], GT, GT_CLS)
