"""channel_shuffle: a permutation of the channels, equal to a numpy loop and to PyTorch's ChannelShuffle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import functional as F
from tests.functional import reference as ref


@pytest.mark.parametrize("groups, c", [(1, 4), (2, 6), (3, 12), (4, 8)])
def test_channel_shuffle_equals_a_numpy_loop(groups, c):
    x = np.random.default_rng(c).normal(size=(2, 3, 5, c)).astype(np.float32)
    per = c // groups
    want = np.empty_like(x)
    for g in range(groups):
        for i in range(per):
            want[..., i * groups + g] = x[..., g * per + i]
    np.testing.assert_array_equal(jax.jit(F.channel_shuffle, static_argnums=1)(jnp.asarray(x), groups), want)


def test_channel_shuffle_equals_torch(torch):
    x = np.random.default_rng(0).normal(size=(2, 12, 4, 5))
    want = torch.nn.ChannelShuffle(3)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(F.channel_shuffle(jnp.asarray(ref.channels_last(x)), 3), ref.channels_last(want), rtol=1e-6)


def test_channel_shuffle_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"channel_shuffle: the channel axis \(last, size 6\) must be divisible by groups=4"):
        F.channel_shuffle(jnp.ones((2, 6)), 4)
    with pytest.raises(ValueError, match="channel_shuffle: groups must be a positive int, got groups=0"):
        F.channel_shuffle(jnp.ones((2, 6)), 0)
    with pytest.raises(TypeError, match="channel_shuffle: x must be an array"):
        F.channel_shuffle(None, 2)
