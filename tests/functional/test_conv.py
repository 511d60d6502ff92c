"""conv, convolve, conv_output_size, conv_param_count: golden values and independent references."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from cnnjax.functional import conv, conv_output_size, conv_param_count, convolve, unfold
from tests.functional import reference as ref


def _img(rows):
    return jnp.array(rows, jnp.float32)[..., None]


def _ker(rows):
    return jnp.array(rows, jnp.float32)[..., None, None]


# ----- golden values from the course material (cross-correlation, VALID) -----

VERTICAL_EDGE = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]


def test_vertical_edge_on_six_by_six():
    image = [[3, 0, 1, 2, 7, 4], [1, 5, 8, 9, 3, 1], [2, 7, 2, 5, 1, 3], [0, 1, 3, 1, 7, 8], [4, 2, 1, 6, 2, 8], [2, 4, 5, 2, 3, 9]]
    expected = [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]]
    np.testing.assert_array_equal(conv(_img(image), _ker(VERTICAL_EDGE))[..., 0], expected)


def test_vertical_edge_detects_the_bright_dark_boundary():
    image = [[10, 10, 10, 0, 0, 0]] * 6
    np.testing.assert_array_equal(conv(_img(image), _ker(VERTICAL_EDGE))[..., 0], [[0, 30, 30, 0]] * 4)


@pytest.mark.parametrize(
    "image, kernel, expected",
    [
        (
            [[1, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 1, 0, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 1, 1]],
            [[0, 1, 0], [1, 0, 1], [0, 1, 0]],
            [[3, 2, 2], [1, 3, 2], [2, 1, 2]],
        ),
        (
            [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]],
            [[0, 1, 2], [2, 2, 0], [0, 1, 2]],
            [[12, 12, 17], [10, 17, 19], [9, 6, 14]],
        ),
    ],
)
def test_course_five_by_five_examples(image, kernel, expected):
    np.testing.assert_array_equal(conv(_img(image), _ker(kernel))[..., 0], expected)


def test_rgb_example_stride_two_padding_one():
    channels = [
        [[0, 1, 2, 2, 1], [1, 0, 0, 1, 1], [1, 0, 0, 2, 1], [1, 1, 0, 1, 0], [2, 1, 2, 2, 1]],
        [[0, 0, 0, 2, 1], [1, 1, 0, 1, 0], [1, 1, 0, 2, 1], [0, 1, 1, 0, 1], [2, 0, 2, 2, 1]],
        [[2, 2, 2, 0, 2], [0, 0, 1, 0, 0], [2, 2, 1, 2, 2], [0, 1, 0, 0, 2], [1, 0, 0, 2, 0]],
    ]
    w1 = [
        [[0, -1, 1], [0, -1, -1], [-1, 0, 0]],
        [[-1, 1, 0], [-1, 0, 0], [-1, 0, -1]],
        [[-1, 1, 0], [1, 0, 0], [1, 1, 0]],
    ]
    x = jnp.array(channels, jnp.float32).transpose(1, 2, 0)  # (5, 5, 3)
    w = jnp.array(w1, jnp.float32).transpose(1, 2, 0)[..., None]  # (3, 3, 3, 1)
    y = conv(x, w, jnp.zeros(1), stride=2, padding=1)
    np.testing.assert_array_equal(y[..., 0], [[-2, -3, -5], [-2, -1, -2], [-3, -4, 2]])


@pytest.mark.parametrize(
    "i, k, s, p, expected",
    [(4, 3, 1, 0, 2), (5, 4, 1, 2, 6), (5, 3, 1, 1, 5), (5, 3, 1, 2, 7), (5, 3, 2, 0, 2), (6, 3, 2, 1, 3), (7, 3, 3, 0, 2)],
)
def test_output_size_formula(i, k, s, p, expected):
    assert conv_output_size(i, k, stride=s, padding=p) == expected
    # ... and conv really produces that size.
    assert conv(jnp.ones((i, 1)), jnp.ones((k, 1, 1)), stride=s, padding=p).shape == (expected, 1)


def test_output_size_strings_and_tuples():
    assert conv_output_size((32, 31), 3, stride=2, padding="SAME") == (16, 16)
    assert conv_output_size(10, 3, padding="FULL", dilation=2) == 14
    assert conv_output_size(10, 3, padding="CAUSAL") == 10
    assert conv_output_size((9, 9), (3, 5), dilation=(1, 2)) == (7, 1)


@pytest.mark.parametrize(
    "k, cin, cout, groups, bias, expected",
    [((3, 3), 1, 6, 1, True, 60), ((5, 5), 6, 16, 1, True, 2416), ((3, 3), 32, 32, 32, True, 320), ((1, 1), 64, 128, 1, False, 8192), ((3,), 15, 15, 1, True, 690), ((3, 3, 3), 4, 8, 2, True, 440)],
)
def test_param_count(k, cin, cout, groups, bias, expected):
    assert conv_param_count(k, cin, cout, groups, bias) == expected
    assert expected == (np.prod(k) * cin // groups + bias) * cout


# ----- against explicit loops -----

CASES = [
    # (spatial, kernel, stride, padding, dilation, groups, mode)
    ((11,), (3,), (2,), "VALID", (1,), 1, "zeros"),
    ((11,), (4,), (1,), "CAUSAL", (2,), 1, "zeros"),
    ((10,), (3,), (3,), "SAME", (1,), 2, "circular"),
    ((9, 8), (3, 3), (1, 1), "SAME", (1, 1), 1, "zeros"),
    ((9, 8), (3, 2), (2, 3), 1, (1, 1), 2, "reflect"),
    ((9, 8), (3, 3), (2, 2), ((2, 0), (1, 3)), (2, 1), 1, "replicate"),
    ((7, 7), (2, 2), (1, 1), "FULL", (1, 1), 4, "zeros"),
    ((7, 6), (3, 3), (2, 1), "SAME", (1, 2), 4, "circular"),
    ((5, 6, 4), (3, 2, 2), (1, 2, 1), 1, (1, 1, 1), 1, "zeros"),
    ((6, 5, 5), (2, 3, 3), (2, 1, 1), "SAME", (1, 1, 2), 2, "reflect"),
]


@pytest.mark.parametrize("spatial, k, stride, padding, dilation, groups, mode", CASES)
def test_conv_matches_numpy_loops(rng, spatial, k, stride, padding, dilation, groups, mode):
    cin, cout = 4, 6 if groups != 4 else 8
    x = rng.normal(size=(2, *spatial, cin)).astype(np.float32)
    w = rng.normal(size=(*k, cin // groups, cout)).astype(np.float32)
    b = rng.normal(size=(cout,)).astype(np.float32)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    pads = _explicit_pads(padding, spatial, k, stride, dilation)
    expected = ref.conv_loops(x, w, stride, pads, dilation, groups, mode) + b
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-4)


def _explicit_pads(padding, spatial, k, stride, dilation):
    eff = [d * (kk - 1) + 1 for kk, d in zip(k, dilation)]
    if padding == "VALID":
        return [(0, 0)] * len(k)
    if padding == "FULL":
        return [(e - 1, e - 1) for e in eff]
    if padding == "CAUSAL":
        return [(eff[0] - 1, 0)]
    if padding == "SAME":  # TF: output ceil(i/s), the odd pixel on the high side
        out = []
        for i, e, s in zip(spatial, eff, stride):
            total = max((int(np.ceil(i / s)) - 1) * s + e - i, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * len(k)
    return list(padding)


def test_same_padding_gives_ceil_of_input_over_stride(rng):
    for size in range(5, 12):
        for s in (1, 2, 3):
            y = conv(jnp.ones((size, size, 1)), jnp.ones((3, 3, 1, 1)), stride=s, padding="SAME")
            assert y.shape[:2] == (-(-size // s),) * 2


def test_input_dilation_matches_explicitly_dilated_input(rng):
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)
    y = conv(x, w, input_dilation=(2, 3), padding=1)
    expected = ref.conv_loops(ref.dilate_input(x, (2, 3)), w, (1, 1), [(1, 1), (1, 1)], (1, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_depthwise_is_a_per_channel_conv(rng):
    x = rng.normal(size=(2, 9, 9, 5)).astype(np.float32)
    w = rng.normal(size=(3, 3, 1, 5)).astype(np.float32)
    y = conv(x, w, groups=5, padding="SAME")
    for c in range(5):
        yc = conv(x[..., c : c + 1], w[..., c : c + 1], padding="SAME")
        np.testing.assert_allclose(y[..., c : c + 1], yc, rtol=1e-5, atol=1e-6)


def test_one_by_one_conv_is_a_channel_matmul(rng):
    x = rng.normal(size=(2, 6, 7, 8)).astype(np.float32)
    w = rng.normal(size=(1, 1, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(conv(x, w), x @ w[0, 0], rtol=1e-5, atol=1e-5)


def test_conv_equals_unfold_then_matmul(rng):
    x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 5)).astype(np.float32)
    kw = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))
    cols = unfold(x, (3, 2), **kw)
    np.testing.assert_allclose(conv(x, w, **kw), cols @ w.reshape(-1, 5), rtol=1e-5, atol=1e-5)


def test_batch_dims_any_number_including_none(rng):
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    x = rng.normal(size=(3, 2, 7, 7, 2)).astype(np.float32)
    y = conv(x, w, padding="SAME")
    assert y.shape == (3, 2, 7, 7, 4)
    np.testing.assert_allclose(y[1, 0], conv(x[1, 0], w, padding="SAME"), rtol=1e-6, atol=1e-6)


# ----- true convolution against scipy.signal -----


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
@pytest.mark.parametrize("shape, k", [((13,), (4,)), ((8, 9), (3, 5)), ((5, 6, 7), (3, 2, 3))])
def test_convolve_matches_scipy(rng, mode, shape, k):
    if mode == "same" and any(kk % 2 == 0 for kk in k):
        k = tuple(kk | 1 for kk in k)  # odd sizes: scipy centres even kernels differently from TF SAME
    x = rng.normal(size=(*shape, 3))
    w = rng.normal(size=(*k, 3, 2))
    y = convolve(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), padding=mode.upper())
    for o in range(2):
        expected = sum(scipy.signal.convolve(x[..., c], w[..., c, o], mode=mode) for c in range(3))
        np.testing.assert_allclose(y[..., o], expected, rtol=1e-4, atol=1e-4)


def test_convolve_is_correlate_with_flipped_kernel(rng):
    x = rng.normal(size=(9, 9, 2)).astype(np.float32)
    w = rng.normal(size=(3, 4, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(convolve(x, w, stride=2), conv(x, w[::-1, ::-1], stride=2), rtol=1e-6)
    corr = scipy.signal.correlate(x[..., 0].astype(np.float64), w[..., 0, 0].astype(np.float64), mode="valid")
    np.testing.assert_allclose(conv(x[..., :1], w[..., :1, :1])[..., 0], corr, rtol=1e-5, atol=1e-5)


# ----- PyTorch where installed -----

TORCH_MODES = {"zeros": "zeros", "circular": "circular", "reflect": "reflect", "replicate": "replicate"}


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("mode", list(TORCH_MODES))
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_matches_torch(torch, rng, n, mode, groups):
    spatial = {1: (12,), 2: (9, 10), 3: (6, 7, 5)}[n]
    k = {1: (3,), 2: (3, 2), 3: (3, 3, 2)}[n]
    stride, dilation, padding = (2,) * n, (1,) * (n - 1) + (2,), (1,) * n
    x = rng.normal(size=(2, *spatial, 4))
    w = rng.normal(size=(*k, 4 // groups, 6))
    b = rng.normal(size=(6,))
    layer = getattr(torch.nn, f"Conv{n}d")(4, 6, k, stride, padding, dilation, groups, padding_mode=mode)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(ref.conv_kernel_to_torch(w)))
        layer.bias.copy_(torch.tensor(b))
        expected = ref.channels_last(layer(torch.tensor(ref.channels_first(x))).numpy())
    y = conv(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


# ----- mixed precision -----


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_keeps_dtype_and_accumulates_in_float32(rng, dtype):
    # 3*3*256 products: summed in half precision this drifts far more than the tolerance below.
    x = rng.normal(size=(2, 8, 8, 256)).astype(np.float32)
    w = (rng.normal(size=(3, 3, 256, 8)) / 48).astype(np.float32)
    xh, wh = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
    y = conv(xh, wh, padding="SAME")
    assert y.dtype == dtype
    exact = conv(xh.astype(jnp.float32), wh.astype(jnp.float32), padding="SAME")
    # The only error left is rounding the f32 result to the half dtype once.
    eps = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(np.asarray(y, np.float32), exact, rtol=eps, atol=eps)
