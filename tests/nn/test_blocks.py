"""The modern families' layers: SqueezeExcitation (a numpy formula), StochasticDepth (train/eval), LayerScale."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import nn


def test_squeeze_excitation_is_its_formula():
    se = nn.SqueezeExcitation(6, 3, activation=jax.nn.silu, scale_activation=jax.nn.hard_sigmoid, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 5, 4, 6)).astype(np.float32)
    w1, b1 = np.asarray(se.fc1.kernel[...]).reshape(6, 3), np.asarray(se.fc1.bias[...])
    w2, b2 = np.asarray(se.fc2.kernel[...]).reshape(3, 6), np.asarray(se.fc2.bias[...])
    s = x.mean(axis=(1, 2))
    h = s @ w1 + b1
    h = h / (1 + np.exp(-h))  # SiLU
    g = np.clip((h @ w2 + b2) + 3, 0, 6) / 6  # hard sigmoid
    np.testing.assert_allclose(se(jnp.asarray(x)), x * g[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_stochastic_depth_is_active_in_training_only():
    sd = nn.StochasticDepth(0.5, "row", rngs=nnx.Rngs(0))
    y = np.asarray(sd(jnp.ones((64, 3))))
    assert set(np.unique(y).tolist()) == {0.0, 2.0}
    sd.eval()
    np.testing.assert_array_equal(sd(jnp.ones((64, 3))), jnp.ones((64, 3)))
    with pytest.raises(ValueError, match="StochasticDepth: in training mode it needs rngs"):
        nn.StochasticDepth(0.5)(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="StochasticDepth: mode must be 'row' or 'batch'"):
        nn.StochasticDepth(0.5, "rows")


def test_layer_scale_scales_each_channel():
    ls = nn.LayerScale(3, 0.5)
    ls.scale[...] = jnp.asarray([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ls(jnp.ones((2, 2, 3))), jnp.broadcast_to(jnp.asarray([1.0, 2.0, 3.0]), (2, 2, 3)))
    with pytest.raises(ValueError, match="LayerScale: dim must be a positive int, got dim=0"):
        nn.LayerScale(0)
