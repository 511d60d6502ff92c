"""nn.Subsample and nn.MaxPoolSubsample against numpy loops and the functional ops they wrap."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import functional as F
from cnnjax import nn


@pytest.mark.parametrize("mode,reduce", [("max", np.max), ("avg", np.mean)])
@pytest.mark.parametrize("length", [8, 9])
def test_pool_subsample_matches_a_numpy_loop_with_a_partial_last_window(mode, reduce, length):
    x = np.random.default_rng(0).normal(size=(2, length, 3)).astype(np.float32)
    want = np.stack([reduce(x[:, i:i + 2], axis=1) for i in range(0, length, 2)], axis=1)
    np.testing.assert_allclose(nn.Subsample(mode, 2, 1)(jnp.asarray(x)), want, rtol=1e-6)


def test_stride_mode_keeps_every_stride_th_sample_and_no_phase():
    x = np.arange(2 * 7 * 6 * 1, dtype=np.float32).reshape(2, 7, 6, 1)
    y, phase = nn.Subsample("stride", 3, 2)(jnp.asarray(x), return_phase=True)
    np.testing.assert_array_equal(y, x[:, ::3, ::3])
    assert phase is None


def test_aps_mode_reuses_a_given_phase():
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    sub = nn.Subsample("aps", 2, 2)
    y, phase = sub(jnp.asarray(x), return_phase=True)
    np.testing.assert_array_equal(sub(jnp.asarray(x), phase), y)
    np.testing.assert_array_equal(y, F.aps_pool(jnp.asarray(x), (2, 2)))


def test_max_pool_subsample_is_a_stride_one_max_pool_then_a_blur():
    x = np.random.default_rng(2).normal(size=(1, 10, 10, 4)).astype(np.float32)
    want = F.blur_pool(F.max_pool(jnp.asarray(x), (2, 2), 1), 3, (2, 2), padding_mode="reflect")
    np.testing.assert_allclose(nn.MaxPoolSubsample((2, 2), "blur")(jnp.asarray(x)), want, rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [({"mode": "bilinear"}, "downsample must be one of"), ({"mode": "blur", "blur_size": 0}, "size must be an int from 1")])
def test_a_bad_configuration_raises_when_the_layer_is_built(kwargs, match):
    mode = kwargs.pop("mode")
    with pytest.raises(ValueError, match=match):
        nn.Subsample(mode, 2, 2, **kwargs)
