"""Box conversion, area and IoU against numpy loops."""

import jax
import numpy as np
import pytest

from cnnjax.detection import box_area, box_convert, box_iou
from tests.detection import reference


def random_boxes(rng, n, size=32.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(0.5, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_convert_round_trip(rng, fmt):
    b = random_boxes(rng, 7)
    np.testing.assert_allclose(box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy"), b, rtol=1e-6, atol=1e-5)


def test_convert_formulas():
    b = np.array([[1.0, 2.0, 5.0, 10.0]])
    np.testing.assert_allclose(box_convert(b, "xyxy", "xywh"), [[1, 2, 4, 8]])
    np.testing.assert_allclose(box_convert(b, "xyxy", "cxcywh"), [[3, 6, 4, 8]])
    np.testing.assert_allclose(box_convert([[3.0, 6, 4, 8]], "cxcywh", "xywh"), [[1, 2, 4, 8]])


def test_area_and_iou_match_loops(rng):
    a, b = random_boxes(rng, 6), random_boxes(rng, 5)
    b[0] = a[0]  # identical boxes: IoU 1
    np.testing.assert_allclose(box_area(a), (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), rtol=1e-6)
    want = np.array([[reference.iou(x, y) for y in b] for x in a])
    got = box_iou(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(jax.jit(box_iou)(a, b), got, rtol=1e-6)
    np.testing.assert_allclose(box_iou(a[None], b[None])[0], got)  # leading batch dims


def test_degenerate_boxes_have_zero_iou():
    z = np.zeros((1, 4), np.float32)
    assert float(box_iou(z, z)[0, 0]) == 0.0


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"in_fmt must be one of xyxy, xywh, cxcywh, got 'yxyx'"):
        box_convert(np.zeros((1, 4)), "yxyx", "xyxy")
    with pytest.raises(ValueError, match=r"boxes1 must have shape \(\.\.\., 4\), got \(3, 5\)"):
        box_iou(np.zeros((3, 5)), np.zeros((2, 4)))
