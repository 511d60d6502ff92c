"""Conv strategies: every strategy computes the same function and gradients; the automatic choice and overrides."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.backends.cpu import conv as conv_strategies, onednn, without_onednn
from cnnjax.functional import conv, conv_strategy, convolve, dispatch
from cnnjax.functional.conv import dimension_numbers


def _auto(backend, c_in, kernel, strides, out, supported, depthwise=False, onednn_ok=False):
    """The automatic choice on ``backend``, with the CPU's "xla_cpu" (XLA's convolution) written "lax" as
    elsewhere (a backend without a rule runs the lax maths)."""
    if backend != "cpu":
        return "lax"
    name = conv_strategies._auto(c_in, tuple(kernel), tuple(strides), tuple(out), supported, depthwise, onednn_ok)
    return "lax" if name == "xla_cpu" else name


def _resolve(strategy, c_in, kernel, strides, groups, input_dilation, out, fn, dtype=jnp.float32):
    name = dispatch.choose("conv", strategy, fn=fn, c_in=c_in, kernel=tuple(kernel), strides=tuple(strides),
                           groups=groups, input_dilation=tuple(input_dilation), out=tuple(out), dtype=jnp.dtype(dtype))
    return "lax" if name == "xla_cpu" else name

# (x shape, kernel shape, keyword arguments): 1-D/2-D/3-D, strides, dilation, every padding form and mode
CASES = [
    ((2, 11, 1), (3, 1, 4), {}),
    ((3, 2, 17, 3), (5, 3, 6), {"stride": (2,), "padding": "CAUSAL"}),
    ((2, 9, 8, 1), (3, 3, 1, 5), {"padding": "SAME"}),
    ((2, 9, 8, 3), (3, 2, 3, 4), {"stride": (2, 3), "padding": ((1, 0), (2, 1))}),
    ((2, 10, 10, 2), (3, 3, 2, 3), {"dilation": (2, 1), "padding": 2, "padding_mode": "circular"}),
    ((1, 8, 7, 2), (3, 3, 2, 2), {"padding": 1, "padding_mode": "reflect"}),
    ((2, 6, 6, 5), (1, 1, 5, 7), {}),
    ((1, 5, 6, 4, 2), (2, 3, 2, 2, 3), {"stride": (1, 2, 1), "padding": "SAME", "padding_mode": "replicate"}),
    ((3, 2, 2, 6), (3, 3, 6, 5), {"padding": 1}),  # an output smaller than the kernel
]


def _arrays(xs, ws, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=xs), dtype), jnp.asarray(rng.normal(size=ws), dtype), jnp.asarray(rng.normal(size=ws[-1]), dtype)


def _assert_same_as_lax(strategy, xs, ws, kw, groups=1):
    """``strategy`` gives lax's output and gradients for x, w and b."""
    x, w, b = _arrays(xs, ws)
    outs, grads = [], []
    for s in ("lax", strategy):
        f = lambda x, w, b, s=s: conv(x, w, b, groups=groups, strategy=s, **kw)
        y = f(x, w, b)
        ct = jnp.asarray(np.random.default_rng(1).normal(size=y.shape), jnp.float32)
        outs.append(y)
        grads.append(jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * ct), argnums=(0, 1, 2)))(x, w, b))  # one compile
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for g_other, g_lax in zip(grads[1], grads[0]):
        np.testing.assert_allclose(g_other, g_lax, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs, ws, kw", CASES)
def test_im2col_equals_lax_forward_and_gradients(xs, ws, kw):
    _assert_same_as_lax("im2col", xs, ws, kw)


@pytest.mark.parametrize("xs, ws, kw", CASES[:4])
def test_im2col_float64_gradients_match_finite_differences(xs, ws, kw):
    from jax.test_util import check_grads

    with jax.enable_x64():
        x, w, _ = _arrays(xs, ws, np.float64)
        check_grads(lambda x, w: conv(x, w, strategy="im2col", **kw), (x, w), order=1, modes=("rev", "fwd"), eps=1e-4)


@pytest.mark.parametrize("xs, ws, kw", [CASES[0], CASES[2], CASES[3], CASES[7]])
def test_im2col_without_input_gradient_takes_xla_kernel_gradient(xs, ws, kw):
    """A first layer (no gradient for x): the kernel gradient is XLA's convolution, and equals lax's."""
    x, w, _ = _arrays(xs, ws)
    ct = jnp.asarray(np.random.default_rng(1).normal(size=conv(x, w, strategy="lax", **kw).shape), jnp.float32)
    grads = {s: jax.grad(lambda w, s=s: jnp.sum(conv(x, w, strategy=s, **kw) * ct))(w) for s in ("lax", "im2col")}
    np.testing.assert_allclose(grads["im2col"], grads["lax"], rtol=1e-4, atol=1e-4)
    only_w = str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(conv(x, w, strategy="im2col", **kw))))(w))
    both = str(jax.make_jaxpr(jax.grad(lambda x, w: jnp.sum(conv(x, w, strategy="im2col", **kw)), (0, 1)))(x, w))
    assert "conv_general_dilated" in only_w and "conv_general_dilated" not in both


