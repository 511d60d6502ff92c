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


def _battery(seed, count):
    """Random interpolate calls: every mode, sizes and scale factors, align_corners, antialias."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        spatial = tuple(int(v) for v in rng.integers(2, 17, 2))
        mode = ["nearest", "nearest-exact", "bilinear", "bicubic", "area"][len(cases) % 5]
        smooth = mode in ("bilinear", "bicubic")
        antialias = bool(smooth and rng.random() < 0.5)
        align = bool(rng.random() < 0.4) if smooth else None
        if rng.random() < 0.5:
            kw = {"size": tuple(int(v) for v in rng.integers(1, 30, 2))}
        else:
            sf = tuple(float(v) for v in np.round(rng.uniform(0.25, 3.0, 2), 3))
            if min(int(i * s) for i, s in zip(spatial, sf)) < 1:
                continue
            kw = {"scale_factor": sf, "recompute_scale_factor": bool(rng.random() < 0.3)}
        cases.append((spatial, mode, align, antialias, kw))
    return cases


@pytest.mark.parametrize("spatial, mode, align, antialias, kw", _battery(0, 30))
def test_resize_random_battery_matches_torch_interpolate(torch, rng, spatial, mode, align, antialias, kw):
    x = rng.normal(size=(2, *spatial, 3)).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.tensor(ref.channels_first(x)), mode=mode, align_corners=align, antialias=antialias, **kw)
    size, rest = kw.get("size"), {k: v for k, v in kw.items() if k != "size"}
    y = resize(x, size, mode, bool(align), antialias=antialias, **rest)
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-5, atol=1e-5)


def test_antialias_does_not_alias_fine_stripes():
    # stripes of period 4 shrunk 6.4x: plain bilinear samples two pixels per output and aliases
    # into a false pattern; antialias stretches the filter over every pixel and stays near the
    # mean 1/4; "area" averages whole blocks (period 3 shrunk 6x: exactly 1/3)
    x = jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0]), 16).reshape(64, 1)
    np.testing.assert_allclose(resize(x, (10,), "bilinear", antialias=True)[:, 0], 0.25, atol=0.03)
    assert float(jnp.ptp(resize(x, (10,), "bilinear")[:, 0])) > 0.6
    x3 = jnp.tile(jnp.array([1.0, 0.0, 0.0]), 16).reshape(48, 1)
    np.testing.assert_allclose(resize(x3, (8,), "area")[:, 0], 1 / 3, atol=1e-6)


def test_antialias_upsampling_a_single_pixel_is_constant():
    # PyTorch 2.13 returns zeros for a size-1 input dim under antialias (a bug); the definition
    # (weights normalised inside the image) gives the pixel's value everywhere
    y = resize(jnp.full((1, 3, 2), 5.0), (7, 3), "bicubic", antialias=True)
    np.testing.assert_allclose(y, 5.0, rtol=1e-6)


def test_nearest_exact_picks_block_centres_and_nearest_picks_corners():
    x = jnp.arange(9.0).reshape(9, 1)
    np.testing.assert_array_equal(resize(x, (3,), "nearest-exact")[:, 0], [1, 4, 7])
    np.testing.assert_array_equal(resize(x, (3,), "nearest")[:, 0], [0, 3, 6])
    np.testing.assert_array_equal(resize(x, scale_factor=1 / 3, method="nearest-exact", spatial_dims=1)[:, 0], [1, 4, 7])


def test_scale_factor_uses_its_own_scale_unless_recomputed():
    # in=5, s=1.5 -> out=7; the kernel uses 1/1.5 (not 5/7) unless recompute_scale_factor=True
    x = jnp.arange(5.0).reshape(5, 1)
    y = resize(x, scale_factor=1.5, method="bilinear", spatial_dims=1)[:, 0]
    src = np.clip((np.arange(7) + 0.5) / 1.5 - 0.5, 0, 4)
    np.testing.assert_allclose(y, src, rtol=1e-6)
    np.testing.assert_allclose(resize(x, scale_factor=1.5, method="bilinear", spatial_dims=1, recompute_scale_factor=True),
                               resize(x, (7,), "bilinear"), rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=(4, 4), scale_factor=2.0), "exactly one of size and scale_factor"),
    (dict(), "exactly one of size and scale_factor"),
    (dict(size=(4, 4), method="nearest", antialias=True), "antialias=True only applies"),
    (dict(size=(4, 4), method="area", align_corners=True), "align_corners=True only applies"),
    (dict(size=(4, 4), method="box"), "unknown method 'box'"),
    (dict(size=(4, 4), recompute_scale_factor=True), "recompute_scale_factor only applies"),
    (dict(scale_factor=2.0), "cannot tell the number of spatial dims"),
    (dict(scale_factor=(2.0, -1.0)), "positive finite"),
    (dict(scale_factor=(0.01, 0.01)), "every output dim must be >= 1"),
])
def test_resize_errors_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        resize(jnp.ones((1, 8, 8, 1)), **kwargs)
