"""Properties every functional op must have: jit == eager, vmap == batched, any batch dims,
gradients == finite differences (float64), half precision with float32 accumulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import cnnjax.functional as F
from tests.functional.op_cases import NOT_PER_EXAMPLE, OPS

PER_EXAMPLE = sorted(set(OPS) - NOT_PER_EXAMPLE)


@pytest.mark.parametrize("name", sorted(OPS))
def test_jit_equals_eager(rng, name):
    f, x = OPS[name](rng, np.float32)
    np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", PER_EXAMPLE)
def test_vmap_equals_batched_and_any_batch_dims(rng, name):
    f, x = OPS[name](rng, np.float32)
    f = jax.jit(f)  # eager == jit is checked above; jitted, each shape is one compile rather than one per op
    xb = np.stack([x, 2 * x - 1, -x])  # three examples
    batched = f(xb)
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(xb), batched, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[1], f(xb[1]), rtol=1e-5, atol=1e-5)
    two = f(np.stack([xb, xb[::-1]]))  # (2, 3, *example): two batch dims
    np.testing.assert_allclose(two[1, 0], batched[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(OPS))
def test_grads_match_finite_differences_float64(name):
    with jax.enable_x64(True):
        f, x = OPS[name](np.random.default_rng(1), np.float64)
        check_grads(jax.jit(f), (jnp.asarray(x),), order=1, modes=("rev", "fwd"), atol=1e-5, rtol=1e-5, eps=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", sorted(OPS))
def test_half_precision(name, dtype):
    f, x = OPS[name](np.random.default_rng(2), dtype)  # half-precision input and params
    y = jax.jit(f)(jnp.asarray(x))
    assert y.dtype == dtype
    f32, x32 = OPS[name](np.random.default_rng(2), np.float32)
    ref = jax.jit(f32)(x32)
    tol = 8 * float(jnp.finfo(dtype).eps) * max(1.0, float(jnp.abs(ref).max()))
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, rtol=0, atol=tol)


# ----- hypothesis over the geometry of the sliding-window ops -----

geometry = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "size": st.integers(4, 8),
        "k": st.integers(1, 3),
        "stride": st.integers(1, 3),
        "dilation": st.integers(1, 2),
        "padding": st.sampled_from(["VALID", "SAME", "FULL", 0, 1, "pairs"]),
        "mode": st.sampled_from(["zeros", "circular", "reflect", "replicate"]),
        "groups": st.sampled_from([1, 2]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def _conv_case(g):
    n = g["n"]
    padding = ((1, 0),) * n if g["padding"] == "pairs" else g["padding"]
    if g["dilation"] * (g["k"] - 1) + 1 > g["size"] or (g["mode"] == "reflect" and g["padding"] == "FULL" and g["dilation"] * (g["k"] - 1) >= g["size"]):
        return None
    rng = np.random.default_rng(g["seed"])
    w = rng.normal(size=(g["k"],) * n + (4 // g["groups"], 2 * g["groups"])).astype(np.float32)
    x = rng.normal(size=(3,) + (g["size"],) * n + (4,)).astype(np.float32)
    kw = dict(stride=g["stride"], padding=padding, dilation=g["dilation"], padding_mode=g["mode"], groups=g["groups"])
    return (lambda a: F.conv(a, w, **kw)), x


@given(geometry)
def test_conv_properties_over_random_geometry(g):
    case = _conv_case(g)
    if case is None:
        return
    f, x = case
    y = f(x)
    np.testing.assert_allclose(jax.vmap(f)(x), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(f)(x), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f(x[0]), y[0], rtol=1e-5, atol=1e-5)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@given(geometry, st.sampled_from(["max", "avg", "lp"]), st.booleans())
def test_pool_properties_over_random_geometry(g, kind, ceil_mode):
    n, k = g["n"], g["k"] + 1
    if g["dilation"] * (k - 1) + 1 > g["size"]:
        return
    eff = g["dilation"] * (k - 1) + 1
    pad = min(g["padding"], eff // 2) if isinstance(g["padding"], int) else 0
    rng = np.random.default_rng(g["seed"])
    x = np.abs(rng.normal(size=(3,) + (g["size"],) * n + (2,))).astype(np.float32)
    pool = {"max": F.max_pool, "avg": F.avg_pool, "lp": lambda *a, **kw: F.lp_pool(a[0], 2.0, *a[1:], **kw)}[kind]

    def f(a):
        return pool(a, (k,) * n, g["stride"], pad, dilation=g["dilation"], ceil_mode=ceil_mode)

    y = f(x)
    np.testing.assert_allclose(jax.vmap(f)(x), y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(f)(x), y, rtol=1e-5, atol=1e-6)
    i, st_ = g["size"], g["stride"]
    o = (i + 2 * pad - eff) // st_ + 1
    if ceil_mode:  # PyTorch's rule, written out independently
        o = -(-(i + 2 * pad - eff) // st_) + 1
        o -= (o - 1) * st_ >= i + pad
    assert y.shape[1:-1] == (o,) * n
