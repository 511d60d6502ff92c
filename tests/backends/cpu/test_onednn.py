"""oneDNN's convolutions (strategy "onednn"): the same function, derivatives and batching as XLA's convolution."""

import importlib.metadata

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.backends.cpu import onednn
from cnnjax.functional import conv
from tests.backends.cpu.test_conv import _auto, _resolve

needs_onednn = pytest.mark.skipif(not onednn.available(), reason=f"oneDNN unavailable: {onednn.unavailable_reason()}")

# (x shape, kernel shape, conv keyword arguments): 1-D/2-D/3-D, strides, dilation, asymmetric and zero padding
CASES = [
    ((2, 11, 3), (3, 3, 4), {}),
    ((3, 17, 2), (5, 2, 6), {"stride": 2, "padding": "CAUSAL"}),
    ((2, 9, 8, 3), (3, 3, 3, 5), {"padding": "SAME"}),
    ((2, 9, 8, 3), (3, 2, 3, 4), {"stride": (2, 3), "padding": ((1, 0), (2, 1))}),
    ((2, 10, 10, 2), (3, 3, 2, 3), {"dilation": (2, 1), "padding": 2, "padding_mode": "circular"}),
    ((2, 6, 6, 16), (1, 1, 16, 8), {"stride": 2}),
    ((1, 5, 6, 4, 2), (2, 3, 2, 2, 3), {"stride": (1, 2, 1), "padding": "SAME"}),
    ((4, 8, 8, 16), (3, 3, 16, 16), {"padding": 1}),
    # grouped and depthwise (groups == C_in), in 1-D, 2-D and 3-D
    ((2, 9, 9, 6), (3, 3, 1, 6), {"groups": 6, "padding": 1}),
    ((2, 9, 9, 6), (3, 3, 2, 12), {"groups": 3, "stride": 2}),
    ((2, 9, 9, 4), (3, 3, 1, 8), {"groups": 4, "dilation": 2, "padding": "SAME"}),
    ((2, 11, 6), (3, 1, 6), {"groups": 6}),
    ((1, 5, 5, 5, 4), (3, 3, 3, 1, 4), {"groups": 4, "padding": "SAME"}),
]


def _arrays(xs, ws, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=xs), jnp.float32), jnp.asarray(rng.normal(size=ws), jnp.float32)


def _pair(kw):
    """The conv under oneDNN and under XLA's own convolution (strategy "lax")."""
    return (lambda x, w: conv(x, w, strategy="onednn", **kw)), (lambda x, w: conv(x, w, strategy="lax", **kw))


def _close(a, b, tol=1e-4):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(jnp.abs(b).max())))


@needs_onednn
@pytest.mark.parametrize("xs, ws, kw", CASES)
def test_values_gradients_and_jvps_equal_xla(xs, ws, kw):
    ours, ref = _pair(kw)
    x, w = _arrays(xs, ws)
    _close(ours(x, w), ref(x, w), 1e-5)
    ct = jnp.asarray(np.random.default_rng(1).normal(size=ref(x, w).shape), jnp.float32)
    for argnums in ((0, 1), (0,), (1,)):
        a, b = (jax.jit(jax.grad(lambda *args, f=f: jnp.sum(f(*args) * ct), argnums=argnums))(x, w) for f in (ours, ref))
        for u, v in zip(a, b):
            _close(u, v)
    tangents = (jnp.cos(x), jnp.sin(w))
    _close(jax.jvp(ours, (x, w), tangents)[1], jax.jvp(ref, (x, w), tangents)[1])
    _close(jax.jit(ours)(x, w), ours(x, w), 1e-6)


@needs_onednn
@pytest.mark.parametrize("c_in, k, onednn_input_grad", [(1, 3, False), (6, 3, False), (7, 5, False), (8, 3, True),
                                                        (16, 3, True), (3, 7, True)])
