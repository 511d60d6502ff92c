"""C_N/D_N: the group law, exact equivariance of lifting/group convs, group pooling and group batch norm under quarter
turns and mirrors, and measured (small) errors under the rotations off the pixel grid."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnnjax.functional as F
from cnnjax.functional import act_regular, group_batch_norm, group_conv, group_order, group_pool, lifting_conv, transform_plane
from cnnjax.functional.group import cayley_table, element_angle, inverse, parse_group

GROUPS = ["p4", "p4m"]
OFF_GRID = ["C8", "D8", "C16", "C3"]


@pytest.mark.parametrize("group", GROUPS + ["C8", "D6", "C3"])
def test_cayley_table_is_a_group_and_the_actions_are_homomorphisms(rng, group):
    n = group_order(group)
    t = cayley_table(group)
    assert all(sorted(row) == list(range(n)) for row in t)  # Latin square
    for a, b, c in itertools.product(range(n), repeat=3):
        assert t[t[a, b], c] == t[a, t[b, c]]
    assert all(t[g, inverse(g, group)] == 0 for g in range(n))
    if group not in GROUPS:
        return  # off-grid rotations resample, so the plane action is a homomorphism only approximately
    img = jnp.asarray(rng.normal(size=(5, 5, 1)))
    fmap = jnp.asarray(rng.normal(size=(5, 5, 3 * n)))
    for a, b in itertools.product(range(n), repeat=2):
        np.testing.assert_array_equal(transform_plane(transform_plane(img, b), a), transform_plane(img, t[a, b]))
        np.testing.assert_array_equal(act_regular(act_regular(fmap, b, group), a, group), act_regular(fmap, t[a, b], group))


def test_rotation_is_a_quarter_turn_and_mirrors_flip_the_width():
    x = jnp.arange(6.0).reshape(2, 3, 1)
    np.testing.assert_array_equal(transform_plane(x, 1), jnp.rot90(x, 1, axes=(0, 1)))
    np.testing.assert_array_equal(transform_plane(x, 4), x[:, ::-1])


def test_group_names_and_aliases():
    assert parse_group("p4") == parse_group("C4") == (4, False) and parse_group("p4m") == parse_group("D4") == (4, True)
    assert group_order("C16") == 16 and group_order("D8") == 16 and element_angle(11, "D8") == (1, 135.0)
    np.testing.assert_array_equal(cayley_table("C4"), cayley_table("p4"))
    np.testing.assert_array_equal(cayley_table("D4"), cayley_table("p4m"))


def test_off_grid_elements_rotate_the_plane_and_quarter_turns_stay_permutations(rng):
    x = jnp.asarray(rng.normal(size=(2, 7, 7, 3)), jnp.float32)
    np.testing.assert_allclose(transform_plane(x, 1, group="C8"), F.rotate(x, 45.0), atol=1e-6)
    np.testing.assert_array_equal(transform_plane(x, 2, group="C8"), jnp.rot90(x, 1, axes=(1, 2)))
    np.testing.assert_allclose(transform_plane(x, 9, group="D8"), F.rotate(x[:, :, ::-1], 45.0), atol=1e-6)


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


def _on_grid_elements(group):
    return [g for g in range(group_order(group)) if element_angle(g, group)[1] % 90 == 0]


@pytest.mark.parametrize("group", OFF_GRID)
def test_off_grid_groups_are_exact_under_quarter_turns_and_mirrors(rng, group):
    f = jax.jit(_net(group, 1))
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 2)), jnp.float32)
    y = f(x)
    exact = _on_grid_elements(group)
    assert len(exact) == {"C8": 4, "D8": 8, "C16": 4, "C3": 1}[group]
    for g in exact:
        a, b = f(transform_plane(x, g, group=group)), act_regular(y, g, group)
        assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) < 1e-5, (group, g)


def _smooth_disc_images(rng, count=4, size=29):
    """Band-limited images that vanish outside a disc, so that rotating them loses nothing at the corners."""
    x = F.resize(jnp.asarray(rng.normal(size=(count, 5, 5, 2)), jnp.float32), (size - 8, size - 8), "bicubic")
    x = jnp.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    inside = np.hypot(*(np.mgrid[:size, :size] - (size - 1) / 2)) <= (size - 8) / 2
    return x * jnp.asarray(inside[..., None], jnp.float32)


@pytest.mark.parametrize("group, angle_step", [("C8", 1), ("C16", 1), ("C16", 2)])
def test_off_grid_rotations_are_nearly_equivariant_unlike_a_planar_conv(rng, group, angle_step):
    x = _smooth_disc_images(rng)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    lift = jax.jit(lambda a: lifting_conv(a, w, group=group, padding=1))
    planar = jax.jit(lambda a: F.conv(a, w, padding=1))
    disc = jnp.asarray(np.hypot(*(np.mgrid[:29, :29] - 14)) <= 11)[None, :, :, None]

    def err(a, b):
        return float(jnp.linalg.norm((a - b) * disc) / jnp.linalg.norm(b * disc))

    g = angle_step  # 45 or 22.5 degrees (C16: 22.5 and 45)
    lift_err = err(lift(transform_plane(x, g, group=group)), act_regular(lift(x), g, group))
    planar_err = err(planar(transform_plane(x, g, group=group)), transform_plane(planar(x), g, group=group))
    # measured (seed 0): C8 at 45 degrees 0.06 against the planar conv's 0.33; C16 at 22.5 degrees 0.05 against 0.18
    assert lift_err < 0.08 and lift_err < planar_err / 3, (lift_err, planar_err)


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
    with pytest.raises(ValueError, match=r"unknown group 'C0'"):
        group_order("C0")
    with pytest.raises(ValueError, match=r"lifting_conv: 'C8' rotates filters off the pixel grid.*odd"):
        lifting_conv(jnp.ones((1, 6, 6, 1)), jnp.ones((2, 2, 1, 1)), group="C8")
    with pytest.raises(ValueError, match=r"group_conv: x has 12 channels but w expects C_in \* \|G\| = 2 \* 4"):
        group_conv(jnp.ones((1, 5, 5, 12)), jnp.ones((3, 3, 2, 4, 1)))
    with pytest.raises(ValueError, match=r"lifting_conv: w must be \(k, k, C_in, C_out\) with a square kernel"):
        lifting_conv(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"group_pool: the channel count 6 is not a multiple of \|G\| = 4"):
        group_pool(jnp.ones((1, 6)), "p4")
