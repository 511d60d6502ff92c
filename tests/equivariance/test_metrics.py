"""Equivariance exactness where theory says so, measured failure where it does not; metric sanity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnnjax.functional as F
from cnnjax.equivariance import (
    consistency, equivariance_error, group_action, invariance_error, lie_derivative, shift, subpixel_shift,
)
from cnnjax.equivariance.metrics import compare


def _stack(n, mode, strides, rng, channels=3):
    ws = [jnp.asarray(rng.normal(size=(3,) * n + (channels, channels)) / 3, jnp.float32) for _ in strides]

    def f(x):
        for w, s in zip(ws, strides):
            x = jax.nn.relu(F.conv(x, w, stride=s, padding=1, padding_mode=mode))
        return x

    return f


@pytest.mark.parametrize("n", [1, 2, 3])
def test_circular_stride_one_stacks_are_equivariant(rng, n):
    f = _stack(n, "circular", [1, 1, 1], rng)
    x = jnp.asarray(rng.normal(size=(2,) + (8,) * n + (3,)), jnp.float32)
    shifts = rng.integers(-8, 9, size=(5, n))
    assert float(equivariance_error(f, x, shift(shifts, spatial_dims=n)).max()) < 1e-6


@pytest.mark.parametrize("k", [1, 2, 3])
def test_strided_stacks_pass_multiples_of_the_stride_and_fail_one_pixel(rng, k):
    f = _stack(1, "circular", [2] * k + [1], rng)
    x = jnp.asarray(rng.normal(size=(4, 32, 3)), jnp.float32)
    c = compare(f, x, shift([2**k, 3 * 2**k, 1], spatial_dims=1))
    err = np.asarray(c.errors())
    assert c.stride == (2**k,) and c.exact.tolist() == [True, True, False]
    assert err[:2].max() < 1e-6 and err[2] > 0.05


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_non_circular_padding_passes_only_inside_the_masked_interior(rng, mode):
    f = _stack(2, mode, [1, 1], rng)
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32)
    t = shift([(2, 0), (1, -3)], spatial_dims=2, mode="zeros")
    assert float(equivariance_error(f, x, t).min()) > 1e-2
    band = 2 + 3  # receptive-field radius of two 3x3 convs + the largest shift
    assert float(equivariance_error(f, x, t, mask=band).max()) < 1e-6
    if mode != "replicate":  # the traced receptive field does not follow edge padding (see inspect)
        assert float(equivariance_error(f, x, t, mask="border").max()) < 1e-6


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_group_equivariance_and_invariance_errors(rng):
    w = jnp.asarray(rng.normal(size=(3, 3, 1, 2)), jnp.float32)
    lift = lambda x: F.lifting_conv(x, w, group="p4m", padding=1)  # noqa: E731
    x = jnp.asarray(rng.normal(size=(2, 7, 7, 1)), jnp.float32)
    err = equivariance_error(lift, x, group_action("p4m"), out_transform=group_action("p4m", on="regular"))
    assert err.shape == (8,) and float(err.max()) < 1e-6
    inv = lambda x: F.group_pool(lift(x), "p4m").mean(axis=(1, 2))  # noqa: E731
    assert float(invariance_error(inv, x, group_action("p4m")).max()) < 1e-6
    assert float(invariance_error(lambda x: x[:, 0, 0], x, group_action("p4")).max()) > 0.1


def test_lie_derivative_agrees_with_a_finite_difference(rng):
    w = jnp.asarray(rng.normal(size=(3, 1, 4)), jnp.float32)
    f = lambda a: jnp.tanh(F.conv(a, w, padding=1)).reshape(a.shape[0], -1)[:, ::3]  # noqa: E731
    x = jnp.asarray(rng.normal(size=(3, 16, 1)), jnp.float32)
    eps = 1e-2
    t = subpixel_shift([eps, -eps], spatial_dims=1)
    fd = (f(t(x, t.params[0])) - f(t(x, t.params[1]))) / (2 * eps)
    np.testing.assert_allclose(lie_derivative(f, x, spatial_dims=1), jnp.linalg.norm(fd, axis=1), rtol=1e-2)
    circ = lambda a: F.conv(a, w, padding=1, padding_mode="circular")  # noqa: E731
    assert float(lie_derivative(circ, x, spatial_dims=1, equivariant=True).max()) < 1e-4
    assert float(lie_derivative(circ, x, spatial_dims=1).min()) > 0.1


def test_consistency_is_one_for_invariant_functions_and_lower_otherwise(rng):
    x = jnp.asarray(rng.normal(size=(64, 20, 4)), jnp.float32)
    key = jax.random.key(0)
    assert float(consistency(lambda a: a.mean(1), x, max_shift=5, key=key, spatial_dims=1)) == 1.0
    flat = jnp.broadcast_to(x[:, :1], x.shape)  # every crop of a spatially constant signal is the same
    assert float(consistency(lambda a: a.mean(1), flat, max_shift=5, key=key, spatial_dims=1, mode="crop")) == 1.0
    for mode in ["circular", "crop"]:
        # Zero shift on both sides: any function, even one that reads one position, agrees with itself.
        assert float(consistency(lambda a: a[:, 0], x, max_shift=0, key=key, spatial_dims=1, mode=mode)) == 1.0
    assert float(consistency(lambda a: a[:, 0], x, max_shift=5, key=key, spatial_dims=1)) < 0.6


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_metrics_accept_modules_without_touching_batch_stats(rng):
    from cnnjax.models import create

    model = create("resnet20", padding_mode="circular", downsample="aps")
    before = jax.tree.map(np.asarray, model.layer1[0].bn1.mean[...])
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32)
    assert float(invariance_error(model, x, shift([(1, 0), (3, 5)], spatial_dims=2)).max()) < 1e-5
    np.testing.assert_array_equal(model.layer1[0].bn1.mean[...], before)


def test_errors():
    x = jnp.ones((1, 8, 1))
    with pytest.raises(ValueError, match=r"equivariance needs an output with the input's 1 spatial dim"):
        equivariance_error(lambda a: a.sum((1, 2)), x, shift(1, spatial_dims=1))
    with pytest.raises(ValueError, match=r"mask must be None, 'border', 'disc', an int band or a boolean array"):
        equivariance_error(lambda a: a, x, shift(1, spatial_dims=1), mask="edges")
    with pytest.raises(ValueError, match=r"consistency: max_shift must be in \[0, 7\]"):
        consistency(lambda a: a, x, max_shift=9, key=jax.random.key(0), spatial_dims=1)
