"""cnnjax.nn.ConvReLUMaxPool: the layer-by-layer Sequential's function, parameters and paths, evaluated pool first."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import nn

STAGES = [  # (input shape, conv kwargs, pool args)
    ((4, 12, 12, 1), dict(in_channels=1, out_channels=6, kernel_size=(3, 3), padding=1), ((2, 2),)),  # SimpleCNN's
    ((2, 14, 14, 6), dict(in_channels=6, out_channels=16, kernel_size=(5, 5)), ((2, 2),)),  # LeNet-5's second
    ((2, 13, 11, 3), dict(in_channels=3, out_channels=8, kernel_size=(3, 3), stride=2), ((3, 3), 2, 1)),  # overlapping
    ((3, 20, 4), dict(in_channels=4, out_channels=5, kernel_size=(3,)), ((2,),)),  # 1-D
    ((2, 8, 8, 4), dict(in_channels=4, out_channels=4, kernel_size=(3, 3), padding=1, use_bias=False), ((2, 2),)),
]


def _pair(shape, conv_kw, pool_args, seed=0, **extra):
    conv = nn.Conv(**conv_kw, **extra, rngs=nnx.Rngs(seed))
    if conv.bias is not None:  # a non-zero bias, so the order of bias and pooling matters for rounding
        conv.bias[...] = jax.random.normal(jax.random.key(seed + 1), conv.bias.shape)
    stage = nn.ConvReLUMaxPool(conv, nn.MaxPool(*pool_args))
    plain = nnx.Sequential(conv, jax.nn.relu, nn.MaxPool(*pool_args))
    x = jax.random.normal(jax.random.key(seed + 2), shape)
    return stage, plain, x


@nnx.jit  # one compile per module and shape, not one per eager op
def _grads(module, x, ct):
    return nnx.grad(lambda m, x: jnp.sum(m(x) * ct), argnums=(0, 1))(module, x)


_apply = nnx.jit(lambda m, x: m(x))


@pytest.mark.parametrize("shape, conv_kw, pool_args", STAGES)
def test_same_values_and_gradients_as_layer_by_layer(shape, conv_kw, pool_args):
    stage, plain, x = _pair(shape, conv_kw, pool_args)
    y = _apply(stage, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(_apply(plain, x)))  # max commutes with + b and ReLU, bit for bit
    assert bool((y == 0).any())  # windows with no positive value, whose gradient ReLU stops
    ct = jax.random.normal(jax.random.key(9), y.shape)
    (gm, gx), (pm, px) = _grads(stage, x, ct), _grads(plain, x, ct)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(px), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(nnx.state(gm)), jax.tree.leaves(nnx.state(pm))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_mixed_precision_matches_layer_by_layer():
    stage, plain, x = _pair(*STAGES[0], dtype=jnp.bfloat16)
    y = stage(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(plain(x), np.float32))


def test_parameters_and_paths_are_the_sequentials():
    stage, plain, _ = _pair(*STAGES[0])
    assert isinstance(stage, nnx.Sequential) and stage.layers[0] is plain.layers[0]
    paths = lambda m: [p for p, _ in nnx.to_flat_state(nnx.state(m, nnx.Param))]  # noqa: E731
    assert paths(stage) == paths(plain) == [("layers", 0, "bias"), ("layers", 0, "kernel")]


def test_other_layers_are_a_clear_error():
    conv = nn.Conv(1, 2, (3, 3), rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="ConvReLUMaxPool: needs a cnnjax.nn.Conv and a cnnjax.nn.MaxPool, got Conv and AvgPool"):
        nn.ConvReLUMaxPool(conv, nn.AvgPool((2, 2)))
