"""Bad input gets a ValueError/TypeError naming the argument, what was received and what is allowed."""

import jax.numpy as jnp
import pytest

import cnnjax.functional as F

X2 = jnp.ones((2, 8, 8, 4))
W2 = jnp.ones((3, 3, 4, 6))

CASES = [
    # wrong rank
    (lambda: F.conv(jnp.ones((8, 8)), W2), ValueError,
     r"conv: x must have shape \(\*batch, \*spatial, C\) with 2 spatial dim\(s\) \(from w.ndim=4\), i.e. at least 3 dims, got x.shape=\(8, 8\)"),
    (lambda: F.conv(X2, jnp.ones((3, 4))), ValueError, r"conv: w must have shape \(\*kernel_spatial, C_in, C_out\).*got w.shape=\(3, 4\)"),
    # channel mismatch
    (lambda: F.conv(X2, jnp.ones((3, 3, 3, 6))), ValueError,
     r"conv: channel mismatch: x has C_in=4 channels but w.shape=\(3, 3, 3, 6\) expects C_in // groups = 3"),
    (lambda: F.conv_transpose(X2, jnp.ones((3, 3, 5, 2))), ValueError, r"conv_transpose: channel mismatch: x has C_in=4"),
    # groups
    (lambda: F.conv(X2, jnp.ones((3, 3, 2, 5)), groups=2), ValueError, r"conv: groups=2 must divide both C_in=4 and C_out=5"),
    (lambda: F.conv(X2, W2, groups=0), ValueError, r"conv: groups must be a positive int, got groups=0"),
    # kernel larger than padded input
    (lambda: F.conv(jnp.ones((4, 4, 1)), jnp.ones((7, 3, 1, 1)), padding=1), ValueError,
     r"conv: the kernel is larger than the padded input in spatial dim 0: kernel size 7 \(dilation 1, effective 7\) > input 4 \+ padding 1\+1 = 6"),
    (lambda: F.conv(jnp.ones((6, 6, 1)), jnp.ones((3, 3, 1, 1)), dilation=3), ValueError, r"effective 7\) > input 6"),
    # stride / dilation
    (lambda: F.conv(X2, W2, stride=0), ValueError, r"conv: every entry of stride must be >= 1, got stride=0"),
    (lambda: F.conv(X2, W2, stride=-1), ValueError, r"stride must be >= 1, got stride=-1"),
    (lambda: F.conv(X2, W2, stride=(1, 2, 1)), ValueError,
     r"conv: stride must be an int or a sequence of 2 ints \(one per spatial dim\), got stride=\(1, 2, 1\) of length 3"),
    (lambda: F.conv(X2, W2, dilation=1.5), TypeError, r"conv: dilation must be an int or a sequence of 2 ints, got dilation=1.5"),
    # padding strings and modes
    (lambda: F.conv(X2, W2, padding="same-ish"), ValueError, r"conv: unknown padding 'same-ish'; allowed: 'VALID', 'SAME', 'FULL', 'CAUSAL'"),
    (lambda: F.conv(X2, W2, padding=((1, 1),)), ValueError, r"conv: padding must be a string .* or 2 \(lo, hi\) pairs for 2 spatial dim\(s\); got padding=\(\(1, 1\),\)"),
    (lambda: F.conv(X2, W2, padding=-1), ValueError, r"conv: padding must be non-negative"),
    (lambda: F.conv(X2, W2, padding="CAUSAL"), ValueError, r"conv: padding='CAUSAL' is only defined for 1-D inputs, got 2 spatial dims"),
    (lambda: F.conv(X2, W2, padding_mode="mirror"), ValueError,
     r"conv: unknown padding_mode 'mirror'; allowed: 'zeros', 'circular', 'reflect', 'replicate'"),
    (lambda: F.conv(X2, W2, padding_mode="circular", input_dilation=2), ValueError, r"padding_mode='circular' needs input_dilation=1"),
    (lambda: F.conv(X2, W2, jnp.ones(5)), ValueError, r"conv: b must have shape \(C_out,\) = \(6,\), got b.shape=\(5,\)"),
    # conv_transpose specifics
    (lambda: F.conv_transpose(X2, jnp.ones((3, 3, 4, 2)), stride=2, output_padding=2), ValueError,
     r"conv_transpose: output_padding must be smaller than stride or dilation in every dim; dim 0 has output_padding=2, stride=2"),
    (lambda: F.conv_transpose(jnp.ones((2, 2, 1)), jnp.ones((3, 3, 1, 1)), padding=3), ValueError, r"conv_transpose: padding=\(3, 3\) leaves an empty output"),
    # pooling: window vs spatial rank
    (lambda: F.max_pool(X2, 2), ValueError,
     r"max_pool: cannot tell the number of spatial dims: window, stride, padding, dilation are all ints. Pass a tuple \(e.g. window=\(2, 2\) for 2-D\) or spatial_dims=1\|2\|3"),
    (lambda: F.max_pool(X2, (2, 2), (2, 2, 2)), ValueError, r"max_pool: stride must be an int or a sequence of 2 ints .* got stride=\(2, 2, 2\) of length 3"),
    (lambda: F.avg_pool(jnp.ones((8, 4)), (2, 2)), ValueError, r"avg_pool: x must have shape .* with 2 spatial dim\(s\).*got x.shape=\(8, 4\)"),
    (lambda: F.max_pool(X2, (3, 3), padding=2), ValueError, r"max_pool: padding must be at most half the effective window in every dim, got padding \(2, 2\) for window 3"),
    (lambda: F.max_pool(X2, (9, 2)), ValueError, r"max_pool: the window is larger than the padded input in spatial dim 0"),
    (lambda: F.avg_pool(jnp.ones((4, 4, 1), jnp.int32), (2, 2)), TypeError, r"avg_pool: x must be a floating-point array, got dtype int32"),
    (lambda: F.lp_pool(X2, 0, (2, 2)), ValueError, r"lp_pool: p must be a finite number > 0, got p=0"),
    (lambda: F.global_avg_pool(X2, spatial_dims=4), ValueError, r"global_avg_pool: spatial_dims must be 1, 2 or 3, got spatial_dims=4"),
    (lambda: F.adaptive_avg_pool(X2, (0, 2)), ValueError, r"adaptive_avg_pool: every entry of output_size must be >= 1"),
    (lambda: F.max_unpool(jnp.ones((2, 2, 1)), jnp.zeros((2, 3, 1), jnp.int32), (4, 4)), ValueError,
     r"max_unpool: y and indices must have the same shape, got \(2, 2, 1\) and \(2, 3, 1\)"),
    # upsampling
    (lambda: F.resize(X2, (4, 4), "box"), ValueError, r"resize: unknown method 'box'; allowed: 'nearest', 'nearest-exact', 'bilinear', 'bicubic', 'area'"),
    (lambda: F.resize(X2, (4, 4), align_corners=True), ValueError, r"resize: align_corners=True only applies to 'bilinear' and 'bicubic'"),
    (lambda: F.resize(X2, 16), TypeError, r"resize: size must be a sequence with one int per spatial dim, got size=16"),
    (lambda: F.pixel_shuffle(X2, (3, 3)), ValueError, r"pixel_shuffle: the channel count 4 must be divisible by prod\(factor\)=9"),
    (lambda: F.pixel_unshuffle(X2, (3, 3)), ValueError, r"pixel_unshuffle: spatial shape \(8, 8\) must be divisible by factor=\(3, 3\)"),
    # unfold / helpers
    (lambda: F.unfold(X2, (3, 3), padding="WHAT"), ValueError, r"unfold: unknown padding 'WHAT'"),
    (lambda: F.conv_output_size(3, 5), ValueError, r"conv_output_size: the kernel is larger than the padded input"),
    (lambda: F.conv_param_count(3, 1, 6), ValueError, r"conv_param_count: cannot tell the number of spatial dims"),
    (lambda: F.pad(X2, 1, "edge", spatial_dims=2), ValueError, r"pad: unknown padding_mode 'edge'"),
]


@pytest.mark.parametrize("call, error, message", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input_raises_a_readable_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_no_assert_statements_guard_user_input():
    """`python -O` strips asserts, so user input must never be checked with them."""
    import pathlib
    import ast

    root = pathlib.Path(F.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert not asserts, f"{path.name} uses assert at lines {asserts}"
