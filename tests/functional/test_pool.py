"""Pooling: sliding_window_view references, PyTorch, indices and unpooling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import (
    adaptive_avg_pool,
    adaptive_max_pool,
    avg_pool,
    global_avg_pool,
    global_max_pool,
    lp_pool,
    max_pool,
    max_pool_with_indices,
    max_unpool,
)
from cnnjax.backends.cpu import onednn, without_onednn
from tests.functional import reference as ref

GRID = [
    # (spatial, window, stride, pads, dilation)
    ((12,), (3,), (2,), [(1, 1)], (1,)),
    ((9, 10), (2, 2), (2, 2), [(0, 0), (0, 0)], (1, 1)),
    ((9, 10), (3, 2), (1, 2), [(1, 0), (1, 1)], (2, 1)),
    ((6, 5, 7), (2, 3, 2), (2, 1, 3), [(1, 1), (0, 1), (0, 0)], (1, 1, 2)),
]


@pytest.mark.parametrize("spatial, window, stride, pads, dilation", GRID)
def test_max_and_avg_pool_match_sliding_windows(rng, spatial, window, stride, pads, dilation):
    x = rng.normal(size=(2, *spatial, 3)).astype(np.float32)
    kw = dict(padding=pads, dilation=dilation)
    np.testing.assert_array_equal(
        max_pool(x, window, stride, **kw), ref.pool(x, window, stride, pads, dilation, np.max, -np.inf)
    )
    np.testing.assert_allclose(
        avg_pool(x, window, stride, **kw), ref.pool(x, window, stride, pads, dilation, np.mean, 0.0), rtol=1e-5, atol=1e-6
    )
    counts = ref.pool(np.ones_like(x), window, stride, pads, dilation, np.sum, 0.0)
    sums = ref.pool(x, window, stride, pads, dilation, np.sum, 0.0)
    np.testing.assert_allclose(avg_pool(x, window, stride, count_include_pad=False, **kw), sums / counts, rtol=1e-5, atol=1e-6)
    p = 3.0
    lp = ref.pool(np.abs(x) ** p, window, stride, pads, dilation, np.sum, 0.0) ** (1 / p)
    np.testing.assert_allclose(lp_pool(x, p, window, stride, **kw), lp, rtol=1e-5, atol=1e-6)


def test_stride_defaults_to_window(rng):
    x = rng.normal(size=(8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(max_pool(x, (2, 2)), max_pool(x, (2, 2), (2, 2)))
    assert avg_pool(x, (4, 4)).shape == (2, 2, 2)


def test_same_padding(rng):
    x = rng.normal(size=(2, 7, 7, 3)).astype(np.float32)
    assert max_pool(x, (3, 3), (2, 2), "SAME").shape == (2, 4, 4, 3)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("window, stride, padding, ceil_mode, count_include_pad", [
    (3, 2, 1, True, True), (3, 2, 1, True, False), (2, 3, 0, True, True), (3, 3, 1, False, False), (2, 2, 1, True, False),
])
def test_max_avg_pool_match_torch(torch, rng, n, window, stride, padding, ceil_mode, count_include_pad):
    spatial = {1: (11,), 2: (9, 8), 3: (7, 6, 5)}[n]
    x = rng.normal(size=(2, *spatial, 3))
    xt = torch.tensor(ref.channels_first(x))
    F = torch.nn.functional
    args = dict(spatial_dims=n, ceil_mode=ceil_mode)
    y_max = max_pool(x.astype(np.float32), window, stride, padding, **args)
    expected = getattr(F, f"max_pool{n}d")(xt, window, stride, padding, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(y_max, ref.channels_last(expected.numpy()).astype(np.float32))
    y = avg_pool(x.astype(np.float32), window, stride, padding, count_include_pad=count_include_pad, **args)
    expected = getattr(F, f"avg_pool{n}d")(xt, window, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-5, atol=1e-6)
    yi, idx = max_pool_with_indices(x.astype(np.float32), window, stride, padding, **args)
    _, expected_idx = getattr(F, f"max_pool{n}d")(xt, window, stride, padding, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(idx, ref.channels_last(expected_idx.numpy()))
    np.testing.assert_array_equal(yi, y_max)


def test_max_pool_dilation_matches_torch(torch, rng):
    x = rng.normal(size=(2, 11, 10, 3))
    y = max_pool(x.astype(np.float32), (3, 2), (2, 1), 1, dilation=(2, 3))
    t = torch.nn.functional.max_pool2d(torch.tensor(ref.channels_first(x)), (3, 2), (2, 1), 1, dilation=(2, 3))
    np.testing.assert_array_equal(y, ref.channels_last(t.numpy()).astype(np.float32))


def test_lp_pool_matches_torch_for_nonnegative_input(torch, rng):
    x = np.abs(rng.normal(size=(2, 9, 8, 3)))
    for p in (1.0, 2.0, 3.5):
        y = lp_pool(x.astype(np.float32), p, (3, 2), (2, 2), ceil_mode=True)
        t = torch.nn.functional.lp_pool2d(torch.tensor(ref.channels_first(x)), p, (3, 2), (2, 2), ceil_mode=True)
        np.testing.assert_allclose(y, ref.channels_last(t.numpy()), rtol=1e-5, atol=1e-6)


def test_lp_pool_gradient_is_finite_on_zero_windows():
    g = jax.grad(lambda x: lp_pool(x, 2.0, (2,)).sum())(jnp.zeros((4, 1)))
    assert np.isfinite(g).all()


@pytest.mark.parametrize("out", [(1, 1), (3, 4), (4, 3), (7, 8), (5, 5), (2, 9)])
def test_adaptive_pools_match_torch(torch, rng, out):
    x = rng.normal(size=(2, 7, 8, 3))
    xt = torch.tensor(ref.channels_first(x))
    y = adaptive_avg_pool(x.astype(np.float32), out)
    np.testing.assert_allclose(y, ref.channels_last(torch.nn.functional.adaptive_avg_pool2d(xt, out).numpy()), rtol=1e-5, atol=1e-6)
    y = adaptive_max_pool(x.astype(np.float32), out)
    np.testing.assert_array_equal(y, ref.channels_last(torch.nn.functional.adaptive_max_pool2d(xt, out).numpy()).astype(np.float32))


def test_adaptive_pool_bins_by_hand():
    x = jnp.arange(10.0).reshape(10, 1)
    # PyTorch's bins for 10 -> 4: [0,3), [2,5), [5,8), [7,10)
    np.testing.assert_allclose(adaptive_avg_pool(x, (4,))[:, 0], [1.0, 3.0, 6.0, 8.0])
    np.testing.assert_array_equal(adaptive_max_pool(x, (4,))[:, 0], [2.0, 4.0, 7.0, 9.0])
    y = adaptive_avg_pool(jnp.ones((2, 6, 6, 5)), 1, spatial_dims=2)
    np.testing.assert_array_equal(y, np.ones((2, 1, 1, 5)))


def test_global_pools(rng):
    x = rng.normal(size=(2, 3, 5, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(global_avg_pool(x, spatial_dims=3), x.mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(global_max_pool(x, spatial_dims=2), x.max(axis=(2, 3)))
    assert global_avg_pool(x, spatial_dims=2, keepdims=True).shape == (2, 3, 1, 1, 4)


def test_max_pool_with_indices_points_at_the_maxima(rng):
    x = rng.normal(size=(2, 9, 7, 3)).astype(np.float32)
    y, idx = max_pool_with_indices(x, (3, 3), (2, 2), 1)
    flat = x.reshape(2, -1, 3)
    picked = np.take_along_axis(flat, np.asarray(idx).reshape(2, -1, 3), axis=1).reshape(y.shape)
    np.testing.assert_array_equal(picked, y)
    np.testing.assert_array_equal(y, max_pool(x, (3, 3), (2, 2), 1))


def test_max_unpool_inverts_on_the_maxima_and_matches_torch(torch, rng):
    x = np.abs(rng.normal(size=(2, 8, 6, 3))) + 0.1  # positive, so re-pooling the zeros finds the maxima
    y, idx = max_pool_with_indices(x.astype(np.float32), (2, 2))
    up = max_unpool(y, idx, (8, 6))
    assert up.shape == x.shape
    np.testing.assert_array_equal(max_pool(up, (2, 2)), y)
    t_y, t_idx = torch.nn.functional.max_pool2d(torch.tensor(ref.channels_first(x)), 2, return_indices=True)
    expected = torch.nn.functional.max_unpool2d(t_y, t_idx, 2, output_size=(8, 6))
    np.testing.assert_array_equal(up, ref.channels_last(expected.numpy()).astype(np.float32))


def test_max_unpool_restores_odd_sizes(rng):
    x = rng.normal(size=(9, 5, 2)).astype(np.float32)
    y, idx = max_pool_with_indices(x, (2, 2))
    up = max_unpool(y, idx, (9, 5))
    assert up.shape == (9, 5, 2)
    assert int((np.asarray(up) != 0).sum()) == y.size


TILED = [  # (shape, window): non-overlapping windows, which max_pool differentiates with its own rule on CPU
    ((3, 12, 4), (2,)),
    ((1, 26, 24, 2), (13, 12)),  # 156 positions per window: past what an int8 index holds
    ((2, 8, 10, 5), (2, 2)),
    ((2, 9, 11, 3), (2, 3)),  # sizes not multiples of the window: the remainder is dropped, as VALID does
    ((2, 4, 6, 6, 2), (2, 3, 2)),
    ((2, 3, 6, 6, 4), (3, 3)),  # two batch dims
]


def _reduce_window_max(x, window):
    from cnnjax.functional.pool import _reduce

    n = len(window)
    return _reduce(x, np.array(-np.inf, x.dtype), jax.lax.max, n, window, window, [(0, 0)] * n, (1,) * n)


def _assert_bit_equal_with_derivatives(f_fast, f_ref, x, rng, grad_rtol=0.0):
    """Values, gradients (random cotangent), JVPs and vmap of ``f_fast`` equal ``f_ref``'s bit for bit (the
    gradients to ``grad_rtol``: where windows overlap, the order in which they add up may differ). Each is
    jitted: a large window is many strided views, each its own compile when run eagerly."""
    y = jax.jit(f_fast)(x)
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(jax.jit(f_ref)(x), np.float32))
    g = jnp.asarray(rng.normal(size=y.shape), x.dtype)
    grad = lambda f: jax.jit(lambda x, g: jax.vjp(f, x)[1](g)[0])(x, g)  # noqa: E731
    np.testing.assert_allclose(np.asarray(grad(f_fast), np.float32), np.asarray(grad(f_ref), np.float32),
                               rtol=grad_rtol, atol=grad_rtol)
    tangent = jnp.asarray(rng.normal(size=x.shape), x.dtype)
    jvp = lambda f: jax.jit(lambda x, t: jax.jvp(f, (x,), (t,))[1])(x, tangent)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(jvp(f_fast), np.float32), np.asarray(jvp(f_ref), np.float32))
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(f_fast))(x[None]))[0], np.asarray(y))


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@pytest.mark.parametrize("shape, window", TILED)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_tiled_max_pool_equals_reduce_window_with_ties(rng, shape, window, dtype):
    from cnnjax.backends.cpu.pool import tiles

    assert tiles(window=window, strides=window, pads=[(0, 0)] * len(window), dilation=(1,) * len(window))
    if jax.default_backend() == "cpu":  # the fast path is what runs here
        assert "custom_jvp_call" in str(jax.make_jaxpr(lambda x: max_pool(x, window))(jnp.zeros(shape, dtype)))
    # ReLU'd and rounded: many windows hold several equal maxima, where the gradient must pick the same one
    x = jnp.asarray(np.maximum(np.round(rng.normal(size=shape), 1), 0), dtype)
    f_fast, f_ref = (lambda x: max_pool(x, window)), (lambda x: _reduce_window_max(x, window))
    _assert_bit_equal_with_derivatives(f_fast, f_ref, x, rng)


OVERLAPPING = [  # (shape, window, stride, padding, dilation, ceil_mode): select_and_scatter's rule replaced on CPU
    ((2, 13, 11, 4), (3, 3), (2, 2), 1, 1, False),  # the ResNet stem's pool
    ((2, 9, 9, 3), (3, 3), (1, 1), 1, 1, False),  # Inception's pool branch
    ((2, 10, 3), (3,), (2,), 0, 1, True),
    ((2, 12, 12, 2), (3, 2), (2, 3), ((1, 1), (0, 1)), (2, 1), False),  # dilated: differentiable only here
    ((2, 6, 7, 5, 2), (2, 2, 3), (1, 2, 2), 0, 1, False),
]


@pytest.mark.parametrize("shape, window, stride, padding, dilation, ceil_mode", OVERLAPPING)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_overlapping_max_pool_derivatives_equal_reduce_window_with_ties(rng, shape, window, stride, padding,
                                                                         dilation, ceil_mode, dtype):
    from cnnjax.functional import pool

    x = jnp.asarray(np.maximum(np.round(rng.normal(size=shape), 1), 0), dtype)  # ties: as in the tiled test
    f_fast = lambda x: max_pool(x, window, stride, padding, dilation=dilation, ceil_mode=ceil_mode)  # noqa: E731
    n, k, s, pads, d, _ = pool._geometry(x, window, stride, padding, dilation, ceil_mode, "max_pool", None)
    if all(dd == 1 for dd in d):
        f_ref = lambda x: pool._window_max(x, n, k, s, pads, d)  # noqa: E731
    else:  # JAX has no derivative for dilated reduce_window: the first maximum of each window's patch
        def f_ref(x):
            p = pool.patches(x, k, s, pads, d, pad_value=-jnp.inf)  # (*batch, *out, K, C)
            first = jnp.argmax(p, axis=-2, keepdims=True)
            return jnp.take_along_axis(p, first, axis=-2)[..., 0, :]
    with without_onednn():  # float32 would take oneDNN's pooling (tested below)
        assert "custom_jvp_call" in str(jax.make_jaxpr(f_fast)(x))  # the rule is what runs here
        _assert_bit_equal_with_derivatives(f_fast, f_ref, x, rng)


@pytest.mark.skipif(not onednn.available(), reason=f"oneDNN unavailable: {onednn.unavailable_reason()}")
@pytest.mark.parametrize("shape, window, stride, padding, dilation, ceil_mode", OVERLAPPING)
def test_onednn_max_pool_equals_reduce_window_with_ties(rng, shape, window, stride, padding, dilation, ceil_mode):
    """On CPU float32 overlapping windows pool through oneDNN: values, JVPs and vmap bit for bit, gradients to
    float rounding (oneDNN adds overlapping windows' gradients in its own order), ties included; and second
    derivatives, which run the tangent's jax.numpy rule, as under ``conv_strategy("lax")``."""
    from cnnjax.functional import conv_strategy

    x = jnp.asarray(np.maximum(np.round(rng.normal(size=shape), 1), 0), jnp.float32)
    kw = dict(dilation=dilation, ceil_mode=ceil_mode)
    f_fast = lambda x: max_pool(x, window, stride, padding, **kw)  # noqa: E731
    assert "onednn_max_pool_forward" in str(jax.make_jaxpr(f_fast)(x))

    def f_ref(x):
        with conv_strategy("lax"):  # XLA's reduce_window and the jax.numpy rule
            return max_pool(x, window, stride, padding, **kw)

    assert "onednn" not in str(jax.make_jaxpr(f_ref)(x))
    _assert_bit_equal_with_derivatives(f_fast, f_ref, x, rng, grad_rtol=1e-6)
    t = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    ct = jnp.asarray(rng.normal(size=f_fast(x).shape), jnp.float32)
    second = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(f(x) * ct))(x) * t)))(x)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(second(f_fast)), np.asarray(second(f_ref)))
    per_example = lambda f: jax.jit(jax.vmap(jax.grad(lambda x: jnp.sum(f(x) ** 2))))(x[:, None])  # noqa: E731
    np.testing.assert_allclose(np.asarray(per_example(f_fast)), np.asarray(per_example(f_ref)), rtol=1e-6)


