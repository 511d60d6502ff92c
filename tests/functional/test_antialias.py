"""BlurPool and APS against numpy loops; output sizes; phase sharing; errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import aps_pool, binomial_filter, blur_pool, polyphase_components


@pytest.mark.parametrize("size", range(1, 8))
def test_binomial_taps_are_pascals_row(size):
    row = np.array([math.comb(size - 1, i) for i in range(size)], float)
    np.testing.assert_allclose(binomial_filter(size, 1), row / row.sum(), rtol=1e-6)
    np.testing.assert_allclose(binomial_filter(size, 2), np.outer(row, row) / row.sum() ** 2, rtol=1e-6)


def _blur_pool_reference(x, size, stride, mode):
    """Loop over output positions of one 1-D signal ``(L, C)`` after numpy padding."""
    taps = np.array([math.comb(size - 1, i) for i in range(size)], float)
    taps /= taps.sum()
    np_mode = {"reflect": "reflect", "zeros": "constant", "circular": "wrap", "replicate": "edge"}[mode]
    xp = np.pad(x, [((size - 1) // 2, size // 2), (0, 0)], mode=np_mode)
    return np.stack([(taps[:, None] * xp[i : i + size]).sum(0) for i in range(0, x.shape[0], stride)])


@pytest.mark.parametrize("mode", ["reflect", "zeros", "circular", "replicate"])
@pytest.mark.parametrize("size,stride,length", [(1, 2, 9), (2, 2, 10), (3, 2, 11), (5, 3, 16), (7, 2, 12)])
def test_blur_pool_matches_a_loop(rng, mode, size, stride, length):
    x = rng.normal(size=(2, length, 3))
    y = blur_pool(jnp.asarray(x, jnp.float32), size, stride, padding_mode=mode, spatial_dims=1)
    ref = np.stack([_blur_pool_reference(xi, size, stride, mode) for xi in x])
    assert y.shape == (2, -(-length // stride), 3)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_blur_pool_2d_is_separable_and_size_one_is_subsampling(rng):
    x = jnp.asarray(rng.normal(size=(2, 9, 8, 4)), jnp.float32)
    along_h = jnp.swapaxes(blur_pool(jnp.swapaxes(x, 1, 2), 3, 2, spatial_dims=1), 1, 2)
    both = blur_pool(along_h, 3, 2, spatial_dims=1)  # along W, with H as a batch dim
    np.testing.assert_allclose(blur_pool(x, 3, (2, 2)), both, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(blur_pool(x, 1, (2, 2)), x[:, ::2, ::2])


def test_blur_pool_3d_shape_and_jit_vmap(rng):
    x = jnp.asarray(rng.normal(size=(3, 6, 7, 8, 2)), jnp.float32)
    f = lambda a: blur_pool(a, 3, (2, 2, 2))  # noqa: E731
    assert f(x).shape == (3, 3, 4, 4, 2)
    np.testing.assert_allclose(jax.jit(f)(x), jax.vmap(f)(x), rtol=1e-6, atol=1e-6)


def test_polyphase_components_are_the_strided_slices(rng):
    x = jnp.asarray(rng.normal(size=(2, 6, 4, 3)), jnp.float32)
    comps = polyphase_components(x, (3, 2))
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(comps[:, i * 2 + j], x[:, i::3, j::2])


def test_aps_keeps_the_largest_norm_component_per_example(rng):
    x = jnp.asarray(rng.normal(size=(5, 8, 6, 3)), jnp.float32)
    y, phase = aps_pool(x, (2, 2), return_phase=True)
    for b in range(5):
        comps = [np.asarray(x[b, i::2, j::2]) for i in range(2) for j in range(2)]
        k = int(np.argmax([np.sum(c**2) for c in comps]))
        assert int(phase[b]) == k
        np.testing.assert_array_equal(y[b], comps[k])


def test_aps_follows_circular_shifts_and_reuses_a_phase(rng):
    x = jnp.asarray(rng.normal(size=(4, 16, 2)), jnp.float32)
    y = aps_pool(x, 2, spatial_dims=1)
    for s in range(1, 5):
        ys = aps_pool(jnp.roll(x, s, axis=1), 2, spatial_dims=1)
        # The kept component moves with the signal: each example's output is a roll of its original's.
        for b in range(4):
            assert any(np.array_equal(ys[b], jnp.roll(y[b], r, axis=0)) for r in range(8))
    _, phase = aps_pool(x, 2, spatial_dims=1, return_phase=True)
    z = jnp.asarray(rng.normal(size=(4, 16, 5)), jnp.float32)
    np.testing.assert_array_equal(aps_pool(z, 2, spatial_dims=1, phase=phase),
                                  polyphase_components(z, 2, spatial_dims=1)[jnp.arange(4), phase])


def test_aps_pads_odd_sizes_circularly_and_differentiates():
    x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)
    assert aps_pool(x, 2, spatial_dims=1).shape == (1, 3, 1)
    g = jax.grad(lambda a: aps_pool(a, 2, spatial_dims=1).sum())(x)
    assert float(g.sum()) == 3.0


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"blur_pool: filter_size must be an int from 1 to 7, got filter_size=9"):
        blur_pool(jnp.ones((1, 8, 1)), 9, 2, spatial_dims=1)
    with pytest.raises(ValueError, match=r"blur_pool: cannot tell the number of spatial dims"):
        blur_pool(jnp.ones((1, 8, 8, 1)), 3, 2)
    with pytest.raises(ValueError, match=r"polyphase_components: every spatial size must be a multiple of the stride"):
        polyphase_components(jnp.ones((1, 7, 1)), 2, spatial_dims=1)
    with pytest.raises(ValueError, match=r"aps_pool: phase must have the batch shape \(2,\)"):
        aps_pool(jnp.ones((2, 8, 1)), 2, spatial_dims=1, phase=jnp.zeros((3,), jnp.int32))
