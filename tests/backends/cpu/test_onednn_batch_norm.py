"""oneDNN's training batch norm (with ReLU and residual fused): the same function, derivatives and batching as XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import functional as F
from cnnjax.backends.cpu import onednn, onednn_batch_norm, without_onednn

needs_onednn = pytest.mark.skipif(not onednn.available(), reason=f"oneDNN unavailable: {onednn.unavailable_reason()}")

SHAPES = [(8, 5, 6, 7), (6, 16), (4, 3, 2, 2, 33), (32, 8, 8, 64)]  # 2-D maps, dense features, 3-D maps, > 1 thread
#: what follows the normalisation: fused by oneDNN (relu; relu + residual) or added by XLA after it (residual alone)
TAILS = [{}, {"relu": True}, {"relu": True, "residual": True}, {"residual": True}]


def _case(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    arr = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    return 3 * arr(*shape) + 1, arr(c), arr(c), arr(*shape), arr(*shape)  # x, scale, bias, residual, output gradient


def _bn(tail, stats, onednn_on=True):
    """``f(x, scale, bias, residual) -> y`` in training mode: oneDNN's call with the tail fused in where it fuses
    (a ReLU, with or without the residual), else ``F.batch_norm`` then the tail; or (``onednn_on=False``)
    XLA's ops throughout."""
    relu, residual = tail.get("relu", False), tail.get("residual", False)

    def f(x, s, b, r):
        if onednn_on and relu:
            return onednn_batch_norm.batch_norm(x, s, b, 1e-5, residual=r if residual else None, relu=True)[0]
        if onednn_on:
            y = F.batch_norm(x, s, b, stats, training=True)[0]
        else:
            with without_onednn():
                y = F.batch_norm(x, s, b, stats, training=True)[0]
        y = y + r if residual else y
        return jnp.maximum(y, 0) if relu else y
    return f


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(jnp.abs(b).max())))


@needs_onednn
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tail", TAILS, ids=lambda t: "+".join(t) or "plain")
def test_values_statistics_gradients_and_jvps_equal_xla(shape, tail):
    x, s, b, r, ct = _case(shape)
    stats = F.init_batch_norm_stats(shape[-1])
    ours, ref = _bn(tail, stats), _bn(tail, stats, onednn_on=False)
    args = (x, s, b, r)
    _close(ours(*args), ref(*args))
    new = F.batch_norm(x, s, b, stats, training=True)[1]
    with without_onednn():
        new_ref = F.batch_norm(x, s, b, stats, training=True)[1]
    for k in ("mean", "var"):
        _close(new[k], new_ref[k])
    g_ours, g_ref = (jax.jit(jax.grad(lambda *a, f=f: jnp.vdot(f(*a), ct), argnums=(0, 1, 2, 3)))(*args) for f in (ours, ref))
    for u, v in zip(g_ours, g_ref):
        _close(u, v, 1e-4)
    tangents = (ct, jnp.cos(s), jnp.sin(b), jnp.cos(r))
    _close(jax.jvp(ours, args, tangents)[1], jax.jvp(ref, args, tangents)[1], 1e-4)
    _close(jax.jit(ours)(*args), ours(*args), 1e-6)


@needs_onednn
@pytest.mark.parametrize("tail", TAILS[:3], ids=lambda t: "+".join(t) or "plain")
def test_second_derivatives_equal_xla(tail):
    """Reverse over reverse and forward over reverse run the jax.numpy formulas for the tangent and backward."""
    x, s, b, r, _ = _case((4, 5, 5, 6), seed=1)
    stats = F.init_batch_norm_stats(6)
    ours, ref = _bn(tail, stats), _bn(tail, stats, onednn_on=False)
    # jitted: one compile per program rather than one per eager op
    gg = [jax.jit(jax.grad(lambda x, f=f: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.sin(f(x, s, b, r))))(x) ** 2)))(x)
          for f in (ours, ref)]
    _close(*gg, 1e-4)
    h = [jax.jit(jax.hessian(lambda s, f=f: jnp.sum(jnp.sin(f(x, s, b, r)))))(s) for f in (ours, ref)]
    _close(*h, 1e-4)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@needs_onednn
