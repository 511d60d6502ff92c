"""Convolution: cross-correlation (``conv``), true convolution (``convolve``) and ``conv_transpose``.

All take channels-last inputs ``(*batch, *spatial, C_in)``; the kernel's rank fixes the
number of spatial dims, so one function serves 1-D, 2-D and 3-D.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.functional import dispatch, utils
from cnnjax.functional.padding import pad_spatial

def flatten_batch(x: jnp.ndarray, n: int) -> tuple[jnp.ndarray, tuple[int, ...]]:
    """``(*batch, *spatial, C) -> (N, *spatial, C)`` and the batch shape to restore later."""
    batch = tuple(x.shape[: x.ndim - n - 1])
    return x.reshape((-1,) + tuple(x.shape[x.ndim - n - 1 :])), batch


def _check_kernel(w: Any, fn: str) -> int:
    if w.ndim < 3:
        raise ValueError(
            f"{fn}: w must have shape (*kernel_spatial, C_in, C_out) with at least one spatial dim, "
            f"got w.shape={tuple(w.shape)}"
        )
    return w.ndim - 2


def _check_bias(b: Any, c_out: int, fn: str) -> None:
    if b is not None and tuple(b.shape) != (c_out,):
        raise ValueError(f"{fn}: b must have shape (C_out,) = ({c_out},), got b.shape={tuple(b.shape)}")


def _check_groups_type(groups: Any, fn: str) -> None:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got groups={groups!r}")


def _check_groups(groups: Any, c_in: int, c_out: int, fn: str) -> None:
    _check_groups_type(groups, fn)
    if c_in % groups or c_out % groups:
        raise ValueError(f"{fn}: groups={groups} must divide both C_in={c_in} and C_out={c_out}")


def _finish(y: jnp.ndarray, b: Any, dtype: Any, batch: tuple[int, ...]) -> jnp.ndarray:
    if b is not None:
        y = y + b.astype(y.dtype)
    return y.astype(dtype).reshape(batch + tuple(y.shape[1:]))


@utils.array_args("x", "w", "b")
def conv(
    x: jnp.ndarray,
    w: jnp.ndarray,
    b: jnp.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = "VALID",
    padding_mode: str = "zeros",
    dilation: int | Sequence[int] = 1,
    input_dilation: int | Sequence[int] = 1,
    groups: int = 1,
    precision: Any = None,
    strategy: str = "auto",
) -> jnp.ndarray:
    """N-D cross-correlation (what every DL framework calls convolution), channels-last.

    ``y[n, o, c_out] = b[c_out] + sum_{k, c} x[n, o*s + k*d, g(c_out)*C_in/groups + c] * w[k, c, c_out]``
    over kernel offsets ``k`` and the ``C_in / groups`` input channels of ``c_out``'s group.

    Args:
      x: ``(*batch, *spatial, C_in)``; any number of batch dims, including none.
      w: ``(*kernel_spatial, C_in // groups, C_out)``; its rank fixes the spatial rank.
      b: optional ``(C_out,)`` bias.
      stride: int or one per spatial dim, >= 1.
      padding: "VALID"; "SAME" (output ``ceil(i / s)``, TF/Flax semantics, any stride);
        "FULL" (``d(k-1)`` each side); "CAUSAL" (1-D, ``d(k-1)`` on the left); an int;
        one int per dim; or one ``(lo, hi)`` pair per dim.
      padding_mode: "zeros", "circular", "reflect" or "replicate".
      dilation: kernel (atrous) dilation ``d``, int or one per dim.
      input_dilation: spacing inserted between input elements (fractional stride).
      groups: grouped conv; ``groups == C_in`` (with ``w`` of shape ``(*k, 1, C_out)``) is depthwise.
      precision: passed to ``lax.conv_general_dilated``.
      strategy: "auto" (the backend's rule by shape, dtype and platform; see
        :mod:`cnnjax.functional.dispatch`), "lax" (``lax.conv_general_dilated``), or the name of a
        registered implementation (``dispatch.strategies("conv")`` lists them; ``cnnjax info`` says
        which one runs where). All give the same result to float rounding.

    Returns:
      ``(*batch, *out_spatial, C_out)`` with, per spatial dim,
      ``o = floor((i' + lo + hi - d(k-1) - 1) / s) + 1`` where ``i' = (i-1)*input_dilation + 1``.
      Half-precision inputs accumulate in float32 (inside XLA's convolution, or inside the one
      fused pass of "taps") and return their own dtype, so no float32 copy of the output is
      ever written.

    Example:
      >>> x = jnp.ones((8, 28, 28, 3))
      >>> w = jnp.ones((3, 3, 3, 16))
      >>> conv(x, w, stride=2, padding="SAME").shape
      (8, 14, 14, 16)
    """
    return _conv(x, w, b, stride, padding, padding_mode, dilation, input_dilation, groups, precision, strategy, "conv")


@utils.array_args("x", "w", "b")
def convolve(
    x: jnp.ndarray,
    w: jnp.ndarray,
    b: jnp.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = "VALID",
    padding_mode: str = "zeros",
    dilation: int | Sequence[int] = 1,
    input_dilation: int | Sequence[int] = 1,
    groups: int = 1,
    precision: Any = None,
    strategy: str = "auto",
) -> jnp.ndarray:
    """True (textbook) convolution: the kernel is flipped in every spatial dim.

    ``y[m, n] = sum_{i, j} x[i, j] w[m - i, n - j]``, i.e. ``conv(x, flip(w))``. With
    ``padding="FULL"`` and one channel it equals ``scipy.signal.convolve(x, w, "full")``.

    Args/Returns: exactly as :func:`conv`; shapes ``(*batch, *spatial, C_in)`` and
    ``(*k, C_in // groups, C_out)`` give ``(*batch, *out_spatial, C_out)``.

    Example:
      >>> convolve(jnp.ones((5, 1)), jnp.array([1., 2.]).reshape(2, 1, 1), padding="FULL")[:, 0]
      Array([1., 3., 3., 3., 3., 2.], dtype=float32)
    """
    n = _check_kernel(w, "convolve")
    w = jnp.flip(w, axis=tuple(range(n)))
    return _conv(x, w, b, stride, padding, padding_mode, dilation, input_dilation, groups, precision, strategy, "convolve")


def _conv(x, w, b, stride, padding, padding_mode, dilation, input_dilation, groups, precision, strategy, fn):
    n = _check_kernel(w, fn)
    utils.check_input(x, n, fn, why=f" (from w.ndim={w.ndim})")
    c_in, c_out = x.shape[-1], w.shape[-1]
    _check_groups(groups, c_in, c_out, fn)
    if w.shape[-2] * groups != c_in:
        raise ValueError(
            f"{fn}: channel mismatch: x has C_in={c_in} channels but w.shape={tuple(w.shape)} expects "
            f"C_in // groups = {w.shape[-2]} with groups={groups} (i.e. C_in={w.shape[-2] * groups})"
        )
    _check_bias(b, c_out, fn)
    strides = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    dil = utils.as_tuple(dilation, n, "dilation", fn, minimum=1)
    in_dil = utils.as_tuple(input_dilation, n, "input_dilation", fn, minimum=1)
    utils.check_padding_mode(padding_mode, fn)
    if padding_mode != "zeros" and any(v > 1 for v in in_dil):
        raise ValueError(f"{fn}: padding_mode={padding_mode!r} needs input_dilation=1, got {in_dil}")
    kernel = tuple(w.shape[:n])
    in_size = [(i - 1) * s + 1 for i, s in zip(x.shape[-n - 1 : -1], in_dil)]
    pads = utils.resolve_padding(padding, in_size, kernel, strides, dil, fn)
    utils.check_window_fits(in_size, pads, kernel, dil, fn)
    out = [utils.out_size(i, lo, hi, k, s, d) for i, (lo, hi), k, s, d in zip(in_size, pads, kernel, strides, dil)]
    dtype = jnp.result_type(x, w)
    impl = dispatch.implementation("conv", strategy, fn=fn, c_in=c_in, kernel=kernel, strides=strides, groups=groups,
                                   input_dilation=in_dil, out=tuple(out), dtype=jnp.dtype(dtype))
    x, batch = flatten_batch(x.astype(dtype), n)
    if padding_mode != "zeros":
        x, pads = pad_spatial(x, pads, padding_mode), [(0, 0)] * n
    y = (impl or lax_conv)(x, w.astype(dtype), strides, pads, in_dil, dil, groups, precision)
    return _finish(y, b, dtype, batch)


def dimension_numbers(n: int) -> jax.lax.ConvDimensionNumbers:
    """lax layout for ``(N, *spatial, C)`` inputs/outputs and ``(*k, I, O)`` kernels, any ``n``."""
    io = (0, n + 1, *range(1, n + 1))
    return jax.lax.ConvDimensionNumbers(lhs_spec=io, rhs_spec=(n + 1, n, *range(n)), out_spec=io)


def lax_conv(x, w, strides, pads, lhs_dilation, rhs_dilation, groups, precision=None):
    """``lax.conv_general_dilated`` on ``(N, *spatial, C_in)`` x ``(*k, C_in / groups, C_out)`` with explicit
    ``(lo, hi)`` pads: :func:`conv`'s maths, and the signature of its implementations."""
    return jax.lax.conv_general_dilated(x, w, tuple(strides), tuple(map(tuple, pads)), tuple(lhs_dilation),
                                        tuple(rhs_dilation), dimension_numbers(len(strides)),
                                        feature_group_count=groups, precision=precision)


@utils.array_args("x", "w", "b")
def conv_transpose(
    x: jnp.ndarray,
    w: jnp.ndarray,
    b: jnp.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    precision: Any = None,
) -> jnp.ndarray:
    """Transposed ("fractionally strided") convolution with PyTorch's semantics.

    It is the gradient of :func:`conv` with respect to its input: each input element
    scatters ``x[i] * w`` into the output at ``i * s - p``, overlaps summing. With the
    same ``stride``/``padding``/``dilation``, it maps ``conv``'s output size back to its
    input size (``output_padding`` picks among the sizes that stride rounding merged).

    Args:
      x: ``(*batch, *spatial, C_in)``.
      w: ``(*kernel_spatial, C_in, C_out // groups)`` (PyTorch's ``(C_in, C_out/g, *k)``
        moved channels-last).
      b: optional ``(C_out,)`` bias.
      stride, padding, dilation: int or one per spatial dim, as in ``torch.nn.ConvTranspose``;
        ``padding`` removes ``p`` from each side of the full output.
      output_padding: extra size on the high side, ``0 <= op < max(stride, dilation)``.
      groups: ``C_in`` and ``C_out`` split into ``groups`` independent blocks.

    Returns:
      ``(*batch, *out_spatial, C_out)`` with ``o = (i-1)*s - 2p + d(k-1) + output_padding + 1``.

    Example:
      >>> x = jnp.array([[1., 0.], [2., 3.]])[..., None]
      >>> w = jnp.array([[0., 1.], [1., 0.]])[..., None, None]
      >>> conv_transpose(x, w, stride=2)[..., 0]
      Array([[0., 1., 0., 0.],
             [1., 0., 0., 0.],
             [0., 2., 0., 3.],
             [2., 0., 3., 0.]], dtype=float32)
    """
    fn = "conv_transpose"
    n = _check_kernel(w, fn)
    utils.check_input(x, n, fn, why=f" (from w.ndim={w.ndim})")
    c_in = x.shape[-1]
    if w.shape[-2] != c_in:
        raise ValueError(
            f"{fn}: channel mismatch: x has C_in={c_in} channels but w.shape={tuple(w.shape)} is "
            f"(*k, C_in, C_out // groups) with C_in={w.shape[-2]}"
        )
    _check_groups_type(groups, fn)
    c_out = w.shape[-1] * groups
    _check_groups(groups, c_in, c_out, fn)
    _check_bias(b, c_out, fn)
    strides = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    dil = utils.as_tuple(dilation, n, "dilation", fn, minimum=1)
    pad = utils.as_tuple(padding, n, "padding", fn, minimum=0)
    out_pad = utils.as_tuple(output_padding, n, "output_padding", fn, minimum=0)
    kernel = tuple(w.shape[:n])
    for dim, (op, s, d) in enumerate(zip(out_pad, strides, dil)):
        if op >= max(s, d):
            raise ValueError(
                f"{fn}: output_padding must be smaller than stride or dilation in every dim; "
                f"dim {dim} has output_padding={op}, stride={s}, dilation={d}"
            )
    size = conv_transpose_output_size(tuple(x.shape[-n - 1 : -1]), kernel, strides, pad, out_pad, dil)
    if any(o < 1 for o in size):
        raise ValueError(f"{fn}: padding={pad} leaves an empty output {size} for input {tuple(x.shape)}")

    dtype = jnp.result_type(x, w)
    impl = dispatch.implementation("conv_transpose", fn=fn, kernel=kernel, strides=strides, padding=pad,
                                   output_padding=out_pad, dilation=dil, groups=groups, dtype=jnp.dtype(dtype))
    x, batch = flatten_batch(x.astype(dtype), n)
    y = (impl or _lax_conv_transpose)(x, w.astype(dtype), strides, pad, out_pad, dil, groups, size, precision)
    return _finish(y, b, dtype, batch)


def _lax_conv_transpose(x, w, strides, pad, out_pad, dil, groups, size, precision):
    """The conv whose input gradient this is: input-dilated by the stride, padded ``d(k-1) - p``, flipped kernel."""
    n = w.ndim - 2
    kernel, c_in, g = w.shape[:n], x.shape[-1], groups
    # (*k, C_in, C_out/g) -> the forward-conv kernel (*k, C_in/g, C_out), flipped.
    wf = w.reshape(kernel + (g, c_in // g, w.shape[-1]))
    wf = jnp.moveaxis(wf, n, n + 1).reshape(kernel + (c_in // g, w.shape[-1] * g))
    wf = jnp.flip(wf, axis=tuple(range(n)))
    pads = [(d * (k - 1) - p, d * (k - 1) - p + op) for k, d, p, op in zip(kernel, dil, pad, out_pad)]
    return lax_conv(x, wf, (1,) * n, pads, strides, dil, g, precision)


def conv_output_size(
    size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
) -> int | tuple[int, ...]:
    """Output size of :func:`conv` (and of pooling with the same window).

    ``o = floor((i + 2p - d(k-1) - 1) / s) + 1``, with ``2p`` read as ``lo + hi`` for
    asymmetric or string padding.

    Args:
      size: input spatial size, an int (1-D) or one per spatial dim.
      kernel_size, stride, dilation: int or one per spatial dim.
      padding: any padding spec :func:`conv` accepts.

    Returns:
      An int if ``size`` is an int, else a tuple.

    Example:
      >>> conv_output_size(5, 3, stride=2)
      2
      >>> conv_output_size((32, 32), 3, padding="SAME", stride=2)
      (16, 16)
    """
    fn = "conv_output_size"
    scalar = isinstance(size, (int, np.integer))
    n = 1 if scalar else len(size)
    sizes = utils.as_tuple(size, n, "size", fn, minimum=1)
    k = utils.as_tuple(kernel_size, n, "kernel_size", fn, minimum=1)
    s = utils.as_tuple(stride, n, "stride", fn, minimum=1)
    d = utils.as_tuple(dilation, n, "dilation", fn, minimum=1)
    pads = utils.resolve_padding(padding, sizes, k, s, d, fn)
    utils.check_window_fits(sizes, pads, k, d, fn)
    out = tuple(utils.out_size(i, lo, hi, kk, ss, dd) for i, (lo, hi), kk, ss, dd in zip(sizes, pads, k, s, d))
    return out[0] if scalar else out


def conv_transpose_output_size(
    size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> int | tuple[int, ...]:
    """Output size of :func:`conv_transpose`: ``o = (i-1)s - 2p + d(k-1) + output_padding + 1``.

    Example:
      >>> conv_transpose_output_size(2, 2, stride=2)
      4
    """
    fn = "conv_transpose_output_size"
    scalar = isinstance(size, (int, np.integer))
    n = 1 if scalar else len(size)
    args = [
        utils.as_tuple(v, n, name, fn, minimum=m)
        for v, name, m in [
            (size, "size", 1),
            (kernel_size, "kernel_size", 1),
            (stride, "stride", 1),
            (padding, "padding", 0),
            (output_padding, "output_padding", 0),
            (dilation, "dilation", 1),
        ]
    ]
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, op, d in zip(*args))
    return out[0] if scalar else out


def conv_param_count(
    kernel_size: int | Sequence[int],
    c_in: int,
    c_out: int,
    groups: int = 1,
    bias: bool = True,
    *,
    spatial_dims: int | None = None,
) -> int:
    """Number of parameters of a conv layer: ``(prod(k) * C_in / groups + bias) * C_out``.

    Args:
      kernel_size: one int per spatial dim; a bare int needs ``spatial_dims``.
      c_in, c_out: channels; ``groups`` must divide both.
      bias: whether the layer has a bias.

    Example:
      >>> conv_param_count((3, 3), 1, 6)
      60
      >>> conv_param_count(5, 3, 64, spatial_dims=2)
      4864
    """
    fn = "conv_param_count"
    n = utils.spatial_rank(fn, ("kernel_size", kernel_size), spatial_dims=spatial_dims)
    k = utils.as_tuple(kernel_size, n, "kernel_size", fn, minimum=1)
    _check_groups(groups, c_in, c_out, fn)
    return (utils.num_elements(k) * (c_in // groups) + int(bool(bias))) * c_out
