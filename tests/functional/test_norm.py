"""Normalization: numpy formulas, PyTorch, explicit state, vmap/device-parallel batch norm."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import (
    batch_norm,
    group_norm,
    init_batch_norm_stats,
    instance_norm,
    layer_norm,
    local_response_norm,
)
from tests.devices import run_on_cpu_devices
from tests.functional import reference as ref


def _np_norm(x, axes, eps=1e-5):
    x = x.astype(np.float64)
    return (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def test_batch_norm_training_uses_batch_stats_and_updates_running(rng):
    x = rng.normal(2.0, 3.0, size=(4, 5, 6, 3)).astype(np.float32)
    scale, bias = rng.normal(size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)
    stats = {"mean": jnp.full(3, 0.5), "var": jnp.full(3, 2.0)}
    y, new = batch_norm(x, scale, bias, stats, training=True, momentum=0.8, eps=1e-3)
    np.testing.assert_allclose(y, _np_norm(x, (0, 1, 2), 1e-3) * scale + bias, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new["mean"], 0.8 * 0.5 + 0.2 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.8 * 2.0 + 0.2 * x.var(axis=(0, 1, 2)), rtol=1e-5)


def test_batch_norm_eval_uses_running_stats_unchanged(rng):
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    stats = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
    y, new = batch_norm(x, None, None, stats, training=False, eps=0.0)
    np.testing.assert_allclose(y, (x - np.array([1, 2, 3])) / np.array([2, 1, 0.5]), rtol=1e-5, atol=1e-6)
    assert new is stats


def test_batch_norm_matches_torch_outputs_and_running_mean(torch, rng):
    x = rng.normal(size=(6, 5, 4, 3))
    bn = torch.nn.BatchNorm2d(3, momentum=0.1)
    out = bn(torch.tensor(ref.channels_first(x)))
    y, new = batch_norm(x.astype(np.float32), None, None, init_batch_norm_stats(3), training=True, momentum=0.9)
    np.testing.assert_allclose(y, ref.channels_last(out.detach().numpy()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new["mean"], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    # PyTorch stores the unbiased variance; the conversion is documented.
    m = x.size // 3
    np.testing.assert_allclose((new["var"] - 0.9) * m / (m - 1) + 0.9, bn.running_var.numpy(), rtol=1e-4)


def _plain_norm(x, axes, scale, bias):
    """Standardisation as the textbook formula, left to autodiff: the reference for the derivatives."""
    mean = jnp.mean(x, axis=axes, keepdims=True)
    y = (x - mean) / jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True) + 1e-5)
    return y * scale + bias


def _plain_batch_norm(x, scale, bias, momentum=0.9):
    """Training-mode batch norm as the textbook formula, left to autodiff: the reference for its derivatives."""
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    y = _plain_norm(x, (0, 1, 2), 1.0, 0.0) if scale is None else _plain_norm(x, (0, 1, 2), scale, bias)
    return y, {"mean": (1 - momentum) * mean, "var": momentum + (1 - momentum) * var}


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_derivatives_equal_autodiff_of_the_formula(rng, affine):
    x = jnp.asarray(rng.normal(2.0, 3.0, size=(4, 5, 6, 3)), jnp.float32)
    p = [jnp.asarray(rng.normal(size=3), jnp.float32) for _ in range(2)] if affine else [None, None]
    cts = [jnp.asarray(rng.normal(size=sh), jnp.float32) for sh in (x.shape, (3,), (3,))]

    def loss(f):
        def scalar(x, *p):
            y, new = f(x, *(p if affine else (None, None)))
            return jnp.sum(y * cts[0]) + jnp.sum(new["mean"] * cts[1]) + jnp.sum(new["var"] * cts[2])
        return scalar

    ours = lambda x, s, b: batch_norm(x, s, b, init_batch_norm_stats(3), training=True)  # noqa: E731
    args = (x, *p) if affine else (x,)
    argnums = tuple(range(len(args)))
    for got, want in zip(jax.grad(loss(ours), argnums)(*args), jax.grad(loss(_plain_batch_norm), argnums)(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    tangents = tuple(jnp.asarray(rng.normal(size=a.shape), jnp.float32) for a in args)
    fwd = lambda f: jax.jvp(lambda *a: f(a[0], *(a[1:] if affine else (None, None))), args, tangents)[1]  # noqa: E731
    for got, want in zip(jax.tree.leaves(fwd(ours)), jax.tree.leaves(fwd(_plain_batch_norm))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_batch_norm_gradients_match_torch_and_finite_differences(torch, rng):
    from jax.test_util import check_grads

    x = rng.normal(1.0, 2.0, size=(6, 5, 4, 3)).astype(np.float32)
    scale, bias, ct = rng.normal(size=3), rng.normal(size=3), rng.normal(size=x.shape)
    tx = torch.tensor(ref.channels_first(x), requires_grad=True)
    ts, tb = (torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in (scale, bias))
    out = torch.nn.functional.batch_norm(tx, None, None, ts, tb, training=True)
    out.backward(torch.tensor(ref.channels_first(ct), dtype=torch.float32))
    f = lambda x, s, b: jnp.sum(batch_norm(x, s, b, init_batch_norm_stats(3), training=True)[0] * ct)  # noqa: E731
    gx, gs, gb = jax.jit(jax.grad(f, (0, 1, 2)))(x, scale.astype(np.float32), bias.astype(np.float32))
    np.testing.assert_allclose(gx, ref.channels_last(tx.grad.numpy()), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gs, ts.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-4, atol=1e-5)
    with jax.enable_x64():
        check_grads(jax.jit(lambda x, s, b: batch_norm(x, s, b, init_batch_norm_stats(3, jnp.float64), training=True)[0]),
                    (x[:2].astype(np.float64), scale, bias), order=2, modes=("rev", "fwd"), eps=1e-4)


def test_batch_norm_under_vmap_with_axis_name_equals_full_batch(rng):
    x = rng.normal(size=(8, 5, 5, 3)).astype(np.float32)
    stats = init_batch_norm_stats(3)
    full_y, full_stats = batch_norm(x, None, None, stats, training=True)
    f = jax.vmap(lambda xi: batch_norm(xi, None, None, stats, training=True, axis_name="batch"), axis_name="batch")
    y, new = f(x)
    np.testing.assert_allclose(y, full_y, rtol=1e-5, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(new[k], np.broadcast_to(full_stats[k], (8, 3)), rtol=1e-5, atol=1e-6)
    ct = rng.normal(size=x.shape).astype(np.float32)
    g_full = jax.grad(lambda x: jnp.sum(batch_norm(x, None, None, stats, training=True)[0] * ct))(x)
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(f(x)[0] * ct))(x), g_full, rtol=1e-4, atol=1e-5)
    # Without axis_name, each vmapped example would be normalised on its own: visibly different.
    alone, _ = jax.vmap(lambda xi: batch_norm(xi, None, None, stats, training=True))(x)
    assert not np.allclose(alone, full_y, atol=1e-2)


@pytest.mark.integration
def test_batch_norm_across_devices_equals_one_device():
    """Four forced CPU devices, batch sharded, statistics pmean'd: same as the unsharded batch."""
    code = textwrap.dedent(
        """
        import numpy as np, jax, jax.numpy as jnp
        from jax.sharding import Mesh, PartitionSpec as P
        from cnnjax.functional import batch_norm, init_batch_norm_stats
        assert jax.device_count() == 4, jax.devices()
        x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 6, 3)), jnp.float32)
        stats = init_batch_norm_stats(3)
        mesh = Mesh(np.array(jax.devices()), ("data",))
        def f(xs):
            return batch_norm(xs, None, None, stats, training=True, axis_name="data")
        sharded = jax.jit(jax.shard_map(f, mesh=mesh, in_specs=P("data"), out_specs=(P("data"), P())))
        y, new = sharded(x)
        ref_y, ref_stats = batch_norm(x, None, None, stats, training=True)
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(new["var"], ref_stats["var"], rtol=1e-5)
        print("OK", len(y.sharding.device_set))
        """
    )
    out = run_on_cpu_devices(code, 4, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK 4" in out.stdout


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_batch_norm_half_precision_keeps_float32_stats(rng, dtype):
    x = jnp.asarray(rng.normal(100.0, 1.0, size=(64, 8, 4)), dtype)  # large mean: E[x^2]-E[x]^2 in half would fail
    y, new = batch_norm(x, None, None, init_batch_norm_stats(4), training=True, momentum=0.0)
    assert y.dtype == dtype and new["var"].dtype == jnp.float32
    xf = np.asarray(x, np.float64)
    np.testing.assert_allclose(new["var"], xf.var(axis=(0, 1)), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(y, np.float32), _np_norm(xf, (0, 1)), atol=0.05)


def test_layer_norm_over_channels_and_over_chw(rng):
    x = rng.normal(size=(2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(layer_norm(x), _np_norm(x, -1), rtol=1e-4, atol=1e-5)
    s = rng.normal(size=(4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(layer_norm(x, s, None, axis=(1, 2, 3)), _np_norm(x, (1, 2, 3)) * s, rtol=1e-4, atol=1e-5)


def test_group_and_instance_norm_match_torch(torch, rng):
    x = rng.normal(size=(2, 5, 4, 6))
    scale, bias = rng.normal(size=6), rng.normal(size=6)
    xt = torch.tensor(ref.channels_first(x))
    F = torch.nn.functional
    for groups in (1, 2, 3, 6):
        y = group_norm(x.astype(np.float32), groups, scale, bias, spatial_dims=2)
        expected = F.group_norm(xt, groups, torch.tensor(scale), torch.tensor(bias))
        np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-4, atol=1e-4)
    y = instance_norm(x.astype(np.float32), scale, bias, spatial_dims=2)
    expected = F.instance_norm(xt, weight=torch.tensor(scale), bias=torch.tensor(bias))
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-4, atol=1e-4)
    y = layer_norm(x.astype(np.float32), axis=(1, 2, 3))
    expected = F.layer_norm(xt.permute(0, 2, 3, 1), (5, 4, 6))
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-4, atol=1e-4)


_PER_EXAMPLE = {  # name: (cnnjax call, its reference on (2, 5, 4, 6) inputs with (6,)-shaped or (5, 4, 6)-shaped affine)
    "layer_norm": (lambda x, s, b: layer_norm(x, s, b), lambda x, s, b: _plain_norm(x, (3,), s, b), (6,)),
    "layer_norm_chw": (lambda x, s, b: layer_norm(x, s, b, axis=(1, 2, 3)),
                       lambda x, s, b: _plain_norm(x, (1, 2, 3), s, b), (5, 4, 6)),
    "group_norm": (lambda x, s, b: group_norm(x, 3, s, b, spatial_dims=2),
                   lambda x, s, b: _plain_norm(x.reshape(2, 5, 4, 3, 2), (1, 2, 4), s.reshape(3, 2),
                                               b.reshape(3, 2)).reshape(x.shape), (6,)),
    "instance_norm": (lambda x, s, b: instance_norm(x, s, b, spatial_dims=2),
                      lambda x, s, b: _plain_norm(x, (1, 2), s, b), (6,)),
}


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@pytest.mark.parametrize("name", sorted(_PER_EXAMPLE))
def test_per_example_norm_derivatives_equal_the_formulas(rng, name):
    from jax.test_util import check_grads

    ours, plain, pshape = _PER_EXAMPLE[name]
    args = tuple(jnp.asarray(rng.normal(1.0, 2.0, size=sh), jnp.float32) for sh in ((2, 5, 4, 6), pshape, pshape))
    ct = jnp.asarray(rng.normal(size=(2, 5, 4, 6)), jnp.float32)
    for f in (ours, lambda x, s, b: ours(x, s, None) + b, lambda x, s, b: ours(x, None, None) * s + b):
        loss = lambda g: lambda *a: jnp.sum(g(*a) * ct)  # noqa: E731
        grads = [jax.jit(jax.grad(loss(g), (0, 1, 2)))(*args) for g in (f, plain)]  # jitted: a compile per program, not per op
        for got, want in zip(*grads):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    tangents = tuple(jnp.asarray(rng.normal(size=a.shape), jnp.float32) for a in args)
    np.testing.assert_allclose(jax.jvp(ours, args, tangents)[1], jax.jvp(plain, args, tangents)[1], rtol=1e-4, atol=1e-4)
    with jax.enable_x64():
        check_grads(jax.jit(ours), tuple(np.asarray(a, np.float64) for a in args), order=2, modes=("rev", "fwd"), eps=1e-4)


def test_group_norm_extremes_are_layer_and_instance_norm(rng):
    x = rng.normal(size=(3, 4, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(group_norm(x, 1, spatial_dims=2), layer_norm(x, axis=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(group_norm(x, 8, spatial_dims=2), instance_norm(x, spatial_dims=2), rtol=1e-4, atol=1e-5)
    # A batch-free call normalises the one example the same way.
    np.testing.assert_allclose(group_norm(x[1], 2, spatial_dims=2), group_norm(x, 2, spatial_dims=2)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_response_norm_matches_formula_and_torch(torch, rng, size):
    x = rng.normal(size=(2, 4, 3, 7))
    y = local_response_norm(x.astype(np.float32), size, alpha=1e-2, beta=0.75, k=2.0)
    sq = np.pad(x**2, [(0, 0)] * 3 + [(size // 2, (size - 1) // 2)])
    sums = sum(sq[..., i : i + 7] for i in range(size))
    np.testing.assert_allclose(y, x / (2.0 + 1e-2 / size * sums) ** 0.75, rtol=1e-5, atol=1e-6)
    expected = torch.nn.functional.local_response_norm(torch.tensor(ref.channels_first(x)), size, alpha=1e-2, beta=0.75, k=2.0)
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-5, atol=1e-6)


def test_norm_errors_name_the_argument():
    x = jnp.ones((2, 4, 4, 6))
    with pytest.raises(ValueError, match=r"group_norm: num_groups must be a positive divisor of C=6, got num_groups=4"):
        group_norm(x, 4, spatial_dims=2)
    with pytest.raises(ValueError, match=r"batch_norm: scale must have shape \(6,\), got scale.shape=\(3,\)"):
        batch_norm(x, jnp.ones(3), None, init_batch_norm_stats(6), training=True)
    with pytest.raises(TypeError, match=r"batch_norm: stats must be a dict with keys 'mean' and 'var'"):
        batch_norm(x, None, None, {"mean": jnp.zeros(6)}, training=True)
    with pytest.raises(TypeError, match=r"instance_norm: x must be a floating-point array, got dtype int32"):
        instance_norm(jnp.ones((4, 4, 2), jnp.int32), spatial_dims=2)
    with pytest.raises(ValueError, match=r"layer_norm: axis=5 is out of range"):
        layer_norm(x, axis=5)
