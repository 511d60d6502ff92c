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
