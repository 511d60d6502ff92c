"""Receptive fields: the analytic pass agrees with gradients, grows as the textbook says, and handles skips."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnjax.functional as F
from cnnjax import models
from cnnjax.inspect import empirical_receptive_field, receptive_field


def _stack(layers, n=2):
    """A linear conv/avg-pool stack (no ReLU, so every path carries gradient)."""
    rng = np.random.default_rng(0)
    ws = [jnp.asarray(np.abs(rng.normal(size=(k,) * n + (1, 1))) + 0.1, jnp.float32) for kind, k, *_ in layers if kind == "conv"]

    def f(x):
        it = iter(ws)
        for kind, k, s, d in layers:
            x = F.conv(x, next(it), stride=s, dilation=d) if kind == "conv" else F.avg_pool(x, (k,) * n, s, dilation=d)
        return x

    return f


@pytest.mark.parametrize("depth, expected", [(1, 3), (2, 5), (3, 7), (4, 9)])
def test_stacked_three_by_three_convs(depth, expected):
    f = _stack([("conv", 3, 1, 1)] * depth)
    row = receptive_field(f, (1, 32, 32, 1))[0]
    assert row.size == (expected, expected) and row.jump == (1, 1)
    assert empirical_receptive_field(f, (1, 32, 32, 1)) == (expected, expected)


@given(st.lists(st.tuples(st.sampled_from(["conv", "pool"]), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2)), min_size=1, max_size=4))
def test_analytic_equals_empirical_with_strides_dilations_and_pooling(layers):
    f = _stack(layers, n=1)
    size = 96
    row = receptive_field(f, (1, size, 1))[0]
    out = jax.eval_shape(f, jax.ShapeDtypeStruct((1, size, 1), jnp.float32)).shape[1]
    if out < 1 or row.size[0] > size // 2:
        return
    assert empirical_receptive_field(f, (1, size, 1)) == row.size
    jump = np.prod([s for _, _, s, _ in layers])
    assert row.jump == (jump,)


def test_residual_block_takes_the_union_of_its_branches():
    w = jnp.ones((3, 3, 1, 1))

    def block(x):
        return F.conv(F.conv(x, w, padding=1), w, padding=1) + F.avg_pool(x, (1, 1))

    row = receptive_field(block, (1, 16, 16, 1))[0]
    assert row.size == (5, 5) and row.start == (-2, -2)
    assert empirical_receptive_field(block, (1, 16, 16, 1)) == (5, 5)


@pytest.mark.parametrize("c", [1, 2])
def test_fields_do_not_depend_on_how_the_cpu_computes_convs(c):
    # On CPU a 1-channel conv runs as im2col (which flattens (N, H, W) for its matrix product), a
    # depthwise one as a sum of shifted views, and conv_transpose with kernel == stride as a matrix
    # product whose tiles are interleaved by reshaping: the analysis must still see the convolutions.
    w, up = jnp.ones((3, 3, 1, c)), jnp.ones((2, 2, c, c))

    def f(x):
        return F.conv_transpose(F.conv(x, w, stride=2, groups=c), up, stride=2)

    row = receptive_field(f, (1, 16, 16, c))[0]
    assert row.size == (4, 4) and row.jump == (1, 1) and row.start == (-1, -1)
    assert receptive_field(lambda x: F.conv(x, w, stride=2, groups=c), (1, 16, 16, c))[0].size == (3, 3)


def test_cifar_resnet_fields_by_hand():
    rows = {r.name: r for r in receptive_field(models.create("resnet20"), (1, 32, 32, 3))}
    assert rows["stem"].size == (3, 3)
    assert rows["layer1"].size == (3 + 6 * 2,) * 2  # six 3x3 convs at jump 1
    assert rows["layer2"].size == (15 + 2 + 5 * 4,) * 2 and rows["layer2"].jump == (2, 2)
    assert rows["pre_logits"].size is None  # global pooling sees everything


def test_position_moves_the_field_by_the_jump():
    f = _stack([("conv", 3, 2, 1), ("conv", 3, 1, 1)])
    first, unit = receptive_field(f, (1, 32, 32, 1))[0], receptive_field(f, (1, 32, 32, 1), position=(3, 5))[0]
    assert first.size == unit.size == (7, 7)
    assert unit.start == (first.start[0] + 3 * 2, first.start[1] + 5 * 2)
    # the gradient of that unit touches exactly [start, start + size)
    x = jnp.ones((1, 32, 32, 1))
    g = np.asarray(jax.grad(lambda a: f(a)[0, 3, 5, 0])(x))[0, :, :, 0]
    rows, cols = np.nonzero(g)
    assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (*unit.start, unit.start[0] + 7, unit.start[1] + 7)


def test_max_pool_and_strides_in_simple_cnn():
    rows = {r.name: r for r in receptive_field(models.create("simple_cnn"), (1, 28, 28, 1))}
    assert (rows["conv1"].size, rows["conv1"].jump, rows["conv1"].start) == ((4, 4), (2, 2), (-1, -1))
    assert (rows["conv2"].size, rows["conv2"].jump) == ((10, 10), (4, 4))