def test_im2col_jit_vmap_and_bfloat16():
    x, w, _ = _arrays((4, 3, 9, 9, 1), (3, 3, 1, 2))
    f = lambda x: conv(x, w, strategy="im2col", padding="SAME")
    np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), rtol=1e-6)
    lo = conv(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), strategy="im2col")
    assert lo.dtype == jnp.bfloat16
    np.testing.assert_allclose(lo.astype(jnp.float32), conv(x, w, strategy="lax"), rtol=5e-2, atol=5e-2)


def test_convolve_takes_a_strategy_too():
    x, w, _ = _arrays((2, 12, 1), (4, 1, 3))
    np.testing.assert_allclose(convolve(x, w, strategy="im2col"), convolve(x, w, strategy="lax"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("c_in, kernel, strides, out, expected", [
    (1, (3, 3), (1, 1), (28, 28), "taps"),  # tiny contraction: a first layer
    (3, (3, 3), (1, 1), (32, 32), "taps"),
    (1, (3,), (2,), (19,), "taps"),  # strided too
    (4, (3, 3), (1, 1), (32, 32), "im2col"),  # contraction 36, but few input channels
    (6, (5, 5), (1, 1), (10, 10), "im2col"),  # LeNet-5's second conv
    (8, (3, 3), (1, 1), (32, 32), "lax"),
    (64, (1, 1), (1, 1), (14, 14), "im2col"),  # 1x1: a plain matrix product
    (16, (3, 3), (2, 2), (16, 16), "im2col"),  # strided, small kernel
    (3, (7, 7), (2, 2), (112, 112), "lax"),  # a strided 7x7 stem: XLA's conv
    (16, (5, 5), (2, 2), (16, 16), "lax"),
    (8, (5,), (2,), (18,), "im2col"),  # 1-D, k <= 9
    (16, (3, 3), (1, 1), (32, 32), "lax"),  # many channels, stride 1: XLA's conv wins
    (64, (3,), (1,), (40,), "lax"),
    (256, (3, 3), (1, 1), (2, 2), "im2col"),  # output smaller than the kernel: mostly padding
    (512, (3, 3), (1, 1), (1, 1), "im2col"),
    (256, (3, 3), (1, 1), (3, 3), "lax"),
    (256, (3, 3), (1, 1), (2, 8), "lax"),  # smaller in one dim only
])
def test_auto_rule_on_cpu(c_in, kernel, strides, out, expected):
    assert _auto("cpu", c_in, kernel, strides, out, True) == expected
    assert _auto("gpu", c_in, kernel, strides, out, True) == "lax"
    assert _auto("cpu", c_in, kernel, strides, out, False) == "lax"  # grouped or input-dilated


def test_choice_is_cached_per_shape():
    conv_strategies._auto.cache_clear()
    x, w, _ = _arrays((2, 8, 8, 1), (3, 3, 1, 2))
    for _ in range(3):
        conv(x, w)
    info = conv_strategies._auto.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_context_manager_overrides_auto_and_an_explicit_argument_overrides_both():
    args = (1, (3, 3), (1, 1), 1, (1, 1), (8, 8), "conv")
    with conv_strategy("lax"):
        assert _resolve("auto", *args) == "lax"
        assert _resolve("im2col", *args) == "im2col"
        with conv_strategy("im2col"):
            assert _resolve("auto", *args) == "im2col"
        assert _resolve("auto", *args) == "lax"
    cpu = jax.default_backend() == "cpu"
    assert _resolve("auto", *args) == ("lax" if not cpu else "onednn" if onednn.available() else "taps")
    assert _resolve("auto", *args, jnp.bfloat16) == ("taps" if cpu else "lax")  # no oneDNN in bf16


def test_bad_strategies_are_clear_errors():
    x, w, _ = _arrays((2, 8, 8, 4), (3, 3, 2, 4))
    with pytest.raises(ValueError, match="strategy='im2col' cannot compute this case: .*needs groups=1 and input_dilation=1 .*groups=2"):
        conv(x, w, groups=2, strategy="im2col")
    with pytest.raises(ValueError, match=r"conv: unknown strategy 'fft'; allowed: 'auto', 'lax', 'im2col'"):
        conv(x, w[:, :, :1].repeat(4, 2), strategy="fft")
    with pytest.raises(ValueError, match="conv_strategy: unknown strategy 'winograd'"):
        with conv_strategy("winograd"):
            pass


# depthwise (groups == C_in): 1-D/2-D/3-D, channel multiplier, stride, dilation, padding modes
DEPTHWISE = [
    ((2, 11, 3), (3, 1, 3), {}),
    ((2, 9, 8, 4), (3, 3, 1, 8), {"padding": "SAME"}),  # multiplier 2
    ((2, 10, 9, 3), (3, 2, 1, 3), {"stride": (2, 1), "dilation": (1, 2), "padding": ((1, 0), (2, 1))}),
    ((1, 8, 7, 2), (3, 3, 1, 2), {"padding": 1, "padding_mode": "reflect"}),
    ((3, 2, 6, 5, 4, 2), (2, 3, 2, 1, 2), {"stride": (1, 2, 1), "padding": "SAME", "padding_mode": "circular"}),
]


@pytest.mark.parametrize("xs, ws, kw", DEPTHWISE)
def test_taps_equals_lax_for_depthwise_convs(xs, ws, kw):
    _assert_same_as_lax("taps", xs, ws, kw, groups=xs[-1])


# dense convs with a small contraction (first layers): 1-D/2-D/3-D, strides, dilation, padding modes, C_in 1-3
DENSE_TAPS = [c for c in CASES if c[0][-1] * np.prod(c[1][:-2]) <= 32] + [
    ((3, 20, 2), (5, 2, 6), {"stride": 2, "dilation": 2, "padding": "SAME"}),
]


def test_dense_taps_cases_cover_first_layers():
    assert len(DENSE_TAPS) >= 4 and {len(ws) for _, ws, _ in DENSE_TAPS} == {3, 4, 5}


@pytest.mark.parametrize("xs, ws, kw", DENSE_TAPS)
def test_taps_equals_lax_for_small_dense_convs(xs, ws, kw):
    _assert_same_as_lax("taps", xs, ws, kw)
    x, w, _ = _arrays(xs, ws)  # the first-layer case: no input gradient
    ct = jnp.asarray(np.random.default_rng(1).normal(size=conv(x, w, strategy="lax", **kw).shape), jnp.float32)
    g = [jax.jit(jax.grad(lambda w, s=s: jnp.sum(conv(x, w, strategy=s, **kw) * ct)))(w) for s in ("lax", "taps")]
    np.testing.assert_allclose(g[1], g[0], rtol=1e-4, atol=1e-4)
    tangents = (jnp.cos(x), jnp.sin(w))
    jvp = lambda s: jax.jit(lambda x, w, t: jax.jvp(lambda x, w: conv(x, w, strategy=s, **kw), (x, w), t)[1])  # noqa: E731
    np.testing.assert_allclose(jvp("taps")(x, w, tangents), jvp("lax")(x, w, tangents),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_dense_taps_is_one_fused_sum_in_any_precision():
    from jax.test_util import check_grads

    x, w, _ = _arrays((2, 9, 9, 3), (3, 3, 3, 5))
    f = lambda x: conv(x, w, strategy="taps", padding=1)  # noqa: E731
    assert "dot_general" not in str(jax.make_jaxpr(f)(x)) and "conv_general" not in str(jax.make_jaxpr(f)(x))
    np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-5, atol=1e-5)  # FMA contraction under jit
    np.testing.assert_allclose(jax.vmap(f)(x[:, None])[:, 0], f(x), rtol=1e-5, atol=1e-5)
    lo = conv(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), strategy="taps", padding=1)
    assert lo.dtype == jnp.bfloat16
    np.testing.assert_allclose(lo.astype(jnp.float32), conv(x, w, strategy="lax", padding=1), rtol=5e-2, atol=5e-2)
    with jax.enable_x64():
        x, w, _ = _arrays((2, 7, 6, 2), (3, 3, 2, 3), np.float64)
        check_grads(jax.jit(lambda x, w: conv(x, w, stride=2, strategy="taps")), (x, w), order=2, modes=("rev", "fwd"), eps=1e-4)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_taps_jit_vmap_bfloat16_and_finite_differences():
    from jax.test_util import check_grads

    x, w, _ = _arrays((4, 3, 9, 9, 2), (3, 3, 1, 2))
    f = lambda x: conv(x, w, groups=2, strategy="taps", padding="SAME")
    np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-6, atol=1e-6)  # fused multiply-adds round differently
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), rtol=1e-6, atol=1e-6)
    lo = conv(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), groups=2, strategy="taps")
    assert lo.dtype == jnp.bfloat16
    np.testing.assert_allclose(lo.astype(jnp.float32), conv(x, w, groups=2, strategy="lax"), rtol=5e-2, atol=5e-2)
    with jax.enable_x64():
        x, w, _ = _arrays((2, 6, 5, 3), (3, 3, 1, 3), np.float64)
        check_grads(lambda x, w: conv(x, w, groups=3, stride=2, strategy="taps"), (x, w), order=1,
                    modes=("rev", "fwd"), eps=1e-4)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@pytest.mark.parametrize("chunk_images", [1, 2, 5])
