"""Classic filters: layout, formulas, and what each detects."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from cnnjax.functional import conv, filters


def test_layouts():
    assert filters.sobel().shape == (3, 3, 1, 2)
    assert filters.prewitt().shape == (3, 3, 1, 2)
    assert filters.box((3, 5)).shape == (3, 5, 1, 1)
    assert filters.gaussian(7, 1.5).shape == (7, 7, 1, 1)
    assert filters.laplacian_of_gaussian(9, 1.4).shape == (9, 9, 1, 1)
    assert filters.gabor(11, 3.0, np.linspace(0, np.pi, 6, endpoint=False), 5.0).shape == (11, 11, 1, 6)
    assert filters.sobel(jnp.bfloat16).dtype == jnp.bfloat16


def test_sobel_and_prewitt_find_vertical_and_horizontal_edges():
    step = np.zeros((8, 8, 1), np.float32)
    step[:, 4:] = 1.0  # brighter to the right: a vertical edge
    for k in (filters.sobel(), filters.prewitt()):
        g = np.asarray(conv(step, k))
        assert g[..., 0].max() > 0 and g[..., 0].min() == 0  # d/dx fires, with the right sign
        np.testing.assert_array_equal(g[..., 1], 0)  # d/dy silent
        gt = np.asarray(conv(step.transpose(1, 0, 2), k))
        np.testing.assert_array_equal(gt[..., 0], 0)
        assert gt[..., 1].max() > 0


def test_sobel_matches_scipy():
    image = np.random.default_rng(0).normal(size=(10, 12))
    g = conv(jnp.asarray(image[..., None], jnp.float32), filters.sobel(), padding=1, padding_mode="reflect")
    # scipy's sobel along axis 1 is d/dx; its 'mirror' equals our 'reflect' (edge not repeated).
    np.testing.assert_allclose(g[..., 0], scipy.ndimage.sobel(image, axis=1, mode="mirror"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g[..., 1], scipy.ndimage.sobel(image, axis=0, mode="mirror"), rtol=1e-5, atol=1e-5)


def test_box_and_gaussian_are_normalised_blurs():
    np.testing.assert_allclose(filters.box(3)[..., 0, 0], np.full((3, 3), 1 / 9), rtol=1e-6)
    g = np.asarray(filters.gaussian(7, 1.0))[..., 0, 0]
    assert g.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(g, g.T)
    assert g[3, 3] == g.max()
    ratio = g[3, 4] / g[3, 3]
    assert ratio == pytest.approx(np.exp(-0.5), rel=1e-5)  # exp(-r^2 / (2 sigma^2)) at r = 1
    impulse = np.zeros((15, 15)); impulse[7, 7] = 1
    # Blurring an impulse reproduces scipy's (truncated, renormalised) Gaussian.
    expected = scipy.ndimage.gaussian_filter(impulse, 1.0, truncate=3.0, mode="constant")[4:11, 4:11]
    np.testing.assert_allclose(g / g.sum(), expected / expected.sum(), rtol=1e-4, atol=1e-6)


def test_laplacian_of_gaussian_is_zero_mean_and_finds_blobs():
    log = filters.laplacian_of_gaussian(9, 1.4)
    assert abs(float(log.sum())) < 1e-6
    image = np.zeros((21, 21, 1), np.float32)
    yy, xx = np.mgrid[:21, :21]
    image[(yy - 10) ** 2 + (xx - 10) ** 2 <= 4, 0] = 1.0  # a bright disc of radius 2
    r = np.asarray(conv(image, log, padding="SAME"))[..., 0]
    assert np.unravel_index(r.argmin(), r.shape) == (10, 10)
    np.testing.assert_allclose(r[:3, :3], 0, atol=1e-6)  # flat regions give nothing


def test_gabor_formula_and_orientation_selectivity():
    k = np.asarray(filters.gabor(9, 2.0, 0.0, 4.0, gamma=0.5, psi=0.3))[..., 0, 0]
    y, x = np.mgrid[-4:5, -4:5]
    expected = np.exp(-(x**2 + 0.25 * y**2) / 8.0) * np.cos(2 * np.pi * x / 4.0 + 0.3)
    np.testing.assert_allclose(k, expected, rtol=1e-6, atol=1e-7)
    bank = filters.gabor(15, 3.0, [0.0, np.pi / 2], 6.0)
    stripes = np.cos(2 * np.pi * np.arange(31) / 6.0)[None, :].repeat(31, 0)[..., None]  # vary along x
    energy = np.abs(np.asarray(conv(jnp.asarray(stripes, jnp.float32), bank))).mean(axis=(0, 1))
    assert energy[0] > 10 * energy[1]  # theta=0 tunes to variation along x


def test_filter_errors():
    with pytest.raises(ValueError, match=r"gaussian: sigma must be > 0, got sigma=0"):
        filters.gaussian(5, 0)
    with pytest.raises(ValueError, match=r"box: every entry of k must be >= 1"):
        filters.box(0)
