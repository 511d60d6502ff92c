"""Augmentations: pure, jit-able, one draw per example, and each does what it says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data import augment, tta_predict
from cnnjax.data.augment import brightness_contrast, horizontal_flip, random_crop, rotate90, translate


def _batch(n=16, size=8):
    return jnp.asarray(np.random.default_rng(0).normal(size=(n, size, size, 2)), jnp.float32)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_circular_translation_is_a_roll_per_example():
    x = _batch()
    y = translate(jax.random.key(0), x, max_shift=3, mode="circular")
    for i in range(len(x)):
        matches = [(a, b) for a in range(-3, 4) for b in range(-3, 4) if np.array_equal(y[i], jnp.roll(x[i], (a, b), axis=(0, 1)))]
        assert matches, i
    assert not all(np.array_equal(y[i], x[i]) for i in range(len(x)))  # something moved


def test_zero_fill_translation_and_crop_keep_shape_and_content():
    x = _batch()
    for f in (lambda k, a: translate(k, a, max_shift=2), lambda k, a: random_crop(k, a, padding=2)):
        y = f(jax.random.key(1), x)
        assert y.shape == x.shape
        # every value either comes from the same example or is the zero fill
        for i in range(len(x)):
            vals = set(np.asarray(y[i]).ravel().tolist()) - {0.0}
            assert vals <= set(np.asarray(x[i]).ravel().tolist())


def test_flip_rot90_color():
    x = _batch()
    y = horizontal_flip(jax.random.key(2), x)
    flipped = [np.array_equal(y[i], x[i, :, ::-1]) for i in range(len(x))]
    kept = [np.array_equal(y[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    r = rotate90(jax.random.key(3), x)
    assert all(any(np.array_equal(r[i], jnp.rot90(x[i], k, axes=(0, 1))) for k in range(4)) for i in range(len(x)))
    c = brightness_contrast(jax.random.key(4), x, brightness=0.0, contrast=0.0)
    np.testing.assert_allclose(c, x, rtol=1e-6, atol=1e-6)


def test_augment_composes_jits_and_is_deterministic_per_key():
    f = jax.jit(augment("crop,flip,color"))
    x = _batch()
    np.testing.assert_array_equal(f(jax.random.key(0), x), f(jax.random.key(0), x))
    assert not np.array_equal(f(jax.random.key(0), x), f(jax.random.key(1), x))
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['blur'\]; choose from translate"):
        augment("flip,blur")


def test_tta_averages_probabilities_over_views():
    x = _batch(4)
    predict = lambda a: a.mean(axis=(1, 2))  # noqa: E731  (logits from 2 channels)
    p = tta_predict(predict, x, flips=True, shifts=1)
    assert p.shape == (4, 2)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    # a position-independent predictor is unchanged by flips and circular shifts
    np.testing.assert_allclose(p, jax.nn.softmax(predict(x)), rtol=1e-5, atol=1e-6)