def test_taps_kernel_gradient_over_batch_chunks_equals_lax(monkeypatch, chunk_images):
    # the chunk is the largest divisor of N whose inputs fit TAPS_CHUNK_BYTES (here 1, 2 and 5 of 10 images)
    xs, ws = (10, 6, 5, 4), (3, 3, 1, 8)
    monkeypatch.setattr(conv_strategies, "TAPS_CHUNK_BYTES", chunk_images * 6 * 5 * 4 * 4)
    _assert_same_as_lax("taps", xs, ws, {"padding": 1, "stride": (2, 1)}, groups=4)
    x, w, _ = _arrays(xs, ws)
    f = lambda s: lambda w: conv(x, w, groups=4, padding=1, strategy=s)
    np.testing.assert_allclose(jax.jvp(f("taps"), (w,), (w,))[1], jax.jvp(f("lax"), (w,), (w,))[1], rtol=1e-5,
                               atol=1e-5)
    only_w = jax.grad(lambda w: jnp.sum(jnp.sin(f("taps")(w))))(w)  # the input's tangent is a symbolic zero
    assert " scan[" in str(jax.make_jaxpr(jax.grad(lambda w: jnp.sum(f("taps")(w))))(w))  # chunked, not one pass
    np.testing.assert_allclose(only_w, jax.grad(lambda w: jnp.sum(jnp.sin(f("lax")(w))))(w), rtol=1e-5, atol=1e-5)


