"""Translation equivariance of conv: exact with circular padding, interior-only with zeros."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax.functional import conv


def _roll(x, shift, n):
    return jnp.roll(x, shift, axis=tuple(range(x.ndim - n - 1, x.ndim - 1)))


def _rel_err(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.data())
def test_circular_conv_commutes_with_roll(n, k, dilation, data):
    size = 9
    shift = tuple(data.draw(st.integers(-size, size)) for _ in range(n))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    x = jnp.asarray(rng.normal(size=(2,) + (size,) * n + (3,)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(2 * k - 1,) * n + (3, 4)), jnp.float32)
    f = lambda a: conv(a, w, padding="SAME", padding_mode="circular", dilation=dilation)  # noqa: E731
    assert _rel_err(f(_roll(x, shift, n)), _roll(f(x), shift, n)) < 1e-5


@pytest.mark.parametrize("n", [1, 2, 3])
def test_zero_padding_is_equivariant_only_away_from_the_border(rng, n):
    size, k, shift = 12, 3, 2
    x = jnp.asarray(rng.normal(size=(2,) + (size,) * n + (3,)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k,) * n + (3, 4)), jnp.float32)
    f = lambda a: conv(a, w, padding="SAME")  # noqa: E731
    a, b = f(_roll(x, (shift,) * n, n)), _roll(f(x), (shift,) * n, n)
    # Rolling wraps `shift` pixels around; the border band is the kernel's reach (k // 2) plus the shift.
    band = k // 2 + shift
    interior = (slice(None),) + (slice(band, size - band),) * n
    np.testing.assert_allclose(a[interior], b[interior], rtol=1e-5, atol=1e-5)
    assert _rel_err(a, b) > 1e-2  # ... and it does break at the border
