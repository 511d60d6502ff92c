"""The steerable filter basis: rotations form a representation on its span, quarter turns are pixel permutations."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import steerable


@pytest.mark.parametrize("k, size", [(1, 1), (3, 6), (5, 13), (7, 24)])
def test_basis_sizes_and_full_rank(k, size):
    b = steerable.filter_basis(k).reshape(k * k, -1)
    assert b.shape == (k * k, size) and np.linalg.matrix_rank(b) == size


@pytest.mark.parametrize("k, cap, size", [(3, 0, 2), (3, 1, 4), (3, 2, 6), (3, 9, 6), (5, 1, 7), (5, 2, 11)])
def test_band_limited_bases_are_subspaces_that_rotations_keep(k, cap, size):
    b = steerable.filter_basis(k, max_frequency=cap).reshape(k * k, -1)
    assert b.shape[1] == size and np.linalg.matrix_rank(b) == size
    full = steerable.filter_basis(k).reshape(k * k, -1)
    inside = lambda a: np.abs(b @ np.linalg.lstsq(b, a, rcond=None)[0] - a).max()  # noqa: E731
    assert inside(full) > 1e-3 if size < full.shape[1] else inside(full) < 1e-5
    assert inside(b) < 1e-5
    for angle in (45.0, 22.5, 30.0):  # the full basis' rotation maps the band-limited span to itself
        assert inside(steerable.rotation_matrix(k, angle) @ b) < 1e-5
    with pytest.raises(ValueError, match="filter_basis: max_frequency must be None or an int >= 0, got -1"):
        steerable.filter_basis(k, max_frequency=-1)


@pytest.mark.parametrize("k", [3, 5])
def test_rotations_compose_and_quarter_turns_are_rot90(rng, k):
    w = jnp.asarray(np.einsum("ijm,mc->ijc", steerable.filter_basis(k), rng.normal(size=(steerable.filter_basis(k).shape[-1], 3))),
                    jnp.float32)  # a filter in the span
    np.testing.assert_allclose(steerable.rotate_filters(w, 0.0), w, atol=1e-5)
    for a, b in [(30.0, 60.0), (22.5, 22.5), (45.0, 200.0), (10.0, -10.0)]:
        np.testing.assert_allclose(steerable.rotate_filters(steerable.rotate_filters(w, a), b),
                                   steerable.rotate_filters(w, a + b), atol=1e-5)
    r = steerable.rotation_matrix(k, 90.0)  # through the basis, not the shortcut: equals the pixel permutation
    np.testing.assert_allclose((r @ np.asarray(w).reshape(k * k, -1)).reshape(w.shape), np.rot90(np.asarray(w), 1, (0, 1)),
                               atol=1e-5)
    # mirroring commutes with rotation by the opposite angle
    np.testing.assert_allclose(steerable.rotate_filters(w[:, ::-1], 30.0), steerable.rotate_filters(w, -30.0)[:, ::-1],
                               atol=1e-5)


def test_filters_outside_the_span_are_projected_and_even_sizes_refused(rng):
    w = jnp.asarray(rng.normal(size=(3, 3)), jnp.float32)
    p = steerable.rotate_filters(w, 0.0)
    np.testing.assert_allclose(steerable.rotate_filters(p, 0.0), p, atol=1e-5)  # a projection
    assert float(jnp.abs(p - w).max()) > 1e-3
    with pytest.raises(ValueError, match="filter_basis: the kernel size must be an odd positive int"):
        steerable.filter_basis(4)
