"""conv_transpose: golden value, scatter reference, PyTorch, shape inverse and VJP properties, and the CPU paths
(oneDNN's backward-data convolution, the tiled matrix product) against XLA's input-dilated convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax.backends.cpu import onednn
from cnnjax.functional import conv, conv_output_size, conv_strategy, conv_transpose, conv_transpose_output_size
from tests.functional import reference as ref


def test_course_example_stride_two():
    x = jnp.array([[1.0, 0.0], [2.0, 3.0]])[..., None]
    w = jnp.array([[0.0, 1.0], [1.0, 0.0]])[..., None, None]
    expected = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 2, 0, 3], [2, 0, 3, 0]]
    np.testing.assert_array_equal(conv_transpose(x, w, stride=2)[..., 0], expected)


@pytest.mark.parametrize(
    "spatial, k, stride, padding, output_padding, dilation",
    [
        ((5,), (3,), (2,), (1,), (1,), (1,)),
        ((4, 3), (3, 3), (2, 2), (1, 0), (1, 0), (1, 1)),
        ((3, 4), (2, 3), (3, 1), (0, 2), (2, 0), (1, 2)),
        ((2, 3, 2), (2, 2, 3), (2, 1, 2), (0, 0, 1), (0, 0, 1), (1, 1, 1)),
    ],
)
def test_matches_scatter_reference(rng, spatial, k, stride, padding, output_padding, dilation):
    x = rng.normal(size=(2, *spatial, 3)).astype(np.float32)
    w = rng.normal(size=(*k, 3, 4)).astype(np.float32)
    y = conv_transpose(x, w, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    expected = ref.conv_transpose_scatter(x, w, stride, padding, output_padding, dilation)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups", [(2, 1, 1, 1, 1), (3, 0, 2, 1, 2), (2, 2, 1, 2, 4), (1, 2, 0, 1, 1)])
def test_matches_torch(torch, rng, n, stride, padding, output_padding, dilation, groups):
    spatial = {1: (7,), 2: (5, 4), 3: (3, 4, 3)}[n]
    k = {1: (4,), 2: (3, 3), 3: (3, 2, 3)}[n]
    x = rng.normal(size=(2, *spatial, 4))
    w = rng.normal(size=(*k, 4, 8 // groups))
    b = rng.normal(size=(8,))
    expected = getattr(torch.nn.functional, f"conv_transpose{n}d")(
        torch.tensor(ref.channels_first(x)), torch.tensor(ref.transpose_kernel_to_torch(w)), torch.tensor(b),
        stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation,
    )
    y = conv_transpose(
        x.astype(np.float32), w.astype(np.float32), b.astype(np.float32),
        stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups,
    )
    np.testing.assert_allclose(y, ref.channels_last(expected.numpy()), rtol=1e-4, atol=1e-4)


_geometry = st.tuples(
    st.integers(1, 3),  # spatial dims
    st.integers(4, 9),  # input size
    st.integers(1, 4),  # kernel
    st.integers(1, 3),  # stride
    st.integers(0, 2),  # padding
    st.integers(1, 2),  # dilation
)


def _setup(n, i, k, s, p, d):
    size = (i,) * n
    if d * (k - 1) + 1 > i + 2 * p:
        return None
    o = conv_output_size(size, k, s, p, d)
    op = tuple((ii + 2 * p - d * (k - 1) - 1) % s for ii in size)
    return size, o, op


@given(_geometry)
def test_conv_transpose_undoes_conv_shape(geom):
    n, i, k, s, p, d = geom
    setup = _setup(*geom)
    if setup is None:
        return
    size, o, op = setup
    assert conv_transpose_output_size(o, (k,) * n, s, p, op, d) == size
    x = jnp.zeros((1, *o, 2))
    y = conv_transpose(x, jnp.zeros((k,) * n + (2, 3)), stride=s, padding=p, output_padding=op, dilation=d)
    assert y.shape == (1, *size, 3)


@given(_geometry, st.integers(1, 2), st.integers(0, 2**31 - 1))
def test_conv_transpose_is_the_vjp_of_conv(geom, groups, seed):
    n, i, k, s, p, d = geom
    setup = _setup(*geom)
    if setup is None:
        return
    size, o, op = setup
    rng = np.random.default_rng(seed)
    cin, cout = 2 * groups, 3 * groups
    x = jnp.asarray(rng.normal(size=(2, *size, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k,) * n + (cin // groups, cout)), jnp.float32)
    ct = jnp.asarray(rng.normal(size=(2, *o, cout)), jnp.float32)

    @jax.jit  # one compile per example rather than one per eager op
    def both(x, w, ct):
        _, vjp = jax.vjp(lambda a: conv(a, w, stride=s, padding=p, dilation=d, groups=groups), x)
        # conv's kernel (*k, C_in/g, C_out) read as a transposed-conv kernel (*k, C_out, C_in/g):
        wt = w.reshape(w.shape[:n] + (cin // groups, groups, cout // groups))
        wt = jnp.moveaxis(wt, n, -1).reshape(w.shape[:n] + (cout, cin // groups))
        return conv_transpose(ct, wt, stride=s, padding=p, output_padding=op, dilation=d, groups=groups), vjp(ct)[0]

    np.testing.assert_allclose(*both(x, w, ct), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs, ws", [
    ((2, 5, 4, 3), (2, 2, 3, 5)),  # the U-Net's 2x2 stride-2 up-convolution
    ((3, 7, 2), (3, 2, 4)),  # 1-D, stride 3
    ((1, 2, 3, 2, 2), (2, 1, 3, 2, 3)),  # 3-D, a different stride per dim
])
def test_tiled_path_equals_the_general_form(xs, ws):
    """kernel == stride takes one matrix product and a reshape (the CPU backend's "tiled"); values and gradients
    must equal the input-dilated convolution it replaces (the lax maths)."""
    from cnnjax.backends.cpu.conv import tiled_conv_transpose, tiles_output

    rng = np.random.default_rng(0)
    x, w, b = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in (xs, ws, ws[-1:]))
    stride = ws[:-2]
    n = len(stride)
    assert tiles_output(kernel=stride, strides=stride, padding=(0,) * n, output_padding=(0,) * n, dilation=(1,) * n,
                        groups=1)
    size = tuple(i * s for i, s in zip(xs[1:-1], stride))
    tiled = lambda x, w, b: tiled_conv_transpose(x, w, stride, (0,) * n, (0,) * n, (1,) * n, 1, size) + b  # noqa: E731
    f = lambda x, w, b: conv_transpose(x, w, b, stride=stride)  # noqa: E731
    ct = jnp.asarray(rng.normal(size=f(x, w, b).shape), jnp.float32)
    loss = lambda f: (lambda *a: jnp.sum(f(*a) * ct))  # noqa: E731
    with conv_strategy("lax"):
        want, want_grads = f(x, w, b), jax.grad(loss(f), argnums=(0, 1, 2))(x, w, b)
    np.testing.assert_allclose(tiled(x, w, b), want, rtol=1e-5, atol=1e-5)
    for g_fast, g_general in zip(jax.grad(loss(tiled), argnums=(0, 1, 2))(x, w, b), want_grads):
        np.testing.assert_allclose(g_fast, g_general, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.jit(tiled)(x, w, b), want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not onednn.available(), reason=f"oneDNN unavailable: {onednn.unavailable_reason()}")
@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 5, 4, 3), (2, 2, 3, 5), {"stride": 2}),  # the U-Net's up-convolution
    ((2, 5, 4, 4), (4, 4, 4, 3), {"stride": 2, "padding": 1}),  # DCGAN's and FCN's
    ((2, 5, 4, 4), (3, 3, 4, 2), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}),
    ((2, 4, 6, 4), (3, 2, 4, 3), {"stride": (3, 1), "padding": (4, 0), "dilation": (1, 2)}),  # crops past the kernel
    ((3, 7, 2), (3, 2, 4), {"stride": 3, "output_padding": 2}),
    ((1, 2, 3, 2, 2), (2, 1, 3, 2, 3), {"stride": (2, 1, 2), "dilation": (1, 2, 1)}),
    ((2, 5, 5, 6), (3, 3, 6, 1), {"stride": 2, "groups": 6}),  # depthwise
])
def test_onednn_path_equals_xla(xs, ws, kw):
    """On CPU float32 convs transpose through oneDNN's backward-data primitive: the values, gradients, a
    second derivative and vmap must equal XLA's input-dilated convolution (``conv_strategy("lax")``)."""
    rng = np.random.default_rng(0)
    x, w = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in (xs, ws))
    b = jnp.asarray(rng.normal(size=(ws[-1] * kw.get("groups", 1),)), jnp.float32)
    ct = jnp.asarray(rng.normal(size=conv_transpose(x, w, b, **kw).shape), jnp.float32)

    def results(jaxpr_has_onednn):
        f = lambda x, w, b: conv_transpose(x, w, b, **kw)  # a fresh function: JAX caches traces by function
        assert ("onednn_input_grad" in str(jax.make_jaxpr(f)(x, w, b))) == jaxpr_has_onednn
        loss = lambda *a: jnp.sum(f(*a) * ct)
        # jitted (the strategy switch is part of jit's cache key): one compile per program, not one per op
        curvature = jax.jit(jax.grad(lambda w: jnp.sum(jax.grad(loss)(x, w, b) ** 2)))(w)
        return [jax.jit(f)(x, w, b), *jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, w, b), curvature,
                jax.jit(jax.vmap(f, in_axes=(0, None, None)))(x[:, None], w, b)[:, 0]]

    got = results(True)
    with conv_strategy("lax"):
        expected = results(False)
    for g, want in zip(got, expected):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max()))
