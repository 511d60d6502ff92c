"""How :func:`cnnjax.functional.conv` computes: XLA's convolution, oneDNN's, im2col + one matrix
product, or (depthwise convs) a sum over kernel taps; and the XLA options cnnjax compiles with.

All compute the same function (equal to float rounding, gradients included). The choice is
made per shape, dtype and backend by a fixed rule (so runs stay bit-reproducible), cached,
and can be overridden per call (``conv(..., strategy="im2col")``) or for a block of code
(``with conv_strategy("lax"): ...``).

Why a rule and not autotuning: timing candidates at trace time would make the choice, and
so the float rounding, differ between runs. The rule comes from ``python -m benchmarks --only conv_strategies``
on a 2-core AVX-512 CPU (``benchmarks/results/``). On CPU, float32 dense convs run on oneDNN
(:mod:`cnnjax.functional.onednn`, the library behind PyTorch's CPU convolutions) wherever this
machine can build it: forward plus backward 2-3.7x faster than XLA:CPU's convolution for 3x3
convs with 8-64 channels, strided and 1x1 convs and the stems, its kernel gradient 2-11x. Two
cases keep another strategy: outputs smaller than the kernel (a 3x3 conv on a 2x2 map, the
last stage of a ResNet fed 32x32 images: im2col, 1.2x faster), and depthwise convs
(``groups == C_in``): a sum over the kernel taps of shifted views times weights ("taps"),
fused by XLA into one pass (XLA:CPU's grouped convolution was 40x slower forward).

Without oneDNN (another OS or processor, no C++ compiler, bfloat16) the rule is XLA:CPU's: its
convolution is slow, forward plus backward, for 1x1 kernels (plain matrix products), for
strided 3x3 convs, and when the output is smaller than the kernel (10-80x slower); there a
matrix product over explicitly gathered patches ("im2col") wins, except for a first layer's
kernel gradient, which stays XLA's. For stride-1 convs with many channels, and strided 5x5
to 11x11 stems, XLA's convolution is kept. Convs whose contraction ``C_in * prod(kernel)`` is
small (first layers on 1- or 3-channel inputs) run as "taps" (1.8-4.8x faster forward; their
derivatives are im2col's). On GPU and TPU, XLA's convolution (cuDNN) is used everywhere.

:func:`compiler_options` are the options cnnjax's own jitted steps compile with: on CPU they
give XLA's convolutions to its multi-threaded kernel instead of YNNPACK's, which ran on one core.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from cnnjax.functional import onednn
from cnnjax.functional.onednn import without_onednn  # noqa: F401  (re-exported: the switch covers convs)
from cnnjax.functional._args import accumulation_dtype, materialize
from cnnjax.functional.unfold import shifted_views

STRATEGIES = ("auto", "lax", "im2col", "taps", "onednn")

#: On CPU, a dense conv whose contraction ``C_in * prod(kernel)`` is at most this (a first layer) runs as
#: "taps"; this is also the most the "taps" strategy takes for a dense conv.
SMALL_CONTRACTION = 32

#: A conv with fewer input channels than this and a kernel of at most NARROW_KERNEL taps is "narrow": its input
#: gradient writes only these few channels per position, which oneDNN's and XLA's kernels vectorize poorly.
NARROW_CHANNELS, NARROW_KERNEL = 8, 25


def is_narrow(c_in: int, kernel: Sequence[int]) -> bool:
    """Whether a conv with ``c_in`` input channels and this kernel shape is narrow (see ``NARROW_CHANNELS``)."""
    return c_in < NARROW_CHANNELS and math.prod(kernel) <= NARROW_KERNEL

_override: list[str] = []


#: XLA:CPU's default hands convolutions, matrix products and reductions to YNNPACK. Its convolution ran
#: 3x3 convs with 32 or more channels on one core of two (128x16x16x32: 2.6 ms on 1 core; XLA's own
#: kernel 1.7 ms on both) and their kernel gradients too, so on CPU cnnjax keeps YNNPACK for
#: the rest and leaves convolutions to XLA (``benchmarks/results/``).
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}


def compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA compiler options under which cnnjax's convolutions run fastest on ``backend`` (default: JAX's).

    cnnjax's training and evaluation steps compile with them. Pass them to your own top-level
    ``jax.jit`` to get the same speed; they change which kernels run, not what is computed
    (results agree to float rounding). Empty off CPU, and where this jaxlib rejects them.

    Returns:
      A dict for ``jax.jit(..., compiler_options=...)``: ``{}`` or :data:`CPU_COMPILER_OPTIONS`.

    Example:
      >>> step = jax.jit(lambda x: x + 1, compiler_options=compiler_options() or None)
      >>> int(step(1))
      2
    """
    if (backend or jax.default_backend()) != "cpu" or not _cpu_options_accepted():
        return {}
    return dict(CPU_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=1)
