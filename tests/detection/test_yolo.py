"""YOLO v1 targets, loss (against a cell-by-cell numpy reference) and decoding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.detection import decode_yolo, detect, yolo_loss, yolo_targets
from tests.detection import reference


def logit(p):
    return np.log(p) - np.log1p(-p)


def test_targets_place_each_object_in_its_centre_cell():
    boxes = np.array([[0, 0, 8, 8], [20, 4, 30, 10], [0, 0, 0, 0]], np.float32)
    t = np.asarray(yolo_targets(boxes, np.array([1, 2, -1]), grid=4, image_size=32))
    assert t.shape == (4, 4, 6) and t[..., 4].sum() == 2
    np.testing.assert_allclose(t[0, 0], [0.5, 0.5, 0.25, 0.25, 1, 1])
    np.testing.assert_allclose(t[0, 3], [0.125, 0.875, 10 / 32, 6 / 32, 1, 2])  # centre (25, 7): column 3, row 0


def test_targets_keep_the_larger_of_two_objects_in_a_cell():
    boxes = np.array([[10, 10, 14, 14], [6, 6, 18, 18]], np.float32)  # both centred at (12, 12)
    for order in ([0, 1], [1, 0]):
        t = np.asarray(yolo_targets(boxes[order], np.array([0, 1])[order], grid=2, image_size=32))
        assert t[..., 4].sum() == 1 and t[0, 0, 5] == 1 and t[0, 0, 2] == pytest.approx(12 / 32)


def test_loss_matches_reference(rng):
    s, b, c = 3, 2, 4
    pred = rng.normal(size=(2, s, s, b * 5 + c)).astype(np.float32)
    boxes = np.array([[[1, 2, 9, 12], [14, 14, 23, 20]], [[3, 13, 10, 22], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[0, 3], [2, -1]])
    target = jax.vmap(lambda bx, cl: yolo_targets(bx, cl, s, 24))(boxes, classes)
    got = jax.jit(yolo_loss, static_argnums=2)(pred, target, b)  # one compile, not one per op
    want = [reference.yolo_loss(pred[i].astype(np.float64), np.asarray(target[i], np.float64), b) for i in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    grads = jax.jit(jax.grad(lambda p: yolo_loss(p, target, b).sum()))(pred)
    assert np.all(np.isfinite(grads)) and np.abs(grads).sum() > 0


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_loss_is_zero_for_a_perfect_prediction():
    s, b, c = 2, 2, 3
    target = np.asarray(yolo_targets(np.array([[0, 0, 8, 6]], np.float32), np.array([1]), s, 16))
    pred = np.full((s, s, b * 5 + c), -30.0, np.float32)  # no confidence anywhere, uniform class scores
    pred[0, 0, :4] = logit(target[0, 0, :4])
    pred[0, 0, 4] = 30.0
    pred[0, 0, 5 * b + 1] = 30.0
    assert float(yolo_loss(pred, target, b)) < 1e-6
    pred[0, 0, 0] = 0.0  # move the centre: the coordinate term (times lambda_coord) appears
    assert float(yolo_loss(pred, target, b, lambda_coord=5.0)) == pytest.approx(
        5 * float(yolo_loss(pred, target, b, lambda_coord=1.0)), rel=0.05)


def test_decode_inverts_targets_and_detect_keeps_one_box_per_object():
    s, b, c, size = 4, 2, 3, 32
    boxes = np.array([[2, 3, 12, 11], [17, 18, 30, 31]], np.float32)
    target = np.asarray(yolo_targets(boxes, np.array([2, 0]), s, size))
    pred = np.full((1, s, s, b * 5 + c), -20.0, np.float32)
    for j in range(b):  # both predictors of an object cell say the same box
        pred[0, ..., 5 * j : 5 * j + 4] = logit(np.clip(target[..., :4], 1e-4, 1 - 1e-4))
        pred[0, ..., 5 * j + 4] = np.where(target[..., 4] > 0, 5.0 - j, -20.0)
    pred[0, ..., 5 * b :] = 10 * np.eye(c)[target[..., 5].astype(int)]
    out_boxes, scores, classes = decode_yolo(pred, size, b)
    assert out_boxes.shape == (1, s * s * b, 4)
    top = np.argsort(-np.asarray(scores[0]))[:4]
    np.testing.assert_allclose(np.sort(np.asarray(out_boxes[0, top]), 0), np.sort(np.repeat(boxes, 2, 0), 0), atol=0.05)
    d_boxes, d_scores, d_classes = jax.jit(lambda p: detect(p, size, b, max_outputs=5))(pred)
    assert d_boxes.shape == (1, 5, 4)
    assert sorted(np.asarray(d_classes[0]).tolist()) == [-1, -1, -1, 0, 2]  # duplicates suppressed, padding -1
    np.testing.assert_allclose(np.asarray(d_boxes[0, :2])[np.argsort(np.asarray(d_classes[0, :2]))[::-1]], boxes, atol=0.05)


def test_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"target must be \(2, 2, 6\)"):
        yolo_loss(jnp.zeros((2, 2, 13)), jnp.zeros((3, 3, 6)))
    with pytest.raises(ValueError, match="fewer than boxes_per_cell"):
        decode_yolo(jnp.zeros((2, 2, 10)), 16, 2)