def test_taps_is_only_for_depthwise_and_is_chosen_for_them_on_cpu_without_onednn():
    x, w, _ = _arrays((2, 8, 8, 4), (3, 3, 2, 4))
    with pytest.raises(ValueError, match="strategy='taps' cannot compute this case: .*for depthwise convs.*groups=2"):
        conv(x, w, groups=2, strategy="taps")
    with pytest.raises(ValueError, match=r"C_in \* prod\(kernel\) <= 32.*c_in=4, kernel=\(3, 3\), .*groups=1"):
        conv(x, jnp.ones((3, 3, 4, 2)), strategy="taps")  # a dense conv with a contraction of 36
    assert _auto("cpu", 4, (3, 3), (1, 1), (8, 8), False, True) == "taps"
    assert _auto("gpu", 4, (3, 3), (1, 1), (8, 8), False, True) == "lax"
    cpu_choice = "onednn" if onednn.available() else "taps"  # oneDNN's depthwise kernels where they run
    assert _resolve("auto", 4, (3, 3), (1, 1), 4, (1, 1), (8, 8), "conv") == (
        cpu_choice if jax.default_backend() == "cpu" else "lax")
    with without_onednn():
        assert _resolve("auto", 4, (3, 3), (1, 1), 4, (1, 1), (8, 8), "conv") == (
            "taps" if jax.default_backend() == "cpu" else "lax")
    assert _resolve("auto", 4, (3, 3), (1, 1), 4, (2, 2), (8, 8), "conv") == "lax"  # input-dilated


# XLA's convolution through cnnjax.functional.conv: on CPU a custom JVP gathers x for the kernel gradient
LAX_CASES = [
    ((2, 7, 6, 3), (3, 3, 3, 4), {"padding": 1}),
    ((3, 9, 2), (3, 2, 5), {"dilation": 2, "padding": "SAME"}),
    ((2, 4, 5, 4, 2), (2, 3, 2, 2, 3), {"padding": "SAME"}),
    ((2, 8, 8, 4), (3, 3, 2, 4), {"groups": 2, "padding": 1}),
    ((2, 5, 5, 2), (3, 3, 2, 3), {"input_dilation": 2}),
]


