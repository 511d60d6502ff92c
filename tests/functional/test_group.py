"""p4/p4m: the group law, and exact equivariance of lifting/group convs, group pooling and group batch norm."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import act_regular, group_batch_norm, group_conv, group_order, group_pool, lifting_conv, transform_plane
from cnnjax.functional.group import cayley_table, inverse

GROUPS = ["p4", "p4m"]


@pytest.mark.parametrize("group", GROUPS)
def test_cayley_table_is_a_group_and_the_actions_are_homomorphisms(rng, group):
    n = group_order(group)
    t = cayley_table(group)
    assert all(sorted(row) == list(range(n)) for row in t)  # Latin square
    for a, b, c in itertools.product(range(n), repeat=3):
        assert t[t[a, b], c] == t[a, t[b, c]]
    assert all(t[g, inverse(g)] == 0 for g in range(n))
    img = jnp.asarray(rng.normal(size=(5, 5, 1)))
    fmap = jnp.asarray(rng.normal(size=(5, 5, 3 * n)))
    for a, b in itertools.product(range(n), repeat=2):
        np.testing.assert_array_equal(transform_plane(transform_plane(img, b), a), transform_plane(img, t[a, b]))
        np.testing.assert_array_equal(act_regular(act_regular(fmap, b, group), a, group), act_regular(fmap, t[a, b], group))


def test_rotation_is_a_quarter_turn_and_mirrors_flip_the_width():
    x = jnp.arange(6.0).reshape(2, 3, 1)
    np.testing.assert_array_equal(transform_plane(x, 1), jnp.rot90(x, 1, axes=(0, 1)))
    np.testing.assert_array_equal(transform_plane(x, 4), x[:, ::-1])


def _net(group, padding, stride=1):
    n = group_order(group)
    rng = np.random.default_rng(1)
    w1 = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(3, 3, 4, n, 3)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
    return lambda x: group_conv(jax.nn.relu(lifting_conv(x, w1, group=group, padding=padding, stride=stride)), w2, b,
                                group=group, padding=padding)


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("padding,size,stride", [(1, 9, 1), (0, 10, 1), (1, 9, 2)])
def test_lifting_and_group_convs_are_equivariant_under_every_element(rng, group, padding, size, stride):
    f = _net(group, padding, stride)
    x = jnp.asarray(rng.normal(size=(2, size, size, 2)), jnp.float32)
    y = f(x)
    for g in range(group_order(group)):
        a, b = f(transform_plane(x, g)), act_regular(y, g, group)
        assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) < 1e-6


@pytest.mark.parametrize("group", GROUPS)
def test_group_pool_is_invariant_and_group_batch_norm_equivariant(rng, group):
    n = group_order(group)
    x = jnp.asarray(rng.normal(size=(4, 6, 6, 5 * n)), jnp.float32)
    stats = {"mean": jnp.zeros(5), "var": jnp.ones(5)}
    scale, bias = jnp.asarray(rng.normal(size=5), jnp.float32), jnp.asarray(rng.normal(size=5), jnp.float32)
    bn = lambda a: group_batch_norm(a, scale, bias, stats, group=group, training=True)  # noqa: E731
    y, new = bn(x)
    # One statistic per field, pooled over positions and the group axis.
    fields = np.asarray(x).reshape(4, 6, 6, 5, n)
    np.testing.assert_allclose(new["mean"], 0.1 * fields.mean(axis=(0, 1, 2, 4)), rtol=1e-4, atol=1e-6)
    for g in range(n):
        moved = act_regular(x, g, group)
        np.testing.assert_allclose(bn(moved)[0], act_regular(y, g, group), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(group_pool(moved, group), transform_plane(group_pool(x, group), g), rtol=1e-6)
    np.testing.assert_allclose(group_pool(x, group, "mean"), fields.mean(-1), rtol=1e-5, atol=1e-6)


def test_group_conv_jits_and_vmaps(rng):
    f = _net("p4", 1)
    x = jnp.asarray(rng.normal(size=(3, 7, 7, 2)), jnp.float32)
    np.testing.assert_allclose(jax.jit(f)(x), jax.vmap(f)(x), rtol=1e-5, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown group 'p6'"):
        group_order("p6")
    with pytest.raises(ValueError, match=r"group_conv: x has 12 channels but w expects C_in \* \|G\| = 2 \* 4"):
        group_conv(jnp.ones((1, 5, 5, 12)), jnp.ones((3, 3, 2, 4, 1)))
    with pytest.raises(ValueError, match=r"lifting_conv: w must be \(k, k, C_in, C_out\) with a square kernel"):
        lifting_conv(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"group_pool: the channel count 6 is not a multiple of \|G\| = 4"):
        group_pool(jnp.ones((1, 6)), "p4")
