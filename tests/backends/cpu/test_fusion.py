"""The CPU backend's fusions inside cnnjax's steps: the same function as the layers written one by one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import functional as F
from cnnjax import models
from cnnjax.backends.cpu import fusion, onednn
from cnnjax.functional import dispatch

needs_onednn = pytest.mark.skipif(not onednn.available(), reason=f"oneDNN unavailable: {onednn.unavailable_reason()}")


def _loss(name):
    graph, params, rest = nnx.split(models.create(name), nnx.Param, ...)

    def loss(params, rest, x):
        model = nnx.merge(graph, params, rest, copy=True)
        return jnp.sum(jnp.sin(model(x))), nnx.state(model, nnx.BatchStat)
    return loss, params, rest


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU backend's rewrite")
@pytest.mark.parametrize("name, shape, bit_equal", [("simple_cnn", (4, 28, 28, 1), False), ("lenet5", (2, 32, 32, 1), False),
                                                    ("resnet20", (2, 32, 32, 3), True)])
def test_fused_steps_equal_the_layers_written_one_by_one(name, shape, bit_equal):
    loss, params, rest = _loss(name)
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    plain = jax.jit(jax.value_and_grad(loss, has_aux=True))
    fused = jax.jit(jax.value_and_grad(dispatch.fused(loss), has_aux=True))
    (l1, s1), g1 = plain(params, rest, x)
    (l2, s2), g2 = fused(params, rest, x)
    assert float(l1) == float(l2)  # the forward values are the same, bit for bit
    for a, b in zip(jax.tree.leaves((s1, g1)), jax.tree.leaves((s2, g2))):
        if bit_equal:
            np.testing.assert_array_equal(a, b)
        else:  # the pooled bias gradient sums the pooled map, in another order
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_onednn
def test_the_rewrite_fuses_residual_blocks_and_conv_stages():
    loss, params, rest = _loss("resnet20")
    jaxpr = fusion.rewrite(loss)
    text = str(jax.make_jaxpr(jaxpr)(params, rest, jnp.ones((2, 32, 32, 3))))
    assert "mode=2" in text and "mode=1" in text  # relu(bn(x) + r) and relu(bn(x)) as single oneDNN calls
    loss, params, rest = _loss("simple_cnn")
    x = jnp.ones((2, 28, 28, 1))
    plan = fusion._plan(jax.make_jaxpr(loss)(params, rest, x).jaxpr)
    assert plan is not None and len(plan.replace) == 2  # both conv, relu, pool stages


@needs_onednn
def test_an_intermediate_with_another_use_is_not_fused():
    stats = F.init_batch_norm_stats(4)

    def f(x, r):
        y = F.batch_norm(x, None, None, stats, training=True)[0]
        return jax.nn.relu(y + r), y  # y is read again: the fused call would not produce it

    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 5, 4)), jnp.float32)
    assert fusion._plan(jax.make_jaxpr(f)(x, x).jaxpr) is None
    np.testing.assert_array_equal(fusion.rewrite(f)(x, x)[0], f(x, x)[0])


def test_fused_is_the_function_itself_under_the_lax_strategy():
    f = lambda x: jnp.sum(F.max_pool(jax.nn.relu(x + 1.0), (2, 2)))  # noqa: E731
    with F.conv_strategy("lax"):
        assert "reduce_window" in str(jax.make_jaxpr(dispatch.fused(f))(jnp.ones((1, 4, 4, 2))))