def _cpu_options_accepted() -> bool:
    # the flag is experimental: a jaxlib that dropped or renamed it must not break compilation
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.zeros(())).compile()
        return True
    except Exception:  # XlaRuntimeError / ValueError, by jaxlib version
        return False


def check_strategy(strategy: str, fn: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"{fn}: unknown strategy {strategy!r}; allowed: {', '.join(map(repr, STRATEGIES))}")
    return strategy


@contextlib.contextmanager
def conv_strategy(strategy: str) -> Iterator[None]:
    """Use ``strategy`` for every ``conv`` traced inside the block that does not name its own.

    ``"lax"`` also keeps :func:`~cnnjax.functional.conv_transpose` on XLA's convolution (no
    oneDNN or tiled matrix product on CPU) and :func:`~cnnjax.functional.max_pool` on ``reduce_window``
    (no oneDNN pooling), so the traced graph holds ``conv_general_dilated`` for every conv and
    ``reduce_window`` for every pool: what jaxpr readers such as ``cnnjax.inspect.receptive_field`` follow.

    Example:
      >>> x, w = jnp.ones((2, 8, 8, 1)), jnp.ones((3, 3, 1, 4))
      >>> from cnnjax.functional import conv
      >>> with conv_strategy("lax"):
      ...     y = conv(x, w)
      >>> bool(jnp.allclose(y, conv(x, w, strategy="im2col")))
      True
    """
    _override.append(check_strategy(strategy, "conv_strategy"))
    try:
        yield
    finally:
        _override.pop()


def overridden() -> str:
    """The strategy set by the innermost :func:`conv_strategy` block, ``"auto"`` outside any."""
    return _override[-1] if _override else "auto"


def supports_im2col(groups: int, input_dilation: Sequence[int]) -> bool:
    return groups == 1 and all(d == 1 for d in input_dilation)


def is_depthwise(c_in: int, groups: int, input_dilation: Sequence[int]) -> bool:
    return groups == c_in > 1 and all(d == 1 for d in input_dilation)


def is_small_dense(c_in: int, kernel: Sequence[int], groups: int, input_dilation: Sequence[int]) -> bool:
    return supports_im2col(groups, input_dilation) and c_in * math.prod(kernel) <= SMALL_CONTRACTION


@functools.lru_cache(maxsize=4096)
def _auto(backend: str, c_in: int, kernel: tuple[int, ...], strides: tuple[int, ...], out: tuple[int, ...],
          supported: bool, depthwise: bool = False, onednn_ok: bool = False) -> str:
    if backend == "cpu" and depthwise:
        # oneDNN's depthwise kernels: forward+backward 4x faster than taps (64 channels, 32x32 maps)
        return "onednn" if onednn_ok else "taps"
    if backend != "cpu" or not supported:
        return "lax"
    # an output smaller than the kernel in every dim: most of each window is padding, which XLA:CPU's
    # kernels pay for (a 3x3 conv on 2x2 maps ran 40-80x slower forward+backward than im2col; 3x3 maps ran 1.2-1.4x faster)
    tiny = all(o < k for o, k in zip(out, kernel))
    # oneDNN, where it runs: forward+backward 2-3.7x faster than XLA's conv or im2col, first layers' forward
    # and kernel gradient 1.7-6x faster than taps; on tiny outputs im2col stays 1.2x faster
    if onednn_ok and not tiny:
        return "onednn"
    if c_in * math.prod(kernel) <= SMALL_CONTRACTION:
        return "taps"
    # strided 3x3 convs ran 1.5-1.7x faster as im2col in CIFAR ResNets; 5x5, 7x7 and 11x11 stems 1.2-2x slower
    strided = any(s > 1 for s in strides) and math.prod(kernel) <= 9
    # XLA's input gradient writes C_in channels: with few (LeNet's and SimpleCNN's 6->16) it ran 2.3x slower;
    # 7x7 and larger stems on RGB stay on XLA's conv (as strided ones above)
    narrow = is_narrow(c_in, kernel)
    return "im2col" if tiny or strided or narrow or math.prod(kernel) == 1 else "lax"


