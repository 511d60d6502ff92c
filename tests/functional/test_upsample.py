"""upsample_nearest, resize (== torch interpolate), pixel_shuffle/unshuffle."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import pixel_shuffle, pixel_unshuffle, resize, upsample_nearest
from tests.functional import reference as ref

TORCH_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def test_upsample_nearest_duplicates():
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]])[..., None]
    expected = [[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4], [3, 3, 3, 4, 4, 4]]
    np.testing.assert_array_equal(upsample_nearest(x, (2, 3))[..., 0], expected)
    np.testing.assert_array_equal(upsample_nearest(x, 2, spatial_dims=2), resize(x, (4, 4)))


@pytest.mark.parametrize("size", [(14, 16), (3, 4), (7, 8), (1, 1), (13, 5), (21, 24)])
@pytest.mark.parametrize("method, align_corners", [("nearest", None), ("bilinear", False), ("bilinear", True), ("bicubic", False), ("bicubic", True)])
def test_resize_2d_matches_torch_interpolate(torch, rng, size, method, align_corners):
    x = rng.normal(size=(2, 7, 8, 3))
    expected = torch.nn.functional.interpolate(torch.tensor(ref.channels_first(x)), size=size, mode=method, align_corners=align_corners)
    y = resize(x.astype(np.float32), size, method, align_corners=bool(align_corners))
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_linear_1d_3d_matches_torch(torch, rng, n, align_corners):
    spatial, size = {1: ((9,), (20,)), 3: ((4, 5, 3), (7, 3, 6))}[n]
    x = rng.normal(size=(2, *spatial, 3))
    expected = torch.nn.functional.interpolate(torch.tensor(ref.channels_first(x)), size=size, mode=TORCH_MODE[n], align_corners=align_corners)
    y = resize(x.astype(np.float32), size, "bilinear", align_corners=align_corners)
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-5, atol=1e-5)


def test_resize_nearest_by_hand():
    # PyTorch's legacy nearest: src = floor(dst * in / out)
    x = jnp.arange(5.0).reshape(5, 1)
    np.testing.assert_array_equal(resize(x, (3,))[:, 0], [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(resize(x, (8,))[:, 0], [0, 0, 1, 1, 2, 3, 3, 4])


def test_bilinear_align_corners_reproduces_a_linear_ramp():
    yy, xx = np.meshgrid(np.arange(5.0), np.arange(7.0), indexing="ij")
    ramp = (2 * yy - 3 * xx)[..., None].astype(np.float32)
    up = resize(ramp, (9, 13), "bilinear", align_corners=True)
    yy2, xx2 = np.meshgrid(np.linspace(0, 4, 9), np.linspace(0, 6, 13), indexing="ij")
    np.testing.assert_allclose(up[..., 0], 2 * yy2 - 3 * xx2, rtol=1e-5, atol=1e-5)


def test_resize_is_identity_at_the_same_size(rng):
    x = rng.normal(size=(6, 5, 2)).astype(np.float32)
    for method in ("nearest", "bilinear", "bicubic"):
        np.testing.assert_allclose(resize(x, (6, 5), method), x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_matches_torch_and_roundtrips(torch, rng, r):
    x = rng.normal(size=(2, 4, 5, 3 * r * r)).astype(np.float32)
    y = pixel_shuffle(x, r, spatial_dims=2)
    expected = torch.nn.functional.pixel_shuffle(torch.tensor(ref.channels_first(x)), r)
    np.testing.assert_array_equal(y, ref.channels_last(expected.numpy()))
    np.testing.assert_array_equal(pixel_unshuffle(y, (r, r)), x)


def test_pixel_shuffle_1d_and_3d_roundtrip(rng):
    for shape, r in (((2, 5, 6), (3,)), ((2, 3, 2, 4, 8), (2, 1, 2))):
        x = rng.normal(size=shape).astype(np.float32)
        y = pixel_shuffle(x, r)
        assert y.shape[-1] == shape[-1] // int(np.prod(r))
        np.testing.assert_array_equal(pixel_unshuffle(y, r), x)


def test_pixel_shuffle_channel_order_by_hand():
    # channel c*r*r + i*r + j goes to output pixel (i, j) of channel c
    x = jnp.arange(8.0).reshape(1, 1, 8)
    y = pixel_shuffle(x, (2, 2))
    np.testing.assert_array_equal(y[..., 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(y[..., 1], [[4, 5], [6, 7]])