def test_narrow_convs_take_im2col_input_gradient(c_in, k, onednn_input_grad):
    """Into few input channels through a small kernel, oneDNN's input gradient is slower than im2col's (the
    transpose of its patch product). The forward and kernel gradient stay oneDNN's, and the result equals XLA's."""
    from cnnjax.backends.cpu.conv import NARROW_CHANNELS, NARROW_KERNEL

    assert (NARROW_CHANNELS, NARROW_KERNEL) == (8, 25)
    ours, ref = _pair({"padding": 1})
    x, w = _arrays((2, 9, 9, c_in), (k, k, c_in, 16))
    loss = lambda f: (lambda x, w: jnp.sum(jnp.sin(f(x, w))))  # noqa: E731
    jaxpr = str(jax.make_jaxpr(jax.grad(loss(ours), (0, 1)))(x, w))
    assert "onednn_conv" in jaxpr and "onednn_kernel_grad" in jaxpr
    assert ("onednn_input_grad" in jaxpr) == onednn_input_grad
    for u, v in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
        _close(u, v)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@needs_onednn
@pytest.mark.parametrize("xs, ws, kw", [CASES[2], CASES[3], CASES[6], ((2, 6, 6, 8), (3, 3, 8, 4), {"stride": 2})])
def test_second_derivatives_equal_xla(xs, ws, kw):
    """Each op's derivatives are the other two ops, so derivatives of any order run on oneDNN (narrow convs,
    C_in < 8: the first three cases, take im2col's input gradient)."""
    ours, ref = _pair(kw)
    x, w = _arrays(xs, ws)
    loss = lambda f: (lambda x, w: jnp.sum(jnp.tanh(f(x, w))))  # noqa: E731
    # jitted: each is one compiled program rather than an eager primitive (and compile) per operation
    hessian = [jax.jit(jax.hessian(loss(f), argnums=1))(x, w) for f in (ours, ref)]
    _close(*hessian, 1e-3)
    mixed = [jax.jit(jax.grad(lambda x, f=f: jnp.sum(jax.grad(loss(f), argnums=1)(x, w) ** 2)))(x) for f in (ours, ref)]
    _close(*mixed, 1e-3)
    lin = [jax.jit(lambda y, f=f: jax.linear_transpose(lambda x: f(x, w), x)(y)[0])(f(x, w)) for f in (ours, ref)]
    _close(*lin)


@needs_onednn
@pytest.mark.parametrize("c_in", [8, 2])  # 2: a narrow conv, with im2col's input gradient
@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0), (1, None)])
def test_vmap_equals_member_by_member(in_axes, c_in):
    """Shared kernels fold the members into the batch; a kernel per member (ensembles) runs member by member."""
    kw = {"stride": 2, "padding": 1}
    ours, ref = _pair(kw)
    x, w = _arrays((3, 9, 9, c_in), (3, 3, c_in, 5))
    xs = jnp.stack([x, -x, 2 * x], axis=in_axes[0]) if in_axes[0] is not None else x
    ws = jnp.stack([w, 0.5 * w, -w]) if in_axes[1] is not None else w
    loss = lambda f: (lambda x, w: jnp.sum(jnp.sin(f(x, w))))  # noqa: E731
    _close(jax.vmap(ours, in_axes)(xs, ws), jax.vmap(ref, in_axes)(xs, ws), 1e-5)
    for u, v in zip(jax.vmap(jax.grad(loss(ours), (0, 1)), in_axes)(xs, ws),
                    jax.vmap(jax.grad(loss(ref), (0, 1)), in_axes)(xs, ws)):
        _close(u, v)


@needs_onednn
def test_repeated_runs_are_bit_identical():
    """Training is bit-reproducible: oneDNN's kernel gradient sums in the same order every time."""
    x, w = _arrays((16, 16, 16, 16), (3, 3, 16, 16))
    g = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w, padding=1, strategy="onednn"))), argnums=(0, 1)))
    first = [np.asarray(a) for a in g(x, w)]
    for _ in range(3):
        for a, b in zip(first, g(x, w)):
            np.testing.assert_array_equal(a, np.asarray(b))