def supports_onednn(groups: int, input_dilation: Sequence[int], dtype) -> bool:
    """Whether oneDNN's convolution computes this conv: any ``groups``, 1-3 spatial dims, no input dilation, float32."""
    return (all(d == 1 for d in input_dilation) and 1 <= len(input_dilation) <= 3
            and jnp.dtype(dtype) == jnp.float32)


def resolve(strategy: str, c_in: int, kernel: Sequence[int], strides: Sequence[int], groups: int,
            input_dilation: Sequence[int], out: Sequence[int], fn: str, dtype=jnp.float32) -> str:
    """The strategy a conv of this geometry (``out``: its output's spatial size) computed in ``dtype`` runs with
    on the default backend."""
    strategy = check_strategy(strategy, fn)
    if strategy == "auto":
        strategy = overridden()
    supported = supports_im2col(groups, input_dilation)
    depthwise = is_depthwise(c_in, groups, input_dilation)
    if strategy == "auto":
        dnnl = supports_onednn(groups, input_dilation, dtype) and onednn.wanted()
        return _auto(jax.default_backend(), c_in, tuple(kernel), tuple(strides), tuple(out), supported, depthwise, dnnl)
    if strategy == "onednn":
        if not supports_onednn(groups, input_dilation, dtype):
            raise ValueError(f"{fn}: strategy='onednn' needs input_dilation=1, 1-3 spatial dims and float32; "
                             f"got input_dilation={tuple(input_dilation)}, dtype={jnp.dtype(dtype).name}")
        if not onednn.available():
            raise ValueError(f"{fn}: strategy='onednn' is unavailable here: {onednn.unavailable_reason()}")
    if strategy == "taps" and not (depthwise or is_small_dense(c_in, kernel, groups, input_dilation)):
        raise ValueError(f"{fn}: strategy='taps' is for depthwise convs (groups == C_in > 1) and for convs with "
                         f"groups=1 and C_in * prod(kernel) <= {SMALL_CONTRACTION}, both with input_dilation=1; got "
                         f"C_in={c_in}, kernel={tuple(kernel)}, groups={groups}, input_dilation={tuple(input_dilation)}")
    if strategy == "im2col" and not supported:
        raise ValueError(f"{fn}: strategy='im2col' needs groups=1 and input_dilation=1, got groups={groups}, "
                         f"input_dilation={tuple(input_dilation)}")
    return strategy


def dimension_numbers(n: int) -> jax.lax.ConvDimensionNumbers:
    """lax layout for ``(N, *spatial, C)`` inputs/outputs and ``(*k, I, O)`` kernels, any ``n``."""
    io = (0, n + 1, *range(1, n + 1))
    return jax.lax.ConvDimensionNumbers(lhs_spec=io, rhs_spec=(n + 1, n, *range(n)), out_spec=io)


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


def lax_conv(x, w, strides, pads, lhs_dilation, rhs_dilation, groups, precision):
    """XLA's convolution, ``(N, *spatial, C_in)`` x ``(*k, C_in / groups, C_out)`` through
    ``lax.conv_general_dilated``; on CPU its kernel gradient reads a copy of ``x`` made once in the
    forward pass (see ``_lax_jvp``)."""
    args = (tuple(strides), tuple(map(tuple, pads)), tuple(lhs_dilation), tuple(rhs_dilation), groups, precision)
    return (_lax_gathered if jax.default_backend() == "cpu" else _xla_conv)(x, w, *args)