@pytest.mark.parametrize("tail", [TAILS[0], TAILS[2]], ids=["plain", "relu+residual"])
def test_vmap_over_data_and_over_parameters(tail):
    """Each vmapped member normalises with its own statistics (per-example gradients, ensembles)."""
    x, s, b, r, ct = _case((6, 4, 4, 5), seed=2)
    stats = F.init_batch_norm_stats(5)
    ours, ref = _bn(tail, stats), _bn(tail, stats, onednn_on=False)
    xs = jnp.stack([x, 2 * x - 1])
    _close(jax.vmap(ours, in_axes=(0, None, None, None))(xs, s, b, r),
           jnp.stack([ref(xs[0], s, b, r), ref(xs[1], s, b, r)]))
    grad = lambda f: jax.vmap(jax.grad(lambda s, x: jnp.vdot(f(x, s, b, r), ct)), in_axes=(0, None))  # noqa: E731
    _close(grad(ours)(jnp.stack([s, -s]), x), grad(ref)(jnp.stack([s, -s]), x), 1e-4)


@needs_onednn
def test_training_float32_runs_on_onednn_and_the_rest_on_xla():
    x, s, b, r, _ = _case((4, 3, 3, 8))
    stats = F.init_batch_norm_stats(8)
    prims = lambda f, *a: {str(e.primitive) for e in jax.make_jaxpr(f)(*a).eqns}  # noqa: E731
    train = lambda x: F.batch_norm(x, s, b, stats, training=True)[0]  # noqa: E731
    assert "onednn_batch_norm_forward" in prims(train, x)
    grad_prims = prims(jax.grad(lambda x: jnp.sum(train(x))), x)
    assert {"onednn_batch_norm_forward", "onednn_batch_norm_backward"} <= grad_prims
    for f, arg in [(lambda x: F.batch_norm(x, s, b, stats, training=False)[0], x),  # running statistics
                   (train, x.astype(jnp.bfloat16)),
                   (lambda x: jax.vmap(lambda x: F.batch_norm(x, s, b, stats, training=True, axis_name="i")[0],
                                       axis_name="i")(x), x)]:
        assert not any(p.startswith("onednn") for p in prims(f, arg))
    with without_onednn():  # a new function: JAX caches the trace of `train`
        assert not any(p.startswith("onednn") for p in prims(lambda x: train(x), x))


@needs_onednn
def test_missing_scale_and_bias_and_the_relu_workspace():
    x = _case((5, 4, 4, 3))[0]
    stats = F.init_batch_norm_stats(3)
    y = F.batch_norm(x, None, None, stats, training=True)[0]
    with without_onednn():
        _close(y, F.batch_norm(x, None, None, stats, training=True)[0])
    assert onednn_batch_norm._workspace_bytes(x, 1e-5, onednn_batch_norm.MODES["relu"]) >= 1


def test_bad_residual_and_unfused_residual_are_reported():
    x = jnp.ones((2, 3, 3, 4))
    with pytest.raises(ValueError, match=r"residual must have x's shape \(2, 3, 3, 4\), got residual.shape=\(2, 3, 3, 5\)"), \
            pytest.warns(DeprecationWarning, match="residual= and relu= are deprecated"):
        F.batch_norm(x, None, None, F.init_batch_norm_stats(4), training=True, residual=jnp.ones((2, 3, 3, 5)))
    with pytest.raises(ValueError, match="fused only with relu=True"):
        onednn_batch_norm.batch_norm(x, jnp.ones(4), jnp.zeros(4), 1e-5, residual=x)


def test_reference_is_batch_norm_then_add_then_relu():
    x, s, b, r, _ = _case((6, 5, 4))
    y, mean, var = onednn_batch_norm.reference(x, s, b, 1e-5, residual=r, relu=True)
    xn = np.asarray(x, np.float64).reshape(-1, 4)
    m, v = xn.mean(0), xn.var(0)
    expect = np.maximum((xn - m) / np.sqrt(v + 1e-5) * np.asarray(s) + np.asarray(b) + np.asarray(r).reshape(-1, 4), 0)
    _close(y.reshape(-1, 4), expect)
    _close(mean, m)
    _close(var, v)
