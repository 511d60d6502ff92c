"""The CPU backend's convolutions: oneDNN's, im2col + one matrix product, a sum over kernel taps, and XLA's
convolution with a kernel gradient that reads a materialized input; and the rule that picks among them.

All compute :func:`cnnjax.functional.conv`'s function (equal to float rounding, gradients included).
The choice is made per shape, dtype and platform by a fixed rule (so runs stay bit-reproducible), and
can be overridden per call (``conv(..., strategy="im2col")``) or for a block of code
(``with conv_strategy("lax"): ...``). Why a rule and not autotuning: timing candidates at trace time
would make the choice, and so the float rounding, differ between runs. The measurements behind the
rule are ``python -m benchmarks --only conv_strategies`` (``docs/performance.md`` summarises them).

The rule on CPU:
- float32 dense and depthwise convs run on oneDNN (:mod:`.onednn`, the library behind PyTorch's CPU
  convolutions) wherever this machine can build it, except outputs smaller than the kernel in every dim
  (most of each window is padding), which take im2col;
- without oneDNN (another OS or processor, no C++ compiler, bfloat16): depthwise convs run as "taps";
  first layers (a contraction ``C_in * prod(kernel)`` of at most ``SMALL_CONTRACTION``) as "taps";
  tiny outputs, strided 3x3 and smaller, narrow (:func:`is_narrow`) and 1x1 convs as "im2col"; the rest
  on XLA's convolution ("xla_cpu").

:func:`compiler_options` are the options cnnjax's own jitted steps compile with on CPU.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from cnnjax.backends.cpu import onednn
from cnnjax.functional import dispatch
from cnnjax.functional.conv import lax_conv
from cnnjax.functional.unfold import shifted_views
from cnnjax.functional.utils import accumulation_dtype, materialize

#: On CPU, a dense conv whose contraction ``C_in * prod(kernel)`` is at most this (a first layer) runs as
#: "taps"; this is also the most the "taps" strategy takes for a dense conv.
SMALL_CONTRACTION = 32

#: A conv with fewer input channels than this and a kernel of at most NARROW_KERNEL taps is "narrow": its input
#: gradient writes only these few channels per position, which oneDNN's and XLA's kernels vectorize poorly.
NARROW_CHANNELS, NARROW_KERNEL = 8, 25


def is_narrow(c_in: int, kernel: Sequence[int]) -> bool:
    """Whether a conv with ``c_in`` input channels and this kernel shape is narrow (see ``NARROW_CHANNELS``)."""
    return c_in < NARROW_CHANNELS and math.prod(kernel) <= NARROW_KERNEL

#: XLA:CPU's default hands convolutions, matrix products and reductions to YNNPACK, whose convolution ran on
#: one core where XLA's own kernel uses all of them; on CPU cnnjax keeps YNNPACK for the rest and leaves
#: convolutions to XLA.
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


def compiler_options() -> dict[str, str]:
    """:data:`CPU_COMPILER_OPTIONS`, or ``{}`` where this jaxlib rejects them (the flag is experimental)."""
    return dict(CPU_COMPILER_OPTIONS) if _cpu_options_accepted() else {}


@functools.lru_cache(maxsize=1)
def _cpu_options_accepted() -> bool:
    # a jaxlib that dropped or renamed the flag must not break compilation
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.zeros(())).compile()
        return True
    except Exception:  # XlaRuntimeError / ValueError, by jaxlib version
        return False


def supports_im2col(groups: int, input_dilation: Sequence[int]) -> bool:
    return groups == 1 and all(d == 1 for d in input_dilation)


def is_depthwise(c_in: int, groups: int, input_dilation: Sequence[int]) -> bool:
    return groups == c_in > 1 and all(d == 1 for d in input_dilation)


def is_small_dense(c_in: int, kernel: Sequence[int], groups: int, input_dilation: Sequence[int]) -> bool:
    return supports_im2col(groups, input_dilation) and c_in * math.prod(kernel) <= SMALL_CONTRACTION


def supports_onednn(groups: int, input_dilation: Sequence[int], dtype) -> bool:
    """Whether oneDNN's convolution computes this conv: any ``groups``, 1-3 spatial dims, no input dilation, float32."""
    return (all(d == 1 for d in input_dilation) and 1 <= len(input_dilation) <= 3
            and jnp.dtype(dtype) == jnp.float32)


