"""The C_N/D_N zoo family and its layers: matched sizes, steerable parameters, exact quarter-turn invariance,
approximate invariance off the grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cnnjax.functional as F
from cnnjax import models, nn
from cnnjax.equivariance import invariance_error, rotate
from cnnjax.models.gcnn import matched_channels
from tests.models.test_zoo import abstract, n_params

# parameter counts at the defaults (7 layers, 3x3), matched to Z2CNN's 22,270 by matched_channels
COUNTS = {"z2": 22_270, "C4": 21_940, "D4": 21_409, "C8": 23_608, "C16": 20_926, "D8": 20_926, "C3": 21_598}
BAND_LIMITED = {"C8": 23_550, "D8": 24_810, "z2": 22_270, "C4": 21_940}  # max_frequency=1: 4 basis functions, not 6


@pytest.mark.parametrize("group", sorted(COUNTS))
def test_parameter_counts_are_pinned_and_matched(group):
    assert n_params(abstract("gcnn", group=group)) == COUNTS[group]
    assert abs(COUNTS[group] - COUNTS["z2"]) / COUNTS["z2"] < 0.07


@pytest.mark.parametrize("group", sorted(BAND_LIMITED))
def test_band_limited_parameter_counts(group):  # on-grid groups and z2 ignore max_frequency
    assert n_params(abstract("gcnn", group=group, max_frequency=1)) == BAND_LIMITED[group]


def test_off_grid_layers_own_basis_coefficients_and_on_grid_layers_pixels():
    lift = nn.LiftingConv(2, 3, 3, group="C8", padding=1, rngs=nnx.Rngs(0))
    conv = nn.GroupConv(3, 4, 5, group="D8", padding=2, rngs=nnx.Rngs(0))
    assert lift.coefficients.shape == (6, 2, 3) and conv.coefficients.shape == (13, 3, 16, 4)
    assert not hasattr(nn.LiftingConv(2, 3, 3, group="C4", rngs=nnx.Rngs(0)), "coefficients")
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 2))
    np.testing.assert_allclose(lift(x), F.lifting_conv(x, lift.filters(), lift.bias[...], group="C8", padding=1),
                               rtol=1e-5, atol=1e-5)
    # He's pixel variance through the basis: std about sqrt(2 / (k k C_in |G|))
    big = nn.GroupConv(16, 16, 3, group="C8", rngs=nnx.Rngs(0))
    assert abs(float(jnp.std(big.filters())) / np.sqrt(2 / (9 * 16 * 8)) - 1) < 0.15
    with pytest.raises(ValueError, match="GroupConv: 'C8' rotates filters off the pixel grid.*odd"):
        nn.GroupConv(2, 2, 4, group="C8", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LiftingConv: unknown group 'C0'"):
        nn.LiftingConv(2, 2, 3, group="C0", rngs=nnx.Rngs(0))
    assert nn.GroupConv(2, 3, 5, group="C8", max_frequency=1, rngs=nnx.Rngs(0)).coefficients.shape == (7, 2, 8, 3)
    with pytest.raises(ValueError, match="GroupConv: max_frequency limits the steerable filters.*'C4' owns pixel filters"):
        nn.GroupConv(2, 2, 3, group="C4", max_frequency=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LiftingConv: filter_basis: max_frequency must be None or an int >= 0, got 1.5"):
        nn.LiftingConv(2, 2, 3, group="C8", max_frequency=1.5, rngs=nnx.Rngs(0))


def test_matched_channels():
    assert [matched_channels(g) for g in ("z2", "C4", "D4", "C8", "C16", "D8")] == [20, 10, 7, 9, 6, 6]
    assert matched_channels("C8", kernel_size=5) == round(20 * np.sqrt(25 / (13 * 8)))


def _digits_in_a_disc():
    """Smooth digit-like images whose background is zero, so rotating them brings in nothing."""
    from sklearn.datasets import load_digits

    d = load_digits().images[:16].astype(np.float32) / 16
    x = F.resize(jnp.asarray(d[..., None]), (16, 16), "bicubic")
    return jnp.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))


@pytest.mark.parametrize("group", ["C8", pytest.param("D8", marks=pytest.mark.integration),
                                   pytest.param("C16", marks=pytest.mark.integration)])  # expensive ones: integration
def test_logits_are_invariant_to_quarter_turns_and_nearly_to_the_other_rotations(group):
    x = _digits_in_a_disc()
    model = models.create("gcnn", group=group, padding=1, depth=4, pool_after=99, seed=0)
    z2 = models.create("gcnn", group="z2", padding=1, depth=4, pool_after=99, seed=0)
    model.eval(), z2.eval()
    quarter = invariance_error(model, x, rotate([90, 180, 270]))
    assert float(quarter.max()) < 1e-5
    step = 360 / F.group_order(group) * (2 if group.startswith("D") else 1)
    off = float(invariance_error(model, x, rotate(step, mode="bicubic"))[0])
    z2_off = float(invariance_error(z2, x, rotate(step, mode="bicubic"))[0])
    # measured at initialisation (seed 0, 16 digits): C8 0.010 vs Z2 0.057 at 45 degrees, C16 0.015 vs 0.038 at
    # 22.5; a random network's logits barely depend on the input, which keeps Z2's error small too. Trained
    # networks, where the acceptance's tenth is checked: the rotated_digits study.
    assert off < z2_off / 2, (off, z2_off)
    if group == "C8":  # a band-limited basis turns better off the grid: 0.0083 vs 0.0102 here (seed 0)
        band = models.create("gcnn", group=group, padding=1, depth=4, pool_after=99, seed=0, max_frequency=1)
        band.eval()
        assert float(invariance_error(band, x, rotate([90, 180, 270])).max()) < 1e-5
        assert float(invariance_error(band, x, rotate(step, mode="bicubic"))[0]) < off