def _xla_conv(x, w, strides, pads, lhs_dilation, rhs_dilation, groups, precision):
    return jax.lax.conv_general_dilated(x, w, strides, pads, lhs_dilation, rhs_dilation, dimension_numbers(len(strides)),
                                        feature_group_count=groups, precision=precision)


_lax_gathered = jax.custom_jvp(_xla_conv, nondiff_argnums=tuple(range(2, 8)))


@functools.partial(_lax_gathered.defjvp, symbolic_zeros=True)
def _lax_jvp(*args):
    # XLA's kernel gradient convolves x laid out as (C, *spatial, N). XLA:CPU builds that transposed
    # copy by re-running whatever elementwise ops produced x (a residual block's norms, ReLUs and
    # adds) in the transposed order, where they read their inputs a cache line per element: 5-16 ms
    # per layer in ResNet-20, 30% of its training step. With x materialized the transposed copy
    # reads one finished array: ResNet-20 ran 13-19% faster.
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
    # oneDNN's input gradient into 1-3 channels (a first layer's, which training never asks for; saliency
    # does) ran 3.7x slower than im2col's; into 3-6 channels with 3x3 or 5x5 kernels (SimpleCNN's and LeNet-5's
    # second convs) 1.1-1.8x slower. With 8 channels, or the 7x7 ImageNet stem, oneDNN's was faster (1.8x, 1.7x).
    # Its forward and kernel gradient stay 1.7-6x faster than the others'
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
    # a 2-D product: with the (N, *out) axes kept, XLA:CPU ran forward+backward 1.3-6x slower
    y = jnp.matmul(patches.reshape(-1, patches.shape[-1]), w.reshape(-1, w.shape[-1]), precision=precision)
    return y.reshape(*patches.shape[:-1], w.shape[-1])


_im2col = jax.custom_jvp(_patch_product, nondiff_argnums=(2, 3, 4, 5))


@functools.partial(_im2col.defjvp, symbolic_zeros=True)
def _im2col_jvp(strides, pads, dilation, precision, primals, tangents):
    # Without an input gradient (a first layer), transposing the patch product leaves a product
    # over the whole patch matrix for the kernel gradient; XLA's kernel gradient was 1.4-5x faster
    # there (LeNet-5's 1->6 5x5: 3.1 -> 1.0 ms forward plus kernel gradient, the CIFAR stem 2.8 -> 1.4).
    # With both gradients the patch product's transpose wins and stays.
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
      ``feature_group_count=C`` does. XLA:CPU's grouped convolution was 40x slower forward. The
      kernel gradient is reduced over batch chunks (see ``_taps_jvp``).
    - dense (``groups == 1``): ``(N, *spatial, C_in)`` x ``(*k, C_in, C_out)``,
      ``y = sum_{t, c} view_t(x)[..., c] * w[t, c]``, each term a ``C_out``-wide vector: 1.8-4.8x
      faster forward than im2col or XLA's conv for a 1- or 3-channel input. Its derivatives are im2col's
      (see ``_dense_taps_jvp``).

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
    # The sum's own transpose reduces each tap over the channel axis: 5x slower than im2col's for
    # the input gradient. So only the value comes from the sum; the tangents are im2col's. The value
    # is materialized: XLA:CPU re-ran the whole sum inside the backward pass's ReLU and pooling
    # masks, which read it (SimpleCNN's first layer: 0.55 -> 1.8 ms).
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
    # output gradient from memory: 41 of the 45 ms of a (64, 32, 32, 64) 3x3 forward+backward on a
    # 2-core CPU. Written as a map over batch chunks, its transpose reduces chunk by chunk while
    # both stay in cache (48 -> 20 ms for that step); jax.checkpoint makes the transposed map
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