@functools.lru_cache(maxsize=4096)
def _auto(c_in: int, kernel: tuple[int, ...], strides: tuple[int, ...], out: tuple[int, ...],
          supported: bool, depthwise: bool, onednn_ok: bool) -> str:
    if depthwise:
        return "onednn" if onednn_ok else "taps"
    if not supported:
        return "xla_cpu"
    # an output smaller than the kernel in every dim: most of each window is padding, which the direct kernels
    # pay for and im2col does not
    tiny = all(o < k for o, k in zip(out, kernel))
    if onednn_ok and not tiny:
        return "onednn"
    if c_in * math.prod(kernel) <= SMALL_CONTRACTION:
        return "taps"
    # XLA:CPU's own convolution is slow for small strided kernels, for 1x1 kernels (plain matrix products) and for
    # input gradients into few channels; 5x5 to 11x11 strided stems stay on it
    strided = any(s > 1 for s in strides) and math.prod(kernel) <= 9
    narrow = is_narrow(c_in, kernel)
    return "im2col" if tiny or strided or narrow or math.prod(kernel) == 1 else "xla_cpu"


def rule(usable, *, c_in, kernel, strides, groups, input_dilation, out, dtype) -> str:
    """The CPU's automatic choice for a conv of this geometry (see the module docstring)."""
    onednn_ok = supports_onednn(groups, input_dilation, dtype) and usable("onednn")
    return _auto(c_in, tuple(kernel), tuple(strides), tuple(out), supports_im2col(groups, input_dilation),
                 is_depthwise(c_in, groups, input_dilation), onednn_ok)


def register() -> None:
    """Register the CPU conv and conv_transpose implementations, their rules and the compiler options."""
    dispatch.register(
        "conv", "im2col", lambda x, w, strides, pads, in_dil, dil, groups, precision: im2col_conv(
            x, w, strides, pads, dil, precision),
        platform=None, supports=lambda *, groups, input_dilation, **_: supports_im2col(groups, input_dilation),
        doc="patches @ kernel; needs groups=1 and input_dilation=1")
    dispatch.register(
        "conv", "taps", lambda x, w, strides, pads, in_dil, dil, groups, precision: taps_conv(
            x, w, strides, pads, dil, groups, precision),
        platform=None, supports=lambda *, c_in, kernel, groups, input_dilation, **_: (
            is_depthwise(c_in, groups, input_dilation) or is_small_dense(c_in, kernel, groups, input_dilation)),
        doc=f"a sum of shifted views times weights; for depthwise convs (groups == C_in > 1) and for convs with "
            f"groups=1 and C_in * prod(kernel) <= {SMALL_CONTRACTION}, both with input_dilation=1")
    dispatch.register(
        "conv", "onednn", lambda x, w, strides, pads, in_dil, dil, groups, precision: onednn_conv(
            x, w, strides, pads, dil, groups),
        platform="cpu", supports=lambda *, groups, input_dilation, dtype, **_: supports_onednn(groups, input_dilation, dtype),
        available=lambda: onednn.available(), native=True, doc="oneDNN's convolution; needs input_dilation=1, 1-3 spatial dims and float32")
    dispatch.register("conv", "xla_cpu", xla_conv, platform=None,
                      doc="XLA's convolution, its kernel gradient reading a materialized input")
    dispatch.register_rule("conv", "cpu", rule)
    dispatch.register(
        "conv_transpose", "onednn", onednn_conv_transpose, platform="cpu", available=lambda: onednn.available(), native=True,
        supports=onednn_transposes, doc="oneDNN's backward-data convolution; float32, 1-3 spatial dims, output_padding < stride")
    dispatch.register("conv_transpose", "tiled", tiled_conv_transpose, platform=None, supports=tiles_output,
                      doc="one matrix product and an interleave; kernel == stride, no padding, dilation 1, groups=1")
    dispatch.register_rule("conv_transpose", "cpu", lambda usable, **g: (
        "onednn" if usable("onednn") and onednn_transposes(**g)
        else "tiled" if tiles_output(**g) else None))
    dispatch.register_reason("onednn", lambda: onednn.unavailable_reason())
    dispatch.register_compiler_options("cpu", compiler_options)


def onednn_transposes(*, kernel, strides, output_padding, dtype, **_) -> bool:
    """oneDNN's backward-data convolution computes this transposed conv: float32, 1-3 spatial dims, output_padding
    below the stride (the conv it transposes then pads both sides by ``padding``)."""
    return (1 <= len(kernel) <= 3 and jnp.dtype(dtype) == jnp.float32
            and all(op < s for op, s in zip(output_padding, strides)))