def test_tiled_max_pool_nan_window_passes_no_gradient_as_reduce_window():
    x = jnp.arange(32.0).reshape(1, 4, 4, 2).at[0, 1, 0, 1].set(jnp.nan)
    g = jax.grad(lambda x: jnp.nansum(max_pool(x, (2, 2))))(x)
    g_ref = jax.grad(lambda x: jnp.nansum(_reduce_window_max(x, (2, 2))))(x)
    assert np.isnan(np.asarray(max_pool(x, (2, 2)))[0, 0, 0, 1])
    np.testing.assert_array_equal(np.asarray(g), np.asarray(g_ref))
    assert float(g[0, :2, :2, 1].sum()) == 0.0  # the NaN window's channel


def test_tiled_max_pool_gradient_goes_to_the_first_maximum():
    x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 0, 0].set(1.0).at[0, 1, 1, 0].set(1.0)  # two maxima in one window
    g = jax.grad(lambda x: max_pool(x, (2, 2)).sum())(x)
    np.testing.assert_array_equal(np.asarray(g)[0, :, :, 0], [[0, 0], [1, 0]])
    g0 = jax.grad(lambda x: max_pool(x, (2, 2)).sum())(jnp.zeros((1, 2, 2, 1)))  # all tied: the top-left one
    np.testing.assert_array_equal(np.asarray(g0)[0, :, :, 0], [[1, 0], [0, 0]])
