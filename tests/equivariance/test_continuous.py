"""Any-angle rotations, scalings and affine maps; C_N/D_N group actions; the disc mask; error curves; Lie
derivatives along rotation and scaling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnnjax.functional as F
from cnnjax.equivariance import (
    affine,
    disc_mask,
    equivariance_error,
    error_curve,
    group_action,
    invariance_error,
    lie_derivative,
    plot_error_curves,
    rot90,
    rotate,
    scale,
)
from cnnjax.equivariance.metrics import vector_field


def _blob(size=32, centre=(4.0, -3.0)):
    """A smooth off-centre Gaussian and its continuous formula, ``(1, size, size, 1)``."""
    i, j = np.mgrid[:size, :size] - (size - 1) / 2
    X, Y = j, -i  # noqa: N806 (the maths' names)

    def g(X, Y):  # noqa: N803
        return np.exp(-((X - centre[0]) ** 2 + (Y - centre[1]) ** 2 / 4) / 8)

    return jnp.asarray(g(X, Y), jnp.float32)[None, ..., None], g, X, Y


def test_rotate_quarter_turns_equal_rot90_and_the_family_vmaps(rng):
    x = jnp.asarray(rng.normal(size=(2, 7, 7, 3)), jnp.float32)
    ys = rotate([0, 90, 180, 270]).apply_all(x)
    for k in range(4):
        np.testing.assert_allclose(ys[k], rot90(k)(x) if k else x, atol=1e-6)


def test_rotation_by_an_angle_moves_a_blob_like_the_continuous_rotation():
    img, g, X, Y = _blob()
    t = np.deg2rad(30.0)
    c, s = np.cos(-t), np.sin(-t)
    expected = g(c * X - s * Y, s * X + c * Y)  # (R_t f)(p) = f(R_-t p)
    got = np.asarray(rotate(30.0, mode="bicubic")(img))[0, ..., 0]
    assert np.abs(got - expected).max() < 0.02


def test_scale_and_affine_match_their_formulas():
    img, g, X, Y = _blob()
    got = np.asarray(scale(1.5, mode="bicubic")(img))[0, ..., 0]
    assert np.abs(got - g(X / 1.5, Y / 1.5)).max() < 0.02
    np.testing.assert_allclose(scale(1.0)(img), img, atol=1e-6)
    np.testing.assert_allclose(affine(np.eye(2, 3))(img), img, atol=1e-6)
    zoom = affine([[1 / 1.5, 0.0, 0.0], [0.0, 1 / 1.5, 0.0]], mode="bicubic")
    np.testing.assert_allclose(zoom(img), scale(1.5, mode="bicubic")(img), atol=1e-6)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_c8_group_action_on_regular_maps_matches_a_lifting_conv_at_quarter_turns(rng):
    w = jnp.asarray(rng.normal(size=(3, 3, 1, 2)), jnp.float32)
    f = lambda a: F.lifting_conv(a, w, group="C8", padding=1)  # noqa: E731
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 1)), jnp.float32)
    errs = equivariance_error(f, x, group_action("C8", elements=[0, 2, 4, 6]),
                              out_transform=group_action("C8", on="regular", elements=[0, 2, 4, 6]))
    assert float(errs.max()) < 1e-5


def test_disc_mask_drops_what_a_rotation_brings_in():
    m = disc_mask((12, 12))
    assert m[6, 6] and not m[0, 0] and not m[0, 6] and m.sum() == 80
    x = jnp.ones((1, 12, 12, 1))
    # a pointwise map: rotating its output fills the corners with zeros, its output of the rotated input with ones;
    # unmasked that counts as error, masked it does not
    shifted = lambda a: a + 1  # noqa: E731
    assert float(equivariance_error(shifted, x, rotate(45.0))[0]) > 0.1
    assert float(equivariance_error(shifted, x, rotate(45.0), mask="disc")[0]) < 1e-6
    with pytest.raises(ValueError, match="needs 2 spatial dims"):
        disc_mask((4,))


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_error_curve_and_its_plot(tmp_path):
    x = _blob()[0]
    radial = jnp.asarray(np.exp(-np.hypot(*(np.mgrid[:32, :32] - 15.5)) ** 2 / 60), jnp.float32)[..., None]
    invariant = lambda a: jnp.sum(a * radial, axis=(1, 2))  # noqa: E731
    corner = lambda a: jnp.sum(a[:, :16, :16], axis=(1, 2))  # noqa: E731
    angles = [0, 30, 45, 90]
    c_inv = error_curve(invariant, x, rotate(angles, mode="bicubic"), invariant=True)
    c_cor = error_curve(corner, x, rotate(angles, mode="bicubic"), invariant=True)
    assert c_inv.values.tolist() == angles and c_inv.kind == "invariance"
    assert float(c_inv.errors.max()) < 0.02 < float(c_cor.errors[1:].min())
    assert "invariance error under rotate" in str(c_inv)
    fig = plot_error_curves({"radial": c_inv, "corner": c_cor}, str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").stat().st_size > 1000 and fig.axes[0].get_xlabel() == "angle (degrees)"


def test_vector_fields_are_the_derivatives_of_continuous_rotation_and_scaling():
    img, g, X, Y = _blob()
    eps = 1e-4

    def rot(t):
        c, s = np.cos(-t), np.sin(-t)
        return g(c * X - s * Y, s * X + c * Y)

    cases = {"rotation": (rot(eps) - rot(-eps)) / (2 * eps),
             "scale": (g(np.exp(-eps) * X, np.exp(-eps) * Y) - g(np.exp(eps) * X, np.exp(eps) * Y)) / (2 * eps)}
    for generator, expected in cases.items():
        got = np.asarray(vector_field(img, generator, "fft"))[0, ..., 0]
        assert np.abs(got - expected).max() < 0.04 * np.abs(expected).max(), generator


def test_lie_derivatives_along_rotation_and_scale(rng):
    img = _blob()[0]
    r = np.hypot(*(np.mgrid[:32, :32] - 15.5))
    radial = jnp.asarray(np.exp(-(r**2) / 60), jnp.float32)[..., None]
    invariant = lambda a: jnp.sum(a * radial, axis=(1, 2))  # noqa: E731  rotation-invariant, not scale-invariant
    corner = lambda a: jnp.sum(a[:, :16, :16], axis=(1, 2))  # noqa: E731
    rot = lambda f: float(lie_derivative(f, img, spatial_dims=2, generator="rotation")[0])  # noqa: E731
    assert rot(invariant) < 0.02 * rot(corner)
    assert float(lie_derivative(invariant, img, spatial_dims=2, generator="scale")[0]) > 10 * rot(invariant)
    # a pointwise map is rotation-equivariant: its equivariant Lie derivative vanishes
    # (to the discretisation of the spectral derivative, which obeys the chain rule only approximately)
    eq = lie_derivative(jnp.tanh, img, spatial_dims=2, generator="rotation", equivariant=True)
    assert float(eq[0]) < 0.02 * float(lie_derivative(jnp.tanh, img, spatial_dims=2, generator="rotation")[0])
    with pytest.raises(ValueError, match="generator must be one of"):
        lie_derivative(corner, img, spatial_dims=2, generator="shear")
    with pytest.raises(ValueError, match="needs spatial_dims=2"):
        lie_derivative(corner, img[..., 0], spatial_dims=1, generator="rotation")


def test_transform_errors():
    with pytest.raises(ValueError, match="rotate: mode must be one of"):
        rotate(10, mode="area")
    with pytest.raises(ValueError, match="scale: factors must be positive"):
        scale([1.0, -2.0])
    with pytest.raises(ValueError, match=r"affine: thetas must be one \(2, 3\) matrix"):
        affine(np.eye(3))
    with pytest.raises(ValueError, match="unknown group"):
        group_action("C0")


def test_invariance_error_of_a_c8_network_is_exact_at_quarter_turns(rng):
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 1)), jnp.float32)
    w1 = jnp.asarray(rng.normal(size=(3, 3, 1, 2)), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(3, 3, 2, 8, 2)), jnp.float32)

    def net(a):
        y = jax.nn.relu(F.lifting_conv(a, w1, group="C8", padding=1))
        y = F.group_conv(y, w2, group="C8", padding=1)
        return F.group_pool(y, "C8").mean(axis=(1, 2))

    assert float(invariance_error(net, x, rotate([90, 180, 270])).max()) < 1e-5
