"""Canonicalisation and validation of the arguments shared by the functional ops, and small array helpers
(accumulation dtypes, padding values, output sizes) that backends use too.

Every op sends its ints-or-tuples, padding specs and input shapes through here,
so that each kind of argument is checked once and every error reads the same way:
the function, the argument, what was received and what is allowed.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Sequence

import jax

import jax.numpy as jnp
import numpy as np

PADDING_STRINGS = ("VALID", "SAME", "FULL", "CAUSAL")
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
# jnp.pad's names for our padding modes.
JNP_PAD_MODE = {"circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def as_tuple(value: Any, n: int, name: str, fn: str, *, minimum: int | None = None) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints as a tuple of ``n`` ints, each ``>= minimum``."""
    if _is_int(value):
        out = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str) and all(_is_int(v) for v in value):
        out = tuple(int(v) for v in value)
        if len(out) != n:
            raise ValueError(
                f"{fn}: {name} must be an int or a sequence of {n} ints (one per spatial dim), "
                f"got {name}={tuple(value)!r} of length {len(out)}"
            )
    else:
        raise TypeError(f"{fn}: {name} must be an int or a sequence of {n} ints, got {name}={value!r}")
    if minimum is not None and any(v < minimum for v in out):
        raise ValueError(f"{fn}: every entry of {name} must be >= {minimum}, got {name}={value!r}")
    return out


