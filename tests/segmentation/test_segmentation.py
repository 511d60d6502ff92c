"""Segmentation losses and metrics against numpy and scikit-learn."""

import jax
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from cnnjax.segmentation import confusion_matrix, dice_loss, iou_per_class, mean_iou, pixel_accuracy, pixel_cross_entropy


def test_pixel_cross_entropy_matches_numpy(rng):
    logits = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    labels = rng.integers(0, 6, (3, 5, 4))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -np.take_along_axis(logp, labels[..., None], -1)[..., 0].mean((1, 2))
    np.testing.assert_allclose(pixel_cross_entropy(logits, labels), want, rtol=1e-5)
    np.testing.assert_allclose(pixel_cross_entropy(logits[:, 0], labels[:, 0], spatial_dims=1),
                               -np.take_along_axis(logp[:, 0], labels[:, 0, :, None], -1)[..., 0].mean(1), rtol=1e-5)


def test_dice_matches_formula_and_vanishes_when_perfect(rng):
    logits = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 6, 6))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y = np.eye(3)[labels]
    dice = (2 * (p * y).sum((1, 2)) + 1) / (p.sum((1, 2)) + y.sum((1, 2)) + 1)
    np.testing.assert_allclose(dice_loss(logits, labels), 1 - dice.mean(-1), rtol=1e-5)
    assert np.all(np.asarray(dice_loss(100 * y, labels)) < 1e-6)
    g = jax.grad(lambda z: dice_loss(z, labels).sum())(logits)
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


def test_confusion_and_iou_match_sklearn(rng):
    labels = rng.integers(0, 4, (3, 8, 8))
    pred = np.where(rng.uniform(size=labels.shape) < 0.7, labels, rng.integers(0, 4, labels.shape))
    c = np.asarray(jax.jit(confusion_matrix, static_argnums=2)(pred, labels, 4))
    np.testing.assert_array_equal(c, sk_confusion(labels.ravel(), pred.ravel(), labels=range(4)))
    assert float(pixel_accuracy(c)) == pytest.approx((pred == labels).mean())
    np.testing.assert_allclose(iou_per_class(c), jaccard_score(labels.ravel(), pred.ravel(), average=None), rtol=1e-6)
    assert float(mean_iou(c)) == pytest.approx(jaccard_score(labels.ravel(), pred.ravel(), average="macro"), rel=1e-6)


def test_absent_classes_and_ignored_labels():
    c = confusion_matrix(np.array([0, 0, 1]), np.array([0, -1, 1]), 3)  # -1 (ignore) is not counted
    assert int(c.sum()) == 2
    assert np.isnan(iou_per_class(c)[2]) and float(mean_iou(c)) == 1.0  # class 2 never occurs


def test_shape_errors():
    with pytest.raises(ValueError, match=r"labels must have logits' shape without the class axis, \(2, 4, 4\)"):
        pixel_cross_entropy(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 5), int))
    with pytest.raises(ValueError, match="pred and labels must have one shape"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 2)
