"""SpatialTransformer: the identity at initialisation, a predicted affine map applied, gradients reach the localization net."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cnnjax.functional as F
from cnnjax import nn


def _loc(features=8):
    return nnx.Sequential(lambda x: x.reshape(x.shape[0], -1), nn.Linear(64, features, rngs=nnx.Rngs(0)), jnp.tanh)


def test_starts_as_the_identity_and_resamples_by_the_predicted_theta(rng):
    x = jnp.asarray(rng.normal(size=(3, 8, 8, 1)).astype(np.float32))
    stn = nn.SpatialTransformer(_loc(), 8, rngs=nnx.Rngs(1))
    np.testing.assert_allclose(stn(x), x, atol=1e-5)
    stn.head.bias[...] = jnp.array([0.5, 0.0, 0.0, 0.0, 0.5, 0.0])  # zoom in 2x about the centre
    theta = jnp.tile(jnp.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]), (3, 1, 1))
    np.testing.assert_allclose(stn(x), F.grid_sample(x, F.affine_grid(theta, x.shape)), atol=1e-6)


def test_output_size_and_gradients_reach_the_localization_net(rng):
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 1)).astype(np.float32))
    stn = nn.SpatialTransformer(_loc(), 8, output_size=(4, 5), rngs=nnx.Rngs(1))
    assert stn(x).shape == (2, 4, 5, 1)
    stn.head.kernel[...] = 0.1 * jnp.ones_like(stn.head.kernel[...])
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(stn)
    assert float(jnp.abs(grads["localization"]["layers"][1]["kernel"][...]).max()) > 0


def test_bad_configuration_fails_when_built():
    with pytest.raises(ValueError, match="SpatialTransformer: mode must be"):
        nn.SpatialTransformer(_loc(), 8, mode="area")
    with pytest.raises(ValueError, match="SpatialTransformer: padding_mode must be"):
        nn.SpatialTransformer(_loc(), 8, padding_mode="circular")
    with pytest.raises(TypeError, match="SpatialTransformer: localization must be a callable"):
        nn.SpatialTransformer(3, 8)
    with pytest.raises(ValueError, match=r"SpatialTransformer: x must be \(B, H, W, C\)"):
        nn.SpatialTransformer(_loc(), 8)(jnp.ones((8, 8, 1)))
