"""unfold / fold: sliding_window_view reference, adjointness, PyTorch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax.functional import fold, unfold
from tests.functional import reference as ref


@pytest.mark.parametrize(
    "spatial, k, stride, pads, dilation",
    [
        ((10,), (3,), (2,), [(1, 0)], (2,)),
        ((7, 8), (3, 2), (1, 2), [(1, 1), (0, 2)], (1, 1)),
        ((5, 6, 4), (2, 3, 2), (2, 1, 1), [(0, 0), (1, 1), (0, 1)], (1, 1, 2)),
    ],
)
def test_unfold_matches_sliding_window_view(rng, spatial, k, stride, pads, dilation):
    x = rng.normal(size=(2, *spatial, 3)).astype(np.float32)
    y = unfold(x, k, stride=stride, padding=pads, dilation=dilation)
    v = ref.windows(x, k, stride, pads, dilation)  # (N, *out, C, *k)
    n = len(k)
    expected = np.moveaxis(v, n + 1, -1).reshape(v.shape[: n + 1] + (-1,))  # offset-major, channel-minor
    np.testing.assert_array_equal(y, expected)


def test_unfold_matches_torch_up_to_feature_order(torch, rng):
    x = rng.normal(size=(2, 7, 9, 3))
    y = unfold(x.astype(np.float32), (3, 2), stride=(2, 1), padding=1, dilation=(1, 2))
    t = torch.nn.functional.unfold(torch.tensor(ref.channels_first(x)), (3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    # torch: (N, C*kh*kw, L) channel-major; ours: (N, oh, ow, kh*kw*C) offset-major.
    t = t.numpy().reshape(2, 3, 6, *y.shape[1:3]).transpose(0, 3, 4, 2, 1).reshape(y.shape)
    np.testing.assert_allclose(y, t, rtol=1e-6, atol=1e-6)


def test_fold_sums_overlaps(rng):
    ones = fold(jnp.ones((3, 3, 9)), (5, 5), (3, 3))
    counts = np.array([[1, 2, 3, 2, 1]]).T @ np.array([[1, 2, 3, 2, 1]])
    np.testing.assert_array_equal(ones[..., 0], counts)


def test_fold_matches_torch(torch, rng):
    y = rng.normal(size=(2, 4, 3, 6 * 2))
    out = fold(y.astype(np.float32), (8, 5), (3, 2), stride=2, padding=1)
    t = y.reshape(2, 4, 3, 6, 2).transpose(0, 4, 3, 1, 2).reshape(2, 12, 12)
    expected = torch.nn.functional.fold(torch.tensor(t), (8, 5), (3, 2), padding=1, stride=2)
    np.testing.assert_allclose(out, ref.channels_last(expected.numpy()), rtol=1e-6, atol=1e-6)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@given(
    st.integers(1, 3), st.integers(3, 7), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2),
    st.integers(1, 2), st.sampled_from(["zeros", "circular", "reflect", "replicate"]), st.integers(0, 2**31 - 1),
)
def test_fold_is_the_adjoint_of_unfold(n, i, k, s, p, d, mode, seed):
    if d * (k - 1) + 1 > i + 2 * p or (mode == "reflect" and p >= i):
        return
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(2, *(i,) * n, 3)))
    kw = dict(stride=s, padding=p, dilation=d, padding_mode=mode)
    # jitted: one program per geometry rather than one per op
    u = jax.jit(lambda x: unfold(x, (k,) * n, **kw))(x)
    y = jnp.asarray(rng.normal(size=u.shape))
    lhs = float(jnp.vdot(u, y))
    rhs = float(jnp.vdot(x, jax.jit(lambda y: fold(y, (i,) * n, (k,) * n, **kw))(y)))
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-3)


def test_fold_rejects_mismatched_patches():
    with pytest.raises(ValueError, match=r"fold: x.shape=\(4, 4, 18\) does not match unfold"):
        fold(jnp.ones((4, 4, 18)), (5, 5), (3, 3))
    with pytest.raises(ValueError, match=r"prod\(kernel_size\)=9"):
        fold(jnp.ones((3, 3, 10)), (5, 5), (3, 3))
