"""assert_equivariant / assert_invariant: pass where exact, fail with a message that says where and by how much."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnnjax.functional as F
from cnnjax.equivariance import assert_equivariant, assert_invariant, group_action, rot90, shift


def test_passes_on_circular_convs_and_reports_unchecked_shifts(rng):
    w = jnp.asarray(rng.normal(size=(3, 2, 2)), jnp.float32)
    f = lambda x: F.conv(x, w, padding=1, padding_mode="circular", stride=2)  # noqa: E731
    x = jnp.asarray(rng.normal(size=(2, 16, 2)), jnp.float32)
    rows = assert_equivariant(f, x, shift([2, 4, 1], spatial_dims=1))
    assert [r["checked"] for r in rows] == [True, True, False]
    assert rows[2]["rel"] > 0.05  # measured and returned, not hidden


def test_failure_message_names_transform_parameter_error_and_location(rng):
    w = jnp.asarray(rng.normal(size=(3, 2, 2)), jnp.float32)
    f = lambda x: F.conv(x, w, padding=1)  # noqa: E731  (zero padding)
    x = jnp.asarray(rng.normal(size=(2, 16, 2)), jnp.float32)
    with pytest.raises(AssertionError) as info:
        assert_equivariant(f, x, shift([1, 2], spatial_dims=1))
    msg = str(info.value)
    assert "f is not equivariant under shift[circular] (rtol=0.0001, atol=1e-06)" in msg
    assert "[1]: max |error|" in msg and "at output index" in msg and "[FAIL]" in msg
    assert_equivariant(f, x, shift([1, 2], spatial_dims=1), mask=3)  # the interior passes


def test_invariant_helpers_and_custom_tolerances(rng):
    x = jnp.asarray(rng.normal(size=(3, 6, 6, 2)), jnp.float32)
    assert len(assert_invariant(lambda a: a.max(axis=(1, 2)), x, group_action("p4m"))) == 8
    with pytest.raises(AssertionError, match=r"f is not invariant under rot90"):
        assert_invariant(lambda a: a[:, 0], x, rot90())
    noisy = lambda a: a.sum((1, 2)) + 1e-3 * a[:, 0, 0]  # noqa: E731
    assert_invariant(noisy, x, rot90(), rtol=1e-2)


def test_works_vmapped_over_many_parameters_under_jit(rng):
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    f = jax.jit(lambda x: F.conv(x, w, padding=1, padding_mode="circular"))
    shifts = np.stack(np.meshgrid(np.arange(-3, 4), np.arange(-3, 4)), -1).reshape(-1, 2)
    rows = assert_equivariant(f, jnp.asarray(rng.normal(size=(1, 8, 8, 2)), jnp.float32), shift(shifts, spatial_dims=2))
    assert len(rows) == 49 and all(r["ok"] for r in rows)