def _plain_xla(x, w, **kw):
    """The same conv straight through lax, with none of cnnjax's strategies or derivative rules."""
    from cnnjax.functional.utils import resolve_padding

    n = w.ndim - 2
    in_dil = (kw.get("input_dilation", 1),) * n
    dil = (kw.get("dilation", 1),) * n
    size = [(i - 1) * d + 1 for i, d in zip(x.shape[1:-1], in_dil)]
    pads = resolve_padding(kw.get("padding", "VALID"), size, w.shape[:n], (1,) * n, dil, "test")
    return jax.lax.conv_general_dilated(x, w, (1,) * n, pads, in_dil, dil, dimension_numbers(n),
                                        feature_group_count=kw.get("groups", 1))


@pytest.mark.parametrize("xs, ws, kw", LAX_CASES)
def test_lax_strategy_values_gradients_and_jvps_equal_plain_xla(xs, ws, kw):
    x, w, _ = _arrays(xs, ws)
    ours = lambda x, w: conv(x, w, strategy="lax", **kw)  # noqa: E731
    ref = lambda x, w: _plain_xla(x, w, **kw)  # noqa: E731
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-6, atol=1e-6)
    ct = jnp.asarray(np.random.default_rng(2).normal(size=ref(x, w).shape), jnp.float32)
    for argnums in ((0, 1), (0,), (1,)):
        g = [jax.grad(lambda *a, f=f: jnp.sum(f(*a) * ct), argnums=argnums)(x, w) for f in (ours, ref)]
        for a, b in zip(*g):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    tangents = (jnp.cos(x), jnp.sin(w))
    np.testing.assert_allclose(jax.jvp(ours, (x, w), tangents)[1], jax.jvp(ref, (x, w), tangents)[1], rtol=1e-5,
                               atol=1e-5)
    batched = jax.vmap(ours, in_axes=(None, 0))(x, jnp.stack([w, 2 * w]))
    np.testing.assert_allclose(batched[1], 2 * ref(x, w), rtol=1e-5, atol=1e-5)


def test_lax_strategy_float64_derivatives_of_order_two():
    from jax.test_util import check_grads

    with jax.enable_x64():
        x, w, _ = _arrays((2, 6, 5, 2), (3, 3, 2, 3), np.float64)
        check_grads(lambda x, w: conv(x, w, strategy="lax", padding=1), (x, w), order=2, modes=("rev", "fwd"), eps=1e-4)


def test_xla_cpu_strategy_gathers_x_only_for_a_kernel_gradient_and_lax_never():
    x, w, _ = _arrays((4, 6, 6, 3), (3, 3, 3, 2))
    lax_loss = lambda x, w: jnp.sum(jnp.sin(conv(x, w, strategy="lax", padding=1)))  # noqa: E731
    assert "gather" not in str(jax.make_jaxpr(jax.grad(lax_loss, argnums=1))(x, w))  # the maths, nothing else
    loss = lambda x, w: jnp.sum(jnp.sin(conv(x, w, strategy="xla_cpu", padding=1)))  # noqa: E731
    assert "gather" in str(jax.make_jaxpr(jax.grad(loss, argnums=1))(x, w))
    np.testing.assert_allclose(jax.grad(loss, argnums=1)(x, w), jax.grad(lax_loss, argnums=1)(x, w), rtol=1e-6)
    assert "gather" not in str(jax.make_jaxpr(jax.grad(loss, argnums=0))(x, w))  # input gradient only
    assert "gather" not in str(jax.make_jaxpr(loss)(x, w))  # no derivative: no copy


def test_compiler_options_move_convolutions_off_ynnpack_on_cpu(monkeypatch):
    from cnnjax.functional import compiler_options

    assert compiler_options("gpu") == {}
    options = compiler_options()
    if jax.default_backend() != "cpu" or not options:
        pytest.skip("no CPU compiler options on this backend or jaxlib")
    f = lambda x, w: conv(x, w, padding=1, strategy="lax")  # noqa: E731
    x, w, _ = _arrays((4, 6, 6, 32), (3, 3, 32, 32))
    hlo = jax.jit(f, compiler_options=options).lower(x, w).compile().as_text()
    assert "convolution(" in hlo
    assert not [line for line in hlo.splitlines() if "__ynn_fusion" in line and "conv" in line]
    np.testing.assert_allclose(jax.jit(f, compiler_options=options)(x, w), jax.jit(f)(x, w), rtol=1e-5, atol=1e-4)
    # a jaxlib that rejects the options gets none, not a failed compile
    monkeypatch.setattr(conv_strategies, "CPU_COMPILER_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_TYPE"})
    conv_strategies._cpu_options_accepted.cache_clear()
    try:
        assert compiler_options() == {}
    finally:
        monkeypatch.undo()
        conv_strategies._cpu_options_accepted.cache_clear()
