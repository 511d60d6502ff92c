"""Sliding windows and pyramids; a fully convolutional classifier's dense map equals window-by-window scoring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import nn
from cnnjax.detection import image_pyramid, sliding_window_scores, sliding_windows


def test_windows_are_the_slices(rng):
    img = rng.normal(size=(2, 13, 11, 3)).astype(np.float32)
    w = np.asarray(sliding_windows(img, (5, 4), (3, 2)))
    assert w.shape == (2, 3, 4, 5, 4, 3)
    for i in range(3):
        for j in range(4):
            np.testing.assert_array_equal(w[:, i, j], img[:, 3 * i : 3 * i + 5, 2 * j : 2 * j + 4])


class FullyConvClassifier(nnx.Module):
    """conv 3x3 -> ReLU -> 2x2 max pool -> a 'fully connected' layer written as a conv covering the rest."""

    def __init__(self, window, rngs):
        self.conv = nn.Conv(1, 4, (3, 3), rngs=rngs)
        self.fc = nn.Conv(4, 3, ((window - 2) // 2,) * 2, rngs=rngs)

    def __call__(self, x):
        return self.fc(nn.MaxPool((2, 2))(jax.nn.relu(self.conv(x))))


def test_dense_score_map_equals_window_by_window(rng):
    window = 12
    model = FullyConvClassifier(window, nnx.Rngs(0))
    image = rng.normal(size=(1, 28, 24, 1)).astype(np.float32)
    forward = nnx.jit(lambda m, x: m(x))  # one program per input shape, not one per op
    dense = forward(model, image)  # one pass over the whole image; total stride 2
    brute = sliding_window_scores(lambda crops: forward(model, crops)[:, 0, 0], image, window, stride=2)
    assert dense.shape == brute.shape == (1, 9, 7, 3)
    np.testing.assert_allclose(dense, brute, rtol=1e-5, atol=1e-5)


def test_pyramid_sizes_and_identity_level(rng):
    img = rng.normal(size=(20, 30, 2)).astype(np.float32)
    levels = image_pyramid(img, [1.0, 0.5, 0.25])
    assert [lv.shape for lv in levels] == [(20, 30, 2), (10, 15, 2), (5, 8, 2)]
    np.testing.assert_allclose(levels[0], img, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match=r"window \(40, 40\) is larger than the image's \(H, W\) = \(32, 32\)"):
        sliding_windows(jnp.zeros((32, 32, 1)), 40)
    with pytest.raises(ValueError, match="scales must be a non-empty list of factors > 0"):
        image_pyramid(jnp.zeros((8, 8, 1)), [0.0])


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _brute_force_multiscale(classify, image, window, stride, scales, background, score_threshold, iou_threshold):
    """A loop over levels, positions and classes: boxes by hand, greedy NMS per class in numpy."""
    import cnnjax.functional as F

    h, w = image.shape[:2]
    cands = []
    for s in scales:
        hk, wk = max(1, round(h * s)), max(1, round(w * s))
        level = np.asarray(F.resize(jnp.asarray(image), (hk, wk), "bilinear"))
        corners = [(i, j) for i in range(0, hk - window + 1, stride) for j in range(0, wk - window + 1, stride)]
        if not corners:
            continue
        crops = np.stack([level[i:i + window, j:j + window] for i, j in corners])
        for (i, j), p in zip(corners, np.asarray(classify(jnp.asarray(crops))).astype(np.float64)):
            p[background] = -np.inf
            c = int(np.argmax(p))
            if p[c] > score_threshold:
                box = (j * w / wk, i * h / hk, (j + window) * w / wk, (i + window) * h / hk)
                cands.append((float(p[c]), c, box))
    kept = []
    for score, c, box in sorted(cands, key=lambda t: -t[0]):
        if all(k[1] != c or _iou(k[2], box) <= iou_threshold for k in kept):
            kept.append((score, c, box))
    return kept


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_multiscale_detect_equals_a_brute_force_loop(rng):
    from cnnjax.detection import multiscale_detect

    weights = jnp.asarray(rng.normal(size=(8 * 8, 3)), jnp.float32)
    classify = jax.jit(lambda win: jax.nn.softmax(win.reshape(win.shape[0], -1) @ weights))  # 0: background
    image = np.zeros((30, 26, 1), np.float32)
    image[4:16, 5:15] = rng.uniform(0.5, 1.0, size=(12, 10, 1))
    image[18:28, 12:24] = rng.uniform(0.5, 1.0, size=(10, 12, 1))
    args = dict(window=8, stride=3, scales=[1.0, 0.8, 0.6, 0.4])
    boxes, scores, classes = multiscale_detect(classify, image, **args, background=0, score_threshold=0.4,
                                               iou_threshold=0.3, max_outputs=40)
    kept = _brute_force_multiscale(classify, image, **args, background=0, score_threshold=0.4, iou_threshold=0.3)
    n = int((classes >= 0).sum())
    assert n == len(kept) > 0
    np.testing.assert_allclose(scores[:n], [k[0] for k in kept], rtol=1e-5)
    np.testing.assert_array_equal(classes[:n], [k[1] for k in kept])
    np.testing.assert_allclose(boxes[:n], [k[2] for k in kept], rtol=1e-5, atol=1e-4)
    assert float(scores[n:].max(initial=0)) == 0 and (np.asarray(classes[n:]) == -1).all()
    # batched: the same per image
    b2, s2, c2 = multiscale_detect(classify, np.stack([image, image[::-1]]), **args, background=0,
                                   score_threshold=0.4, iou_threshold=0.3, max_outputs=40)
    np.testing.assert_allclose(b2[0], boxes, atol=1e-5)
    # class-agnostic NMS never keeps two boxes overlapping more than the threshold
    ba, _, ca = multiscale_detect(classify, image, **args, background=0, score_threshold=0.4, iou_threshold=0.3,
                                  max_outputs=40, class_agnostic=True)
    live = [tuple(b) for b, c in zip(np.asarray(ba), np.asarray(ca)) if c >= 0]
    assert all(_iou(a, b) <= 0.3 for k, a in enumerate(live) for b in live[k + 1:])


def test_multiscale_detect_errors():
    from cnnjax.detection import multiscale_detect

    f = lambda w: jnp.ones((w.shape[0], 2))  # noqa: E731
    with pytest.raises(ValueError, match="multiscale_detect: the window"):
        multiscale_detect(f, jnp.zeros((8, 8, 1)), 16, 1, [1.0, 0.5])
    with pytest.raises(ValueError, match="multiscale_detect: background must be a class index"):
        multiscale_detect(f, jnp.zeros((8, 8, 1)), 4, 2, [1.0], background=5)