def as_shape(value: Any, name: str, fn: str, *, min_rank: int = 1) -> tuple[int, ...]:
    """An array shape given as a sequence of at least ``min_rank`` positive ints, as a tuple; else a TypeError/ValueError."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(_is_int(v) for v in value):
        raise TypeError(f"{fn}: {name} must be a shape, a sequence of ints such as (1, 32, 32, 3), got {value!r}")
    if len(value) < min_rank or any(v < 1 for v in value):
        raise ValueError(f"{fn}: {name} must have at least {min_rank} entries, each >= 1, got {tuple(value)!r}")
    return tuple(int(v) for v in value)


def as_float_tuple(value: Any, n: int, name: str, fn: str) -> tuple[float, ...]:
    """A positive number or a length-``n`` sequence of them as a tuple of ``n`` floats."""
    def ok(v):
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    if ok(value):
        out = (float(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str) and all(ok(v) for v in value):
        out = tuple(float(v) for v in value)
        if len(out) != n:
            raise ValueError(f"{fn}: {name} must be a number or a sequence of {n} numbers, got {name}={tuple(value)!r}")
    else:
        raise TypeError(f"{fn}: {name} must be a number or a sequence of {n} numbers, got {name}={value!r}")
    if any(not math.isfinite(v) or v <= 0 for v in out):
        raise ValueError(f"{fn}: every entry of {name} must be a positive finite number, got {name}={value!r}")
    return out


def as_array(x: Any, fn: str, name: str = "x") -> Any:
    """``x`` as a jax array, or a TypeError naming ``fn`` and ``name`` for what is not numeric data.

    Refuses, with an error that names the function and the argument, what ``jnp.asarray``
    would refuse with one that names neither (None, strings, ragged or mixed lists,
    objects). Arrays, tracers and NNX variables pass through.
    """
    if isinstance(x, jax.Array):
        return x
    if hasattr(x, "__jax_array__"):
        return jnp.asarray(x)
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__} {x!r:.60}")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: {name} must be an array (or a nested list of numbers), got a {type(x).__name__} "
                        f"that numpy cannot read as one: {e}") from None
    if arr.dtype == object or arr.dtype.kind in "US":  # kind "V" includes bfloat16 and float8
        raise TypeError(f"{fn}: {name} must be numeric, got a {type(x).__name__} whose elements are {arr.dtype} "
                        f"(None, strings or ragged lists inside it?)")
    return jnp.asarray(arr)


def array_args(*names: str, fn: str | None = None) -> Callable:
    """Decorator: the named arguments go through :func:`as_array` before the body runs.

    An argument that may be ``None`` (a ``None`` default or ``| None`` annotation) stays ``None``. The error names
    ``fn`` (default: the function's name, or the class name for a method), so a layer's
    ``__call__`` reports the layer, not the functional op under it.
    """
    def decorate(f: Callable) -> Callable:
        sig = inspect.signature(f)
        method = next(iter(sig.parameters), None) == "self"
        # None stays None where the signature allows it: a None default or "| None" in the annotation
        optional = {n for n in names if sig.parameters[n].default is None or "None" in str(sig.parameters[n].annotation)}

        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                return f(*args, **kwargs)  # Python's own message for a wrong call
            label = fn or (type(args[0]).__name__ if method and args else f.__name__)
            for name in names:
                if name in bound.arguments:
                    value = bound.arguments[name]
                    if value is None and name in optional:
                        continue
                    bound.arguments[name] = as_array(value, label, name)
            return f(*bound.args, **bound.kwargs)

        return wrapper

    return decorate


def spatial_rank(fn: str, *candidates: tuple[str, Any], spatial_dims: int | None = None) -> int:
    """The number of spatial dims: ``spatial_dims`` or the length of the first tuple-valued candidate.

    An int window or size fits any rank, so with no tuple and no ``spatial_dims`` the rank
    is ambiguous (a vmapped per-example call sees fewer dims than a batched one), and we
    refuse to guess.
    """
    if spatial_dims is not None:
        if not _is_int(spatial_dims) or not 1 <= spatial_dims <= 3:
            raise ValueError(f"{fn}: spatial_dims must be 1, 2 or 3, got spatial_dims={spatial_dims!r}")
        return int(spatial_dims)
    for _, value in candidates:
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
            return len(value)  # also right for a list of (lo, hi) padding pairs
    names = ", ".join(n for n, _ in candidates)
    raise ValueError(
        f"{fn}: cannot tell the number of spatial dims: {names} are all ints. "
        f"Pass a tuple (e.g. {candidates[0][0]}=(2, 2) for 2-D) or spatial_dims=1|2|3, or use the "
        f"dimension-specific forms, where ints work as in PyTorch (F.max_pool2d, F.conv2d, F.pad2d, nn.Conv2d, "
        f"nn.MaxPool2d, ...)."
    )


def check_input(x: Any, n: int, fn: str, *, name: str = "x", why: str = "") -> None:
    """``x`` must be ``(*batch, *spatial, C)`` with ``n`` spatial dims."""
    if x.ndim < n + 1:
        raise ValueError(
            f"{fn}: {name} must have shape (*batch, *spatial, C) with {n} spatial dim(s){why}, "
            f"i.e. at least {n + 1} dims, got {name}.shape={tuple(x.shape)}"
        )
    if any(d == 0 for d in x.shape[-n - 1 :]):
        raise ValueError(f"{fn}: {name} has an empty spatial or channel dim, {name}.shape={tuple(x.shape)}")


def check_float(x: Any, fn: str, name: str = "x") -> None:
    if not np.issubdtype(x.dtype, np.floating) and x.dtype.name != "bfloat16":
        raise TypeError(f"{fn}: {name} must be a floating-point array, got dtype {x.dtype}")


def resolve_padding(
    padding: Any,
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    fn: str,
    *,
    allow_causal: bool = True,
) -> list[tuple[int, int]]:
    """Any accepted padding spec as one ``(lo, hi)`` pair per spatial dim.

    Accepted: "VALID"; "SAME" (TF/Flax: output ceil(i/s), extra pad on the high side);
    "FULL" (pad d(k-1) each side, output i+d(k-1) at stride 1); "CAUSAL" (1-D: pad d(k-1)
    on the left only); an int; one int per dim; or one ``(lo, hi)`` pair per dim.
    """
    n = len(in_size)
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if isinstance(padding, str):
        p = padding.upper()
        if p == "VALID":
            return [(0, 0)] * n
        if p == "SAME":
            pads = []
            for i, e, s in zip(in_size, eff, stride):
                total = max((-(-i // s) - 1) * s + e - i, 0)
                pads.append((total // 2, total - total // 2))
            return pads
        if p == "FULL":
            return [(e - 1, e - 1) for e in eff]
        if p == "CAUSAL":
            if not allow_causal or n != 1:
                raise ValueError(
                    f"{fn}: padding='CAUSAL' is only defined for 1-D inputs, got {n} spatial dims"
                )
            return [(eff[0] - 1, 0)]
        raise ValueError(
            f"{fn}: unknown padding {padding!r}; allowed: {', '.join(map(repr, PADDING_STRINGS))}, "
            f"an int, one int per spatial dim, or one (lo, hi) pair per spatial dim"
        )
    if _is_int(padding):
        pads = [(int(padding), int(padding))] * n
    elif isinstance(padding, Sequence) and len(padding) == n and all(_is_int(p) for p in padding):
        pads = [(int(p), int(p)) for p in padding]
    elif (
        isinstance(padding, Sequence)
        and len(padding) == n
        and all(
            isinstance(p, Sequence) and len(p) == 2 and all(_is_int(q) for q in p) for p in padding
        )
    ):
        pads = [(int(lo), int(hi)) for lo, hi in padding]
    else:
        raise ValueError(
            f"{fn}: padding must be a string ({', '.join(PADDING_STRINGS)}), an int, {n} ints, "
            f"or {n} (lo, hi) pairs for {n} spatial dim(s); got padding={padding!r}"
        )
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(f"{fn}: padding must be non-negative, got padding={padding!r}")
    return pads


def check_padding_mode(padding_mode: str, fn: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"{fn}: unknown padding_mode {padding_mode!r}; allowed: {', '.join(map(repr, PADDING_MODES))}"
        )
    return padding_mode


def check_window_fits(
    in_size: Sequence[int],
    pads: Sequence[tuple[int, int]],
    kernel: Sequence[int],
    dilation: Sequence[int],
    fn: str,
    what: str = "kernel",
) -> None:
    """The (dilated) window must fit inside the padded input in every spatial dim."""
    for dim, (i, (lo, hi), k, d) in enumerate(zip(in_size, pads, kernel, dilation)):
        if d * (k - 1) + 1 > i + lo + hi:
            raise ValueError(
                f"{fn}: the {what} is larger than the padded input in spatial dim {dim}: "
                f"{what} size {k} (dilation {d}, effective {d * (k - 1) + 1}) > input {i} + padding "
                f"{lo}+{hi} = {i + lo + hi}; spatial input shape {tuple(in_size)}, {what} {tuple(kernel)}"
            )


def window_geometry(
    x: Any,
    window: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    fn: str,
    *,
    spatial_dims: int | None = None,
    window_name: str = "window",
    what: str = "window",
) -> tuple[int, tuple[int, ...], tuple[int, ...], list[tuple[int, int]], tuple[int, ...]]:
    """Validate a sliding-window op's arguments: ``(n, window, strides, pads, dilation)``.

    ``stride=None`` means the window itself (pooling's default).
    """
    n = spatial_rank(
        fn, (window_name, window), ("stride", stride), ("padding", padding), ("dilation", dilation),
        spatial_dims=spatial_dims,
    )
    check_input(x, n, fn)
    k = as_tuple(window, n, window_name, fn, minimum=1)
    s = k if stride is None else as_tuple(stride, n, "stride", fn, minimum=1)
    d = as_tuple(dilation, n, "dilation", fn, minimum=1)
    in_size = tuple(x.shape[-n - 1 : -1])
    pads = resolve_padding(padding, in_size, k, s, d, fn)
    check_window_fits(in_size, pads, k, d, fn, what=what)
    return n, k, s, pads, d


def accumulation_dtype(dtype: Any) -> Any:
    """The dtype sums and products accumulate in: float32 for bfloat16/float16, else ``dtype`` itself."""
    return np.dtype(np.float32) if str(np.dtype(dtype)) in ("bfloat16", "float16") else np.dtype(dtype)


def lowest(dtype: Any) -> Any:
    """What max pooling pads with: ``-inf`` for floating dtypes, the smallest value for integer ones."""
    return -jnp.inf if jnp.issubdtype(dtype, jnp.floating) else jnp.iinfo(dtype).min


def materialize(a: jnp.ndarray) -> jnp.ndarray:
    """``a`` itself, as an identity gather: XLA:CPU computes a gather once and never duplicates it into its
    consumers, as it does cheap elementwise producers. Used on primals inside derivative rules only, so
    no scatter enters a backward pass."""
    return a[jnp.arange(a.shape[0])]


def out_size(i: int, lo: int, hi: int, k: int, s: int, d: int) -> int:
    """floor((i + lo + hi - d(k-1) - 1) / s) + 1."""
    return (i + lo + hi - d * (k - 1) - 1) // s + 1


def num_elements(shape: Sequence[int]) -> int:
    return int(math.prod(shape))
