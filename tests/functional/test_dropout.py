"""dropout: statistics, scaling, shared masks, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import dropout


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_drop_fraction_and_scaling(rate):
    x = jnp.ones((200, 200))
    y = np.asarray(dropout(x, rate, jax.random.key(1)))
    kept = y != 0
    assert abs(1 - kept.mean() - rate) < 0.01  # 40k Bernoulli draws: std ~0.0025
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03  # expectation preserved


def test_deterministic_and_edge_rates_and_keys():
    x = jnp.arange(12.0).reshape(3, 4)
    key = jax.random.key(0)
    np.testing.assert_array_equal(dropout(x, 0.5, key, deterministic=True), x)
    np.testing.assert_array_equal(dropout(x, 0.0, key), x)
    np.testing.assert_array_equal(dropout(x, 1.0, key), np.zeros((3, 4)))
    np.testing.assert_array_equal(dropout(x, 0.5, key), dropout(x, 0.5, key))
    assert not np.array_equal(dropout(jnp.ones(1000), 0.5, key), dropout(jnp.ones(1000), 0.5, jax.random.key(1)))


def test_channel_dropout_shares_the_mask_over_space():
    x = jnp.ones((4, 6, 6, 32))
    y = np.asarray(dropout(x, 0.5, jax.random.key(3), broadcast_dims=(-3, -2)))
    per_channel = y.reshape(4, 36, 32)
    assert (per_channel == per_channel[:, :1]).all()  # each (example, channel) all kept or all dropped
    assert 0 < (per_channel[:, 0] == 0).mean() < 1


def test_dropout_errors():
    with pytest.raises(ValueError, match=r"dropout: rate must be a number in \[0, 1\], got rate=1.5"):
        dropout(jnp.ones(3), 1.5, jax.random.key(0))
    with pytest.raises(ValueError, match=r"dropout: broadcast_dims=\(3,\) out of range for x.shape=\(3,\)"):
        dropout(jnp.ones(3), 0.5, jax.random.key(0), broadcast_dims=(3,))


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_drop_path_drops_whole_rows_or_the_whole_batch_and_rescales(rate):
    from cnnjax.functional import drop_path

    x = jnp.ones((4000, 3, 2))
    y = jax.jit(lambda v, k: drop_path(v, rate, k))(x, jax.random.key(1))
    rows = np.asarray(y).reshape(4000, -1)
    assert (rows == rows[:, :1]).all()  # one decision per example
    kept = rows[:, 0] != 0
    assert abs(kept.mean() - (1 - rate)) < 0.03
    np.testing.assert_allclose(rows[kept, 0], 1 / (1 - rate), rtol=1e-6)
    batch = np.asarray(drop_path(x, rate, jax.random.key(2), mode="batch"))
    assert len(set(batch.ravel().tolist())) == 1  # all kept or all dropped
    np.testing.assert_array_equal(drop_path(x, rate, None, deterministic=True), x)
    with pytest.raises(ValueError, match="drop_path: mode must be 'row' or 'batch', got mode='col'"):
        drop_path(x, rate, jax.random.key(0), mode="col")
    with pytest.raises(ValueError, match=r"drop_path: rate must be a number in \[0, 1\], got rate=1.5"):
        drop_path(x, 1.5, jax.random.key(0))
