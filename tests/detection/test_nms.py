"""Fixed-size NMS against a greedy numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax.detection import batched_nms, nms
from tests.detection import reference
from tests.detection.test_boxes import random_boxes


_jit_nms = jax.jit(nms, static_argnames="max_outputs")  # one compile per n; eager == jit is checked below


def kept(idx):
    idx = np.asarray(idx)
    return idx[idx >= 0].tolist()


@given(n=st.integers(1, 30), thr=st.sampled_from([0.1, 0.3, 0.5, 0.7]), seed=st.integers(0, 10_000))
def test_nms_matches_greedy_reference(n, thr, seed):
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, n, 20.0), rng.permutation(n).astype(np.float32)  # distinct scores
    got = _jit_nms(boxes, scores, thr, max_outputs=n)
    assert got.shape == (n,) and got.dtype == jnp.int32
    assert kept(got) == reference.nms(boxes, scores, thr)
    assert np.all(np.asarray(got)[len(kept(got)):] == -1)  # padding only at the end


def test_nms_jit_vmap_and_truncation(rng):
    boxes, scores = random_boxes(rng, 40, 16.0), rng.uniform(size=40).astype(np.float32)
    eager = nms(boxes, scores, 0.4, max_outputs=5)
    f = jax.jit(nms, static_argnames="max_outputs")
    np.testing.assert_array_equal(f(boxes, scores, 0.4, max_outputs=5), eager)
    assert kept(eager) == reference.nms(boxes, scores, 0.4)[:5]
    batch = jax.vmap(lambda b, s: nms(b, s, 0.4, 5))(np.stack([boxes, boxes[::-1]]), np.stack([scores, scores[::-1]]))
    np.testing.assert_array_equal(batch[0], eager)
    np.testing.assert_array_equal(batch[1], np.where(eager >= 0, 39 - eager, -1))


def test_nms_score_threshold_and_nonfinite_scores():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]], np.float32)
    assert kept(nms(boxes, np.array([0.9, 0.2, np.nan]), 0.5, 3, score_threshold=0.3)) == [0]


def test_batched_nms_matches_per_class_reference(rng):
    boxes, scores = random_boxes(rng, 30, 12.0), rng.uniform(size=30).astype(np.float32)
    classes = rng.integers(0, 3, 30)
    got = batched_nms(boxes, scores, classes, 0.3, max_outputs=30)
    assert kept(got) == reference.batched_nms(boxes, scores, classes, 0.3)
    classes[0] = -1  # padding is never kept
    assert 0 not in kept(batched_nms(boxes, scores, classes, 0.3, max_outputs=30))


def test_nms_shape_errors():
    with pytest.raises(ValueError, match=r"expected boxes \(N, 4\) and scores \(N,\), got \(3, 4\) and \(2,\)"):
        nms(np.zeros((3, 4)), np.zeros(2))