def onednn_conv_transpose(x, w, strides, pad, out_pad, dil, groups, size, precision=None):
    """``(N, *spatial, C_in)`` x ``(*k, C_in, C_out/g)`` -> ``(N, *size, C_out)``: the input gradient of the conv
    from ``(N, *size, C_out)`` to ``x``'s shape, whose kernel is ``w``'s (*k, C_out/g, C_in) (blocks of ``C_in``).
    ``output_padding`` below the stride only selects ``size``."""
    n = w.ndim - 2
    kernel, c_in, c_out_g = w.shape[:n], w.shape[-2], w.shape[-1]
    k = jnp.moveaxis(w.reshape(*kernel, groups, c_in // groups, c_out_g), n + 2, n).reshape(*kernel, c_out_g, c_in)
    return onednn.conv_input_grad(x, k, (x.shape[0], *size, c_out_g * groups), strides, dil, [(p, p) for p in pad], groups)


def tiles_output(*, kernel, strides, padding, output_padding, dilation, groups, **_) -> bool:
    """kernel == stride, nothing cropped or added: each input element writes its own tile (U-Net's up-convolutions).
    XLA:CPU runs the general form, an input-dilated convolution, far slower than one matrix product."""
    return (tuple(kernel) == tuple(strides) and not any(padding) and not any(output_padding)
            and all(d == 1 for d in dilation) and groups == 1)


def tiled_conv_transpose(x, w, strides, pad, out_pad, dil, groups, size, precision=None):
    """``(N, *spatial, C_in)`` x ``(*k, C_in, C_out)`` with stride ``k`` -> ``(N, *spatial * k, C_out)``:
    ``y[n, s*i + a] = x[n, i] @ w[a]``, one matrix product then the tiles interleaved."""
    n = w.ndim - 2
    kernel, spatial, c_out = w.shape[:n], x.shape[1:-1], w.shape[-1]
    # a 2-D product: XLA:CPU differentiates the batched (N, *spatial, C) form more slowly
    tiles = jnp.matmul(x.reshape(-1, x.shape[-1]), jnp.moveaxis(w, n, 0).reshape(w.shape[n], -1), precision=precision)
    tiles = tiles.reshape(x.shape[0], *spatial, *kernel, c_out)
    order = [0, *(a for i in range(n) for a in (1 + i, 1 + n + i)), 2 * n + 1]  # (N, i1, a1, i2, a2, ..., C)
    return tiles.transpose(order).reshape(x.shape[0], *(i * k for i, k in zip(spatial, kernel)), c_out)

def _bilinear_jvp(y, dx, dw, dx_term, dw_term):
    """``(y, dx_term() + dw_term())`` for an op linear in each of ``x`` and ``w``, skipping symbolic-zero tangents."""
    terms = [term() for t, term in ((dx, dx_term), (dw, dw_term)) if not isinstance(t, SymbolicZero)]
    return y, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)


def _im2col_tangent(y, x, w, dx, dw, strides, pads, dilation, precision):
    """``(y, tangent)`` with im2col's tangent, except a first layer's kernel term (see ``_im2col_jvp``)."""
    args = (strides, pads, dilation, precision)

    def kernel_term():
        if isinstance(dx, SymbolicZero):
            return _xla_conv(x, dw, strides, pads, (1,) * len(strides), dilation, 1, precision)
        return _patch_product(x, dw, *args)

    return _bilinear_jvp(y, dx, dw, lambda: _patch_product(dx, w, *args), kernel_term)


def _xla_conv(x, w, strides, pads, lhs_dilation, rhs_dilation, groups, precision):
    return lax_conv(x, w, strides, pads, lhs_dilation, rhs_dilation, groups, precision)


def xla_conv(x, w, strides, pads, lhs_dilation, rhs_dilation, groups, precision=None):
    """XLA's convolution whose kernel gradient reads a copy of ``x`` made once in the forward pass (see ``_lax_jvp``)."""
    args = (tuple(strides), tuple(map(tuple, pads)), tuple(lhs_dilation), tuple(rhs_dilation), groups, precision)
    return _lax_gathered(x, w, *args)


_lax_gathered = jax.custom_jvp(_xla_conv, nondiff_argnums=tuple(range(2, 8)))


@functools.partial(_lax_gathered.defjvp, symbolic_zeros=True)
def _lax_jvp(*args):
    # XLA's kernel gradient convolves x laid out as (C, *spatial, N). XLA:CPU builds that transposed
    # copy by re-running whatever elementwise ops produced x (a residual block's norms, ReLUs and
    # adds) in the transposed order, where they read their inputs a cache line per element. With x
    # materialized the transposed copy reads one finished array (docs/performance.md, "xla_cpu").
    *static, (x, w), (dx, dw) = args
    if not isinstance(dw, SymbolicZero):
        x = materialize(x)
    return _bilinear_jvp(_xla_conv(x, w, *static), dx, dw, lambda: _xla_conv(dx, w, *static),
                         lambda: _xla_conv(x, dw, *static))


def onednn_conv(x, w, strides, pads, dilation, groups=1):
    """oneDNN's convolution, ``(N, *spatial, C_in)`` x ``(*k, C_in / groups, C_out)``, float32 (see
    :mod:`cnnjax.functional.onednn`).

    With ``groups=1``, a narrow conv (:func:`is_narrow`) or a small contraction (``C_in * prod(k) <=
    SMALL_CONTRACTION``, first layers) takes im2col's input gradient (see ``_narrow_onednn_jvp``).
    """
    args = (tuple(strides), tuple(map(tuple, pads)), tuple(dilation))
    c_in, kernel = x.shape[-1], w.shape[:-2]
    if groups == 1 and (is_narrow(c_in, kernel) or c_in * math.prod(kernel) <= SMALL_CONTRACTION):
        return _narrow_onednn(x, w, *args)
    return onednn.conv(x, w, args[0], args[2], args[1], groups)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _narrow_onednn(x, w, strides, pads, dilation):
    return onednn.conv(x, w, strides, dilation, pads)


@functools.partial(_narrow_onednn.defjvp, symbolic_zeros=True)
def _narrow_onednn_jvp(strides, pads, dilation, primals, tangents):
    # oneDNN's input gradient into a few channels (a first layer's, which training never asks for; saliency
    # does; SimpleCNN's and LeNet-5's second convs) is slower than im2col's, whose outer product over a narrow
    # output suits it; its forward and kernel gradient stay faster than the others'
    # (docs/performance.md, "Narrow input gradients go to im2col")
    (x, w), (dx, dw) = primals, tangents
    return _bilinear_jvp(onednn.conv(x, w, strides, dilation, pads), dx, dw,
                         lambda: _patch_product(dx, w, strides, pads, dilation, None),
                         lambda: onednn.conv(x, dw, strides, dilation, pads))


def im2col_conv(x, w, strides, pads, dilation, precision):
    """``(N, *spatial, C_in)`` x ``(*k, C_in, C_out)`` -> ``(N, *out, C_out)``: gather the ``prod(k)``
    shifted, strided views of the padded input side by side, then one matrix product.

    The feature order (kernel offset major, channel minor) matches ``w.reshape(-1, C_out)``. When
    ``x`` gets no gradient (a first layer), the kernel gradient is XLA's (see ``_im2col_jvp``).
    """
    return _im2col(x, w, tuple(strides), tuple(map(tuple, pads)), tuple(dilation), precision)


def _patch_product(x, w, strides, pads, dilation, precision):
    views = shifted_views(x, w.shape[: len(strides)], strides, pads, dilation)
    patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
    # a 2-D product: with the (N, *out) axes kept, XLA:CPU runs forward+backward slower (docs/performance.md)
    y = jnp.matmul(patches.reshape(-1, patches.shape[-1]), w.reshape(-1, w.shape[-1]), precision=precision)
    return y.reshape(*patches.shape[:-1], w.shape[-1])


_im2col = jax.custom_jvp(_patch_product, nondiff_argnums=(2, 3, 4, 5))


@functools.partial(_im2col.defjvp, symbolic_zeros=True)
def _im2col_jvp(strides, pads, dilation, precision, primals, tangents):
    # Without an input gradient (a first layer), transposing the patch product leaves a product
    # over the whole patch matrix for the kernel gradient, where XLA's own kernel gradient is faster
    # (docs/performance.md, "im2col"). With both gradients the patch product's transpose wins and stays.
    (x, w), (dx, dw) = primals, tangents
    return _im2col_tangent(_patch_product(x, w, strides, pads, dilation, precision), x, w, dx, dw, strides, pads,
                           dilation, precision)


#: The taps strategy's kernel gradient reduces over the batch in chunks of about this many input bytes.
TAPS_CHUNK_BYTES = 1 << 20


def taps_conv(x, w, strides, pads, dilation, groups, precision=None):
    """A conv as a sum over the kernel taps of shifted views times weights, for depthwise convs and
    dense convs with a small contraction (first layers).

    - depthwise (``groups == C``): ``(N, *spatial, C)`` x ``(*k, 1, C * m)`` -> ``(N, *out, C * m)``,
      ``y = sum_t view_t(x) * w[t]``; output channel ``c * m + j`` reads input channel ``c``, as
      ``feature_group_count=C`` does, far faster than XLA:CPU's grouped convolution. The
      kernel gradient is reduced over batch chunks (see ``_taps_jvp``).
    - dense (``groups == 1``): ``(N, *spatial, C_in)`` x ``(*k, C_in, C_out)``,
      ``y = sum_{t, c} view_t(x)[..., c] * w[t, c]``, each term a ``C_out``-wide vector: a faster
      forward than im2col or XLA's conv for a 1- or 3-channel input. Its derivatives are im2col's
      (see ``_dense_taps_jvp``). Measurements: docs/performance.md, "Taps".

    XLA fuses the sum into one elementwise pass (so half precision accumulates in float32 at no cost).
    """
    args = (tuple(strides), tuple(map(tuple, pads)), tuple(dilation))
    if groups == 1:
        return _dense_taps(x, w, *args, precision)
    return _taps(x, w, *args)


def _dense_taps_sum(x, w, strides, pads, dilation, precision=None):
    # precision is for the derivatives (im2col's products); the sum is elementwise
    acc = accumulation_dtype(x.dtype)
    taps = w.reshape(-1, *w.shape[-2:]).astype(acc)  # (T, C_in, C_out)
    views = shifted_views(x, w.shape[: len(strides)], strides, pads, dilation)
    terms = (view[..., c:c + 1].astype(acc) * tap[c] for view, tap in zip(views, taps) for c in range(x.shape[-1]))
    return functools.reduce(jnp.add, terms).astype(x.dtype)


_dense_taps = jax.custom_jvp(_dense_taps_sum, nondiff_argnums=(2, 3, 4, 5))


@functools.partial(_dense_taps.defjvp, symbolic_zeros=True)
def _dense_taps_jvp(strides, pads, dilation, precision, primals, tangents):
    # The sum's own transpose reduces each tap over the channel axis, slower than im2col's product for
    # the input gradient. So only the value comes from the sum; the tangents are im2col's. The value
    # is materialized: otherwise XLA:CPU re-runs the whole sum inside the backward pass's ReLU and
    # pooling masks, which read it (docs/performance.md, "Taps").
    (x, w), (dx, dw) = primals, tangents
    y = materialize(_dense_taps_sum(x, w, strides, pads, dilation))
    return _im2col_tangent(y, x, w, dx, dw, strides, pads, dilation, precision)


def _taps_sum(x, w, strides, pads, dilation):
    m = w.shape[-1] // x.shape[-1]
    if m > 1:
        x = jnp.repeat(x, m, axis=-1)
    acc = accumulation_dtype(x.dtype)
    taps = w.reshape(-1, w.shape[-1]).astype(acc)
    views = shifted_views(x, w.shape[: len(strides)], strides, pads, dilation)
    y = views[0].astype(acc) * taps[0]
    for view, tap in zip(views[1:], taps[1:]):
        y = y + view.astype(acc) * tap
    return y.astype(x.dtype)


_taps = jax.custom_jvp(_taps_sum, nondiff_argnums=(2, 3, 4))


@functools.partial(_taps.defjvp, symbolic_zeros=True)
def _taps_jvp(strides, pads, dilation, primals, tangents):
    # The kernel gradient is one reduction over the whole batch per tap, each streaming x and the
    # output gradient from memory, which dominated the step. Written as a map over batch chunks, its
    # transpose reduces chunk by chunk while both stay in cache (docs/performance.md, "Taps");
    # jax.checkpoint makes the transposed map
    # recompute each chunk's shifted views rather than store all of them.
    (x, w), (dx, dw) = primals, tangents
    args = (strides, pads, dilation)
    return _bilinear_jvp(_taps_sum(x, w, *args), dx, dw, lambda: _taps_sum(dx, w, *args),
                         lambda: _batch_chunked(lambda xc: _taps_sum(xc, dw, *args), x))


def _batch_chunked(fn, x):
    """``fn(x)`` for ``fn`` acting image by image on ``(N, ...)``, computed over batch chunks in a ``lax.map``."""
    n = x.shape[0]
    per_image = math.prod(x.shape[1:]) * x.dtype.itemsize
    size = max([b for b in range(1, n + 1) if n % b == 0 and b * per_image <= TAPS_CHUNK_BYTES], default=1)
    if size >= n:
        return fn(x)
    ys = jax.lax.map(jax.checkpoint(fn), x.reshape(n // size, size, *x.shape[1:]))
    return ys.reshape(n, *ys.shape[2:])
