"""conv_as_matrix and singular_values: the CNN/MLP equivalence, and exact spectra via the FFT."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.functional import conv
from cnnjax.inspect import conv_as_matrix, singular_values


@pytest.mark.parametrize("shape, k, kw", [
    ((7, 2), (3,), dict(padding="SAME", padding_mode="circular")),
    ((6, 5, 2), (3, 2), dict(stride=2, padding=1)),
    ((5, 6, 4), (3, 3), dict(groups=2, dilation=(1, 2), padding="FULL", padding_mode="zeros")),
    ((4, 4, 3, 2), (2, 2, 2), dict(padding="VALID")),
])
def test_matrix_times_vector_is_the_convolution(rng, shape, k, kw):
    groups = kw.get("groups", 1)
    w = rng.normal(size=(*k, shape[-1] // groups, 4)).astype(np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    M = conv_as_matrix(w, shape, **kw)
    y = conv(x, w, **kw)
    assert M.shape == (y.size, x.size)
    np.testing.assert_allclose(M @ x.ravel(), np.asarray(y).ravel(), rtol=1e-5, atol=1e-5)


def test_one_dimensional_matrix_is_toeplitz():
    w = jnp.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)
    M = np.asarray(conv_as_matrix(w, (6, 1)))
    expected = np.zeros((4, 6))
    for i in range(4):
        expected[i, i : i + 3] = [1, 2, 3]
    np.testing.assert_array_equal(M, expected)
    # circular padding makes it circulant: every row is the previous one rolled by one
    C = np.asarray(conv_as_matrix(w, (6, 1), padding="SAME", padding_mode="circular"))
    for i in range(1, 6):
        np.testing.assert_array_equal(C[i], np.roll(C[i - 1], 1))


@pytest.mark.parametrize("size, k, cin, cout", [((8,), (3,), 2, 3), ((6, 5), (3, 3), 3, 2), ((6, 6), (2, 4), 2, 2), ((4, 4, 3), (3, 2, 3), 1, 2)])
def test_fft_singular_values_equal_the_matrix_svd(rng, size, k, cin, cout):
    w = rng.normal(size=(*k, cin, cout)).astype(np.float64)
    sv = np.asarray(singular_values(w, size))
    M = np.asarray(conv_as_matrix(w.astype(np.float32), (*size, cin), padding="SAME", padding_mode="circular"), np.float64)
    exact = np.linalg.svd(M, compute_uv=False)[: sv.size]
    np.testing.assert_allclose(sv, exact, rtol=1e-4, atol=1e-4)


def test_singular_value_errors():
    with pytest.raises(ValueError, match=r"singular_values: input_size must have 2 entries"):
        singular_values(jnp.ones((3, 3, 1, 1)), (8,))
    with pytest.raises(ValueError, match=r"singular_values: kernel \(5, 5\) is larger than the input \(4, 4\)"):
        singular_values(jnp.ones((5, 5, 1, 1)), (4, 4))
