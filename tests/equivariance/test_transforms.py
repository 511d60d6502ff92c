"""Transforms against numpy, vmapped over their parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.equivariance import flip, group_action, rot90, shift, subpixel_shift


@pytest.mark.parametrize("n", [1, 2, 3])
def test_shift_matches_numpy_roll_and_zero_fill(rng, n):
    x = rng.normal(size=(2,) + (6,) * n + (3,))
    shifts = rng.integers(-5, 6, size=(4, n))
    axes = tuple(range(1, n + 1))
    circ = shift(shifts, spatial_dims=n).apply_all(jnp.asarray(x))
    zero = shift(shifts, spatial_dims=n, mode="zeros").apply_all(jnp.asarray(x))
    for p, s in enumerate(shifts):
        np.testing.assert_allclose(circ[p], np.roll(x, tuple(s), axis=axes), rtol=1e-6)
        ref = np.zeros_like(x)
        src = tuple(slice(max(0, -k), 6 - max(0, k)) for k in s)
        dst = tuple(slice(max(0, k), 6 - max(0, -k)) for k in s)
        ref[(slice(None),) + dst] = x[(slice(None),) + src]
        np.testing.assert_allclose(zero[p], ref, rtol=1e-6)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_subpixel_shifts_are_exact_at_whole_pixels_and_compose(rng):
    x = jnp.asarray(rng.normal(size=(2, 12, 10, 3)), jnp.float32)
    for method, mode in [("fft", "circular"), ("linear", "circular"), ("linear", "zeros")]:
        t = subpixel_shift([(2.0, -3.0)], spatial_dims=2, method=method, mode=mode)
        np.testing.assert_allclose(t(x), shift((2, -3), spatial_dims=2, mode=mode)(x), atol=1e-5)
    # Odd sizes: no Nyquist bin, whose half-pixel phase would turn imaginary and be dropped.
    odd = jnp.asarray(rng.normal(size=(2, 11, 9, 3)), jnp.float32)
    half = subpixel_shift(0.5, spatial_dims=2, method="fft")
    np.testing.assert_allclose(half(half(odd)), shift(1, spatial_dims=2)(odd), atol=1e-5)


def test_flip_rot90_and_group_actions_match_numpy(rng):
    x = rng.normal(size=(2, 5, 5, 8)).astype(np.float32)
    np.testing.assert_array_equal(flip([True, False])(jnp.asarray(x)), x[:, ::-1])
    np.testing.assert_array_equal(flip([[False, True]])(jnp.asarray(x)), x[:, :, ::-1])
    for k, y in zip([1, 2, 3], rot90().apply_all(jnp.asarray(x))):
        np.testing.assert_array_equal(y, np.rot90(x, k, axes=(1, 2)))
    imgs = group_action("p4m").apply_all(jnp.asarray(x))
    np.testing.assert_array_equal(imgs[5], np.rot90(x[:, :, ::-1], 1, axes=(1, 2)))
    regular = group_action("p4", on="regular", elements=[1]).apply_all(jnp.asarray(x))[0]
    moved = np.rot90(x, 1, axes=(1, 2)).reshape(2, 5, 5, 2, 4)[..., [3, 0, 1, 2]].reshape(2, 5, 5, 8)
    np.testing.assert_array_equal(regular, moved)


def test_transforms_vmap_and_jit_over_traced_parameters(rng):
    x = jnp.asarray(rng.normal(size=(1, 6, 6, 2)), jnp.float32)
    t = shift([(1, 2), (3, -1)], spatial_dims=2)
    np.testing.assert_array_equal(jax.jit(t.apply_all)(x), t.apply_all(x))
    r = rot90()
    np.testing.assert_array_equal(jax.jit(r.fn)(x, jnp.int32(3)), jnp.rot90(x, 3, axes=(1, 2)))


def test_rescaled_shift_divides_by_the_stride():
    t = shift([(4, 2), (1, 0)], spatial_dims=2)
    assert t.exact_under((2, 2)).tolist() == [True, False]
    assert t.with_params([(4, 2)]).rescaled((2, 2)).params.tolist() == [[2, 1]]
    assert t.rescaled((2, 2)).params.tolist() == [[2.0, 1.0], [0.5, 0.0]]
    assert rot90().rescaled((2, 2)) is not None


def test_errors():
    with pytest.raises(ValueError, match=r"shift: mode must be one of \('circular', 'zeros'\)"):
        shift(1, spatial_dims=1, mode="reflect")
    with pytest.raises(ValueError, match=r"shift: shifts must be one shift per spatial dim \(2\)"):
        shift([(1, 2, 3)], spatial_dims=2)
    with pytest.raises(ValueError, match=r"rot90: the rotated plane must be square"):
        rot90()(jnp.ones((1, 4, 5, 1)))
    with pytest.raises(ValueError, match=r"group_action: elements of 'p4' are 0..3"):
        group_action("p4", elements=[4])
