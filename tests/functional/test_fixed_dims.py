"""PyTorch's dimension-specific spellings (conv2d, max_pool2d, ...) are the N-d ops with the rank fixed:
equal to them with tuple arguments, and to torch.nn.functional where torch is installed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import functional as F
from tests.functional import reference as ref

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_bare_ints_mean_the_fixed_rank(n):
    x = jnp.asarray(RNG.normal(size=(2,) + (6,) * n + (3,)), jnp.float32)
    w = jnp.asarray(RNG.normal(size=(3,) * n + (3, 4)), jnp.float32)
    t = lambda v: (v,) * n  # noqa: E731
    np.testing.assert_array_equal(getattr(F, f"max_pool{n}d")(x, 2), F.max_pool(x, t(2)))
    np.testing.assert_array_equal(getattr(F, f"avg_pool{n}d")(x, 3, 1, 1), F.avg_pool(x, t(3), t(1), t(1)))
    np.testing.assert_array_equal(getattr(F, f"adaptive_avg_pool{n}d")(x, 4), F.adaptive_avg_pool(x, t(4)))
    np.testing.assert_array_equal(getattr(F, f"pad{n}d")(x, 1), F.pad(x, t(1)))
    np.testing.assert_array_equal(getattr(F, f"conv{n}d")(x, w, None, 2, 1), F.conv(x, w, stride=t(2), padding=t(1)))


def test_they_jit_and_name_themselves_in_errors():
    x = jnp.ones((2, 8, 8, 3))
    assert jax.jit(lambda v: F.max_pool2d(v, 2, 2))(x).shape == (2, 4, 4, 3)
    with pytest.raises(ValueError, match=r"max_pool2d: x must be \(\*batch, H, W, C\), channels last, got shape \(8, 3\)"):
        F.max_pool2d(jnp.ones((8, 3)), 2)
    with pytest.raises(ValueError, match=r"conv2d: w must be a 4-D kernel \(\*k, C_in // groups, C_out\) \(channels-last"):
        F.conv2d(x, jnp.ones((3, 3, 5)))
    with pytest.raises(ValueError, match=r"max_pool: cannot tell the number of spatial dims.*F.max_pool2d"):
        F.max_pool(x, 2)


def test_the_lecture_spellings_equal_torch(torch):
    tf = torch.nn.functional
    x = RNG.normal(size=(2, 9, 10, 3))
    w = RNG.normal(size=(6, 3, 5, 5))  # torch's (O, I, kh, kw)
    xt = torch.tensor(ref.channels_first(x))
    got = F.conv2d(jnp.asarray(x), jnp.asarray(w.transpose(2, 3, 1, 0)), None, 1, 2)
    np.testing.assert_allclose(got, ref.channels_last(tf.conv2d(xt, torch.tensor(w), None, 1, 2).numpy()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(F.max_pool2d(jnp.asarray(x), 2, 2), ref.channels_last(tf.max_pool2d(xt, 2, 2).numpy()), rtol=1e-6)
    np.testing.assert_allclose(F.avg_pool2d(jnp.asarray(x), 3, 2, 1, True, False),
                               ref.channels_last(tf.avg_pool2d(xt, 3, 2, 1, True, False).numpy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.pad2d(jnp.asarray(x), 1), ref.channels_last(tf.pad(xt, (1, 1, 1, 1)).numpy()))
