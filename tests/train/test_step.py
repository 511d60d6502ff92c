"""The jitted training step: mixed precision keeps float32 master state while computing in bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from cnnjax import nn
from cnnjax.train.step import cast_floating, init_state, make_eval_step, make_train_step


class _ConvBN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nn.Conv(1, 8, (3,), padding=1, rngs=rngs)
        self.bn = nn.BatchNorm(8)
        self.head = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.bn(self.conv(x))).mean(-2))


def _data(n=64):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 16, 1)) + y[:, None, None]  # learnable: the class shifts the mean
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


def _run(compute_dtype, steps=30):
    tx = optax.adam(1e-2)
    tdef, edef, state = init_state(_ConvBN(nnx.Rngs(0)), tx, 0)
    step = make_train_step(tdef, tx, 32, compute_dtype=compute_dtype)
    x, y = _data()
    perm = jnp.arange(64)
    losses = []
    for i in range(steps):
        before = float(state["acc"]["loss"])  # read before the step donates the state
        state = step(state, x, y, perm, i % 2)
        losses.append((float(state["acc"]["loss"]) - before) / 32)
    return state, losses, (tdef, edef, x, y)


def test_bfloat16_step_keeps_float32_params_optimizer_state_and_statistics():
    state, losses, _ = _run("bfloat16")
    for part in ("params", "opt_state", "rest"):
        dtypes = {a.dtype for a in jax.tree.leaves(state[part]) if jnp.issubdtype(a.dtype, jnp.floating)}
        assert dtypes == {jnp.dtype(jnp.float32)}, (part, dtypes)
    assert losses[-1] < 0.5 * losses[0]


def test_bfloat16_step_really_computes_in_bfloat16_and_tracks_float32():
    tx = optax.sgd(0.1)
    tdef, _, state = init_state(_ConvBN(nnx.Rngs(0)), tx, 0)
    x, y = _data()
    args = (x, y, jnp.arange(64), 0)
    jaxpr = str(jax.make_jaxpr(make_train_step(tdef, tx, 32, compute_dtype="bfloat16", jit=False))(state, *args))
    assert "bf16[32,16,8]" in jaxpr  # the conv's output
    # jitted without donation (the state is read again below): one compile rather than one per eager op
    f32 = jax.jit(make_train_step(tdef, tx, 32, jit=False), static_argnums=4)(state, *args)["params"]
    bf16 = jax.jit(make_train_step(tdef, tx, 32, compute_dtype="bfloat16", jit=False), static_argnums=4)(state, *args)["params"]
    delta = lambda p: jnp.concatenate([(a - b).ravel() for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(state["params"]))])
    d32, d16 = delta(f32), delta(bf16)
    assert float(jnp.linalg.norm(d16 - d32) / jnp.linalg.norm(d32)) < 3e-2  # bf16 has 8 mantissa bits


def test_bfloat16_eval_matches_float32_eval_to_bfloat16_tolerance():
    state, _, (tdef, edef, x, y) = _run("float32", steps=5)
    args = (state["params"], state["rest"], x, y)
    loss32, top1_32, _, count = make_eval_step(edef)(*args)
    loss16, top1_16, _, _ = make_eval_step(edef, "bfloat16")(*args)
    assert int(count) == len(y)
    np.testing.assert_allclose(float(loss16), float(loss32), rtol=3e-2)
    assert abs(int(top1_16) - int(top1_32)) <= 3


def test_cast_floating_leaves_integers_alone():
    tree = {"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}
    out = cast_floating(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["step"].dtype == jnp.int32


def test_unknown_compute_dtype_is_a_clear_error():
    tdef, _, _ = init_state(_ConvBN(nnx.Rngs(0)), optax.sgd(0.1), 0)
    with pytest.raises(ValueError, match="compute_dtype must be one of float32, bfloat16, got 'float16'"):
        make_train_step(tdef, optax.sgd(0.1), 32, compute_dtype="float16")


def test_jit_step_compiles_with_the_conv_options_and_equals_jax_jit():
    from cnnjax.functional import compiler_options, conv_strategy
    from cnnjax.train.step import jit_step

    f = lambda x, w: jnp.tanh(nn.Conv(8, 8, (3, 3), padding=1, rngs=nnx.Rngs(0))(x) * w).sum()  # noqa: E731
    x, w = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 8)), jnp.float32), jnp.float32(0.5)
    with conv_strategy("lax"):  # the options are for XLA's own convolution (the strategy is fixed when traced)
        tuned = jit_step(jax.grad(f, argnums=(0, 1)))
        for a, b in zip(tuned(x, w), jax.jit(jax.grad(f, argnums=(0, 1)))(x, w)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        hlo = tuned.lower(x, w).as_text()  # lower/trace/eval_shape are jax.jit's
    options = compiler_options()
    assert (options != {}) == (jax.default_backend() == "cpu")
    assert "convolution" in hlo


def test_jit_step_nested_in_another_transformation_runs_as_a_plain_jit():
    from cnnjax.train.step import jit_step

    inc = jit_step(lambda c, x: (c + x, c * x))
    np.testing.assert_allclose(jax.jit(lambda c: inc(c, 2.0)[0])(1.0), 3.0)
    np.testing.assert_allclose(jax.vmap(lambda c: inc(c, 2.0)[1])(jnp.arange(3.0)), [0.0, 2.0, 4.0])
    total, prods = jax.lax.scan(inc, 1.0, jnp.arange(1.0, 4.0))
    np.testing.assert_allclose(total, 7.0)
    np.testing.assert_allclose(prods, [1.0, 4.0, 12.0])
    with pytest.raises(ValueError, match="boom"):  # other errors pass through
        jit_step(lambda x: (_ for _ in ()).throw(ValueError("boom")))(1.0)
