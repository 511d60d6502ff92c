"""affine_grid and grid_sample: equal to torch's in every mode combination, and by-hand references without torch."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import affine_grid, grid_sample
from tests.functional import reference as ref

MODES = ["bilinear", "nearest", "bicubic"]
PADDINGS = ["zeros", "border", "reflection"]


def _torch_sample(torch, x, grid, mode, padding_mode, align_corners):
    out = torch.nn.functional.grid_sample(torch.tensor(ref.channels_first(x)), torch.tensor(grid), mode=mode,
                                          padding_mode=padding_mode, align_corners=align_corners)
    return ref.channels_last(out.numpy())


@pytest.mark.parametrize("mode, padding_mode, align_corners", list(itertools.product(MODES, PADDINGS, [False, True])))
def test_grid_sample_2d_matches_torch_on_a_random_battery(torch, mode, padding_mode, align_corners):
    rng = np.random.default_rng(hash((mode, padding_mode, align_corners)) % 2**32)
    for _ in range(2):
        n, c = rng.integers(1, 3), rng.integers(1, 4)
        h, w, ho, wo = rng.integers(1, 8, size=4)
        x = rng.normal(size=(n, h, w, c)).astype(np.float32)
        grid = rng.uniform(-1.7, 1.7, size=(n, ho, wo, 2)).astype(np.float32)  # inside and outside the image
        y = grid_sample(x, grid, mode, padding_mode, align_corners)
        np.testing.assert_allclose(y, _torch_sample(torch, x, grid, mode, padding_mode, align_corners), atol=1e-5)


@pytest.mark.parametrize("mode, padding_mode, align_corners",
                         list(itertools.product(["bilinear", "nearest"], PADDINGS, [False, True])))
def test_grid_sample_3d_matches_torch(torch, rng, mode, padding_mode, align_corners):
    x = rng.normal(size=(2, 4, 5, 3, 2)).astype(np.float32)
    grid = rng.uniform(-1.4, 1.4, size=(2, 3, 2, 4, 3)).astype(np.float32)
    y = grid_sample(x, grid, mode, padding_mode, align_corners)
    np.testing.assert_allclose(y, _torch_sample(torch, x, grid, mode, padding_mode, align_corners), atol=1e-5)


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid")
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(2, 5, 7, 3), (1, 1, 4, 1), (3, 6, 1, 2)])
def test_affine_grid_matches_torch(torch, rng, size, align_corners):
    theta = rng.normal(size=(size[0], 2, 3)).astype(np.float32)
    expected = torch.nn.functional.affine_grid(torch.tensor(theta), (size[0], size[3], size[1], size[2]),
                                               align_corners=align_corners).numpy()
    np.testing.assert_allclose(affine_grid(theta, size, align_corners), expected, atol=1e-6)
    theta3 = rng.normal(size=(2, 3, 4)).astype(np.float32)
    expected3 = torch.nn.functional.affine_grid(torch.tensor(theta3), (2, 1, 3, 4, 5), align_corners=align_corners)
    np.testing.assert_allclose(affine_grid(theta3, (2, 3, 4, 5, 1), align_corners), expected3.numpy(), atol=1e-6)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradients_match_torch(torch, rng, mode):
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    grid = rng.uniform(-1.2, 1.2, size=(2, 4, 3, 2)).astype(np.float32)
    cot = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    gx, gg = jax.grad(lambda a, g: jnp.sum(grid_sample(a, g, mode, "border") * cot), argnums=(0, 1))(x, grid)
    tx = torch.tensor(ref.channels_first(x), requires_grad=True)
    tg = torch.tensor(grid, requires_grad=True)
    out = torch.nn.functional.grid_sample(tx, tg, mode=mode, padding_mode="border", align_corners=False)
    (out * torch.tensor(ref.channels_first(cot))).sum().backward()
    np.testing.assert_allclose(gx, ref.channels_last(tx.grad.numpy()), atol=1e-4)
    np.testing.assert_allclose(gg, tg.grad.numpy(), atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("align_corners", [False, True])
def test_the_identity_grid_returns_the_input(rng, mode, align_corners):
    x = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    grid = affine_grid(np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1)), x.shape, align_corners)
    np.testing.assert_allclose(grid_sample(x, grid, mode, "zeros", align_corners), x, atol=1e-5)


def test_whole_pixel_translation_with_zeros_by_hand(rng):
    # theta's translation of 2/W in normalised units reads one pixel to the right: out[:, j] = x[:, j + 1]
    x = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    theta = np.array([[[1.0, 0.0, 2 / 5], [0.0, 1.0, 0.0]]], np.float32)
    y = np.asarray(grid_sample(x, affine_grid(theta, x.shape), "bilinear"))
    np.testing.assert_allclose(y[:, :, :-1], x[:, :, 1:], atol=1e-5)
    np.testing.assert_allclose(y[:, :, -1], 0, atol=1e-6)


def test_padding_modes_by_hand():
    x = np.arange(1.0, 5.0, dtype=np.float32).reshape(1, 1, 4, 1)  # one row: 1 2 3 4
    # x coordinates (pixel units, align_corners=False): -1.5 and 5.0 are outside the 4 pixels
    px = np.array([-1.5, 5.0], np.float32)
    grid = np.stack([(2 * px + 1) / 4 - 1, np.zeros(2, np.float32)], -1).reshape(1, 1, 2, 2).astype(np.float32)
    out = {p: np.asarray(grid_sample(x, grid, "bilinear", p))[0, 0, :, 0] for p in PADDINGS}
    np.testing.assert_allclose(out["zeros"], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out["border"], [1.0, 4.0], atol=1e-6)
    # reflection about the outer edges (-0.5 and 3.5): -1.5 -> 0.5, 5.0 -> 2.0
    np.testing.assert_allclose(out["reflection"], [1.5, 3.0], atol=1e-6)


def test_nearest_rounds_half_to_even_like_pytorch():
    x = np.arange(4.0, dtype=np.float32).reshape(1, 1, 4, 1)
    px = np.array([0.5, 1.5, 2.5], np.float32)  # ties
    grid = np.stack([(2 * px + 1) / 4 - 1, np.zeros(3, np.float32)], -1).reshape(1, 1, 3, 2).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(grid_sample(x, grid, "nearest"))[0, 0, :, 0], [0.0, 2.0, 2.0])


def test_batch_dims_broadcast_and_it_jits_and_vmaps(rng):
    x = rng.normal(size=(3, 2, 5, 5, 1)).astype(np.float32)
    grid = rng.uniform(-1, 1, size=(2, 4, 4, 2)).astype(np.float32)  # shared by the leading 3
    y = jax.jit(grid_sample)(x, grid)
    assert y.shape == (3, 2, 4, 4, 1)
    np.testing.assert_allclose(y[1], grid_sample(x[1], grid), atol=1e-6)
    np.testing.assert_allclose(jax.vmap(grid_sample, in_axes=(0, None))(x, grid), y, atol=1e-6)


def test_errors_name_the_function_and_argument():
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="grid_sample: mode must be one of"):
        grid_sample(x, np.zeros((1, 2, 2, 2), np.float32), "area")
    with pytest.raises(ValueError, match="grid_sample: padding_mode must be one of"):
        grid_sample(x, np.zeros((1, 2, 2, 2), np.float32), padding_mode="circular")
    with pytest.raises(ValueError, match="grid_sample: grid must be"):
        grid_sample(x, np.zeros((1, 2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="bicubic.*images only"):
        grid_sample(np.ones((1, 3, 3, 3, 1), np.float32), np.zeros((1, 2, 2, 2, 3), np.float32), "bicubic")
    with pytest.raises(ValueError, match="batch dims of x"):
        grid_sample(np.ones((2, 4, 4, 1), np.float32), np.zeros((3, 2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="grid must be floating point"):
        grid_sample(x, np.zeros((1, 2, 2, 2), np.int32))
    with pytest.raises(ValueError, match="affine_grid: theta must be"):
        affine_grid(np.ones((1, 2, 2)), (1, 4, 4, 1))
    with pytest.raises(ValueError, match="affine_grid: size must be"):
        affine_grid(np.ones((1, 2, 3)), (4, 4))
    with pytest.raises(ValueError, match="batch dims"):
        affine_grid(np.ones((2, 2, 3)), (1, 4, 4, 1))