@needs_onednn
@pytest.mark.parametrize("c_in, kernel, strides, out, expected", [
    (16, (3, 3), (1, 1), (32, 32), "onednn"),
    (3, (3, 3), (1, 1), (32, 32), "onednn"),  # first layers
    (256, (1, 1), (2, 2), (28, 28), "onednn"),
    (3, (7, 7), (2, 2), (112, 112), "onednn"),
    (256, (3, 3), (1, 1), (2, 2), "im2col"),  # output smaller than the kernel: im2col stays
])
def test_auto_rule_takes_onednn_on_cpu_where_available(c_in, kernel, strides, out, expected):
    assert _auto("cpu", c_in, kernel, strides, out, True, False, True) == expected
    assert _auto("gpu", c_in, kernel, strides, out, True, False, True) == "lax"
    assert _auto("cpu", 4, (3, 3), (1, 1), (8, 8), False, True, True) == "onednn"  # depthwise
    assert _auto("cpu", 4, (3, 3), (1, 1), (8, 8), False, True, False) == "taps"  # ... without oneDNN


@needs_onednn
def test_auto_picks_onednn_for_float32_dense_convs_only():
    args = (16, (3, 3), (1, 1), 1, (1, 1), (8, 8), "conv")
    expected = "onednn" if jax.default_backend() == "cpu" else "lax"
    assert _resolve("auto", *args, jnp.float32) == expected
    assert _resolve("auto", *args, jnp.bfloat16) != "onednn"
    assert _resolve("auto", 16, (3, 3), (1, 1), 2, (1, 1), (8, 8), "conv", jnp.float32) == "lax"  # grouped
    assert _resolve("auto", 16, (3, 3), (1, 1), 16, (1, 1), (8, 8), "conv", jnp.float32) == (
        "onednn" if expected == "onednn" else "lax")  # depthwise


def test_ineligible_convs_are_clear_errors():
    x, w = _arrays((2, 8, 8, 4), (3, 3, 2, 4))
    with pytest.raises(ValueError, match=r"strategy='onednn' cannot compute this case: .*float32.*bfloat16"):
        conv(x.astype(jnp.bfloat16), w[:, :, :1].repeat(4, 2).astype(jnp.bfloat16), strategy="onednn")
    with pytest.raises(ValueError, match=r"strategy='onednn' cannot compute this case: .*got .*input_dilation=\(2, 2\)"):
        conv(x, w[:, :, :1].repeat(4, 2), input_dilation=2, strategy="onednn")


def test_unavailable_onednn_says_why_and_auto_keeps_xla(monkeypatch):
    def missing(dist):
        raise importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(onednn.OnednnUnavailable, match=r"'onednn-devel-cpu-gomp' package is not installed"):
        onednn.build()
    monkeypatch.setattr(onednn, "available", lambda: False)
    monkeypatch.setattr(onednn, "unavailable_reason", lambda: "no oneDNN in this test")
    args = (16, (3, 3), (1, 1), 1, (1, 1), (8, 8), "conv", jnp.float32)
    assert _resolve("auto", *args) == "lax"
    x, w = _arrays((2, 8, 8, 4), (3, 3, 4, 4))
    with pytest.raises(ValueError, match="strategy='onednn' is unavailable here: no oneDNN in this test"):
        conv(x, w, strategy="onednn")


def test_a_failed_compile_is_reported_with_the_compiler_output(monkeypatch, tmp_path):
    if not onednn.available():
        pytest.skip(f"oneDNN unavailable: {onednn.unavailable_reason()}")
    monkeypatch.setenv("CNNJAX_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    with pytest.raises(onednn.BuildFailed, match=r"compiling onednn_conv.cc, onednn_batch_norm.cc, onednn_max_pool.cc with false failed"):
        onednn.build()
    memo = onednn.build_dir() / onednn.FAILED
    assert "with false failed" in memo.read_text()  # remembered: the next process fails at once, without compiling
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(onednn.BuildFailed, match="with false failed"):
        onednn.build()
    with pytest.raises(onednn.BuildFailed, match=r"could not run the C\+\+ compiler"):
        onednn.build(force=True)  # cnnjax info --build: forget the failure and try again
